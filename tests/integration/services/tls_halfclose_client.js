#!/usr/bin/env node
// A TLS client that half-closes: it writes one HTTP/1.1 request and ends its
// side at once (close_notify, then TCP FIN), then reads the whole response
// until the server closes. Prints the status line's first 12 bytes and the
// body's length and sha256.
//   node tls_halfclose_client.js HOST PORT PATH CAFILE [--wait]
// --wait: connect only after a line arrives on stdin (so that a tracer can
// be started on this process first).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const tls = require('tls');

const [host, port, path, cafile, wait] = process.argv.slice(2);

function run() {
  const s = tls.connect({ host, port: Number(port), ca: fs.readFileSync(cafile) }, () => {
    s.end(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
  const chunks = [];
  s.on('data', (c) => chunks.push(c));
  s.on('end', () => {
    const b = Buffer.concat(chunks);
    const body = b.subarray(b.indexOf('\r\n\r\n') + 4);
    const sha = crypto.createHash('sha256').update(body).digest('hex');
    process.stdout.write(`${b.subarray(0, 12)} ${body.length} ${sha}\n`);
  });
  s.on('error', (e) => { process.stdout.write(`error ${e.message}\n`); process.exitCode = 1; });
}

if (wait === '--wait') process.stdin.once('data', () => { process.stdin.pause(); run(); });
else run();
