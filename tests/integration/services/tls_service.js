#!/usr/bin/env node
// An uninstrumented Node HTTPS service for the TLS tests: Node's own https
// module only (OpenSSL inside the node binary), knows nothing about tracing.
//   GET /work      sleep --sleep-ms, then (with --downstream) GET <downstream>/work, 200
//   GET /big/N     N bytes of 0..255 repeated
//   GET /status/N  status N
//   anything else  200 "ok"
//
//   node tls_service.js --port N --cert F --key F [--host H] [--sleep-ms N]
//                       [--downstream URL --cafile F]
'use strict';
const fs = require('fs');
const https = require('https');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port'));
const sleepMs = Number(arg('--sleep-ms', '0'));
const downstream = arg('--downstream', '');
const cafile = arg('--cafile', '');
const agent = cafile ? new https.Agent({ keepAlive: true, ca: fs.readFileSync(cafile) }) : null;

function pattern(n) {
  const block = Buffer.alloc(65536);
  for (let i = 0; i < block.length; i++) block[i] = i & 0xff;
  const out = Buffer.alloc(n);
  for (let off = 0; off < n; off += block.length) block.copy(out, off, 0, Math.min(block.length, n - off));
  return out;
}

function reply(res, code, body) {
  res.writeHead(code, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const server = https.createServer(
  { key: fs.readFileSync(arg('--key')), cert: fs.readFileSync(arg('--cert')) },
  (req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url.split('?')[0];
      if (path === '/work') {
        setTimeout(() => {
          if (!downstream) return reply(res, 200, 'leaf\n');
          https.get(downstream + '/work', { agent }, (r) => {
            let body = '';
            r.on('data', (c) => { body += c; });
            r.on('end', () => reply(res, 200, 'via ' + body));
          }).on('error', () => reply(res, 502, 'downstream failed\n'));
        }, sleepMs);
      } else if (path.startsWith('/big/')) {
        reply(res, 200, pattern(Number(path.split('/')[2])));
      } else if (path.startsWith('/status/')) {
        reply(res, Number(path.split('/')[2]), 'status\n');
      } else {
        reply(res, 200, 'ok\n');
      }
    });
  });
server.keepAliveTimeout = 30000;
server.listen(port, host, () => console.log('listening'));
