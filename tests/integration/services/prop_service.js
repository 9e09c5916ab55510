#!/usr/bin/env node
// An uninstrumented Node HTTP service for the propagation tests: Node's own
// http module only, knows nothing about tracing. It logs the header block of
// every request it receives, as the parser saw it (one JSON line per request:
// {"head": "<request line>\r\n<name>: <value>\r\n...\r\n"} from rawHeaders, which
// keeps names, values, order and repeats), and on GET /work calls
// <downstream>/work (same query) with the global agent (keep-alive, Node >= 19).
// With --client agent: a keep-alive http.Agent of --max-sockets sockets;
// --client fetch: fetch (undici, its own keep-alive pool); --fanout N: N
// calls at once (Promise.all), each with &call=K appended; --jitter-after-ms:
// a random wait after the calls, before the reply.
//
//   node prop_service.js --port N [--host H] [--downstream URL] [--headers-log FILE]
//                        [--jitter-ms N] [--client global|agent|fetch] [--max-sockets N]
//                        [--fanout N] [--jitter-after-ms N]
'use strict';
const fs = require('fs');
const http = require('http');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port'));
const downstream = arg('--downstream', '');
const headersLog = arg('--headers-log', '');
const jitterMs = Number(arg('--jitter-ms', '0'));  // random 0..N ms before the downstream call
const client = arg('--client', 'global');
const fanout = Number(arg('--fanout', '1'));
const jitterAfterMs = Number(arg('--jitter-after-ms', '0'));
const agent = client === 'agent'
  ? new http.Agent({ keepAlive: true, maxSockets: Number(arg('--max-sockets', '4')) })
  : undefined;

function logHead(req) {
  if (!headersLog) return;
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    head += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  }
  fs.appendFileSync(headersLog, JSON.stringify({ head: head + '\r\n' }) + '\n');
}

function reply(res, code, body) {
  res.writeHead(code, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  logHead(req);
  req.resume();
  req.on('end', () => {
    const path = req.url.split('?')[0];
    if (path === '/work' && downstream) {
      if (jitterMs > 0) {
        setTimeout(() => callDownstream(req, res), Math.random() * jitterMs);
      } else {
        callDownstream(req, res);
      }
    } else if (path === '/work' || path === '/leaf') {
      reply(res, 200, 'leaf\n');
    } else {
      reply(res, 200, 'ok\n');
    }
  });
});

function callDownstream(req, res) {
  if (client === 'global' && fanout === 1) return callGlobal(req, res);
  const q = req.url.indexOf('?');
  const base = downstream + '/work' + (q >= 0 ? req.url.slice(q) : '?');
  const calls = [];
  for (let k = 0; k < fanout; k++) {
    const url = fanout > 1 ? `${base}&call=${k}` : base;
    calls.push(client === 'fetch' ? fetchOne(url) : getOne(url));
  }
  Promise.all(calls).then((bodies) => {
    const ok = bodies.every((b) => b !== null);
    const done = () => reply(res, ok ? 200 : 502, ok ? 'via ' + bodies.join('') : 'downstream failed\n');
    if (jitterAfterMs > 0) setTimeout(done, Math.random() * jitterAfterMs);
    else done();
  });
}

function getOne(url) {
  return new Promise((resolve) => {
    http.get(url, { agent, headers: { 'User-Agent': 'prop-service-node' } }, (r) => {
      let body = '';
      r.setEncoding('latin1');
      r.on('data', (c) => { body += c; });
      r.on('end', () => resolve(r.statusCode === 200 ? body : null));
    }).on('error', () => resolve(null));
  });
}

async function fetchOne(url) {
  try {
    const r = await fetch(url, { headers: { 'User-Agent': 'prop-service-node' } });
    const body = await r.text();
    return r.status === 200 ? body : null;
  } catch (e) {
    return null;
  }
}

function callGlobal(req, res) {
  const q = req.url.indexOf('?');
  const url = downstream + '/work' + (q >= 0 ? req.url.slice(q) : '');
  http.get(url, { headers: { 'User-Agent': 'prop-service-node' } }, (r) => {
    let body = '';
    r.setEncoding('latin1');
    r.on('data', (c) => { body += c; });
    r.on('end', () => reply(res, r.statusCode === 200 ? 200 : 502, 'via ' + body));
  }).on('error', () => reply(res, 502, 'downstream failed\n'));
}

server.keepAliveTimeout = 30000;
server.listen(port, host, 511, () => {
  process.stdout.write('listening\n');
});
