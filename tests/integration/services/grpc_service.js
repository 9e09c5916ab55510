// A gRPC service and client on Node's @grpc/grpc-js, for hoptrace's HTTP/2
// tests. grpc-js is the pinned one of tests/integration/otlp (its
// package-lock.json, installed by scripts/setup.sh --tests): run with
// NODE_PATH=tests/integration/otlp/node_modules. Generic definitions with
// Buffer in and out: no .proto, no codegen; the wire is real gRPC.
// Knows nothing about tracing. Same methods as grpc_service.py:
//   node grpc_service.js serve HOST PORT          prints "listening"
//   node grpc_service.js call HOST:PORT METHOD... [--traceparent TP] [--after-stdin]
//     prints "METHOD CODE" per call (CODE: OK or the status name); with
//     --after-stdin it first waits for a line on stdin (so that a test can
//     select its pid before it calls)
'use strict';
const grpc = require('@grpc/grpc-js');

const id = (b) => b;
const SERVICE = 'helloworld.Greeter';
const definition = {
  SayHello: {path: `/${SERVICE}/SayHello`, requestStream: false, responseStream: false,
             requestSerialize: id, requestDeserialize: id, responseSerialize: id,
             responseDeserialize: id},
  ListFeatures: {path: `/${SERVICE}/ListFeatures`, requestStream: false, responseStream: true,
                 requestSerialize: id, requestDeserialize: id, responseSerialize: id,
                 responseDeserialize: id},
  Fail: {path: `/${SERVICE}/Fail`, requestStream: false, responseStream: false,
         requestSerialize: id, requestDeserialize: id, responseSerialize: id,
         responseDeserialize: id},
  Crash: {path: `/${SERVICE}/Crash`, requestStream: false, responseStream: false,
          requestSerialize: id, requestDeserialize: id, responseSerialize: id,
          responseDeserialize: id},
};
const statusName = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

function serve(host, port) {
  const server = new grpc.Server();
  server.addService(definition, {
    SayHello: (call, cb) => cb(null, Buffer.concat([Buffer.from('hello '), call.request])),
    ListFeatures: (call) => {
      const n = parseInt(call.request.toString() || '3', 10);
      for (let i = 0; i < n; i++) call.write(Buffer.from(`feature ${i}`));
      call.end();
    },
    Fail: (call, cb) => cb({code: grpc.status.NOT_FOUND, details: 'no such greeting'}),
    Crash: (call, cb) => cb({code: grpc.status.UNAVAILABLE, details: 'greeter is down'}),
  });
  server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    console.log('listening');
  });
}

async function callAll(target, methods, traceparent) {
  const Client = grpc.makeGenericClientConstructor(definition, SERVICE);
  const client = new Client(target, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (traceparent) md.set('traceparent', traceparent);
  const deadline = () => new Date(Date.now() + 10000);
  for (const m of methods) {
    const code = await new Promise((resolve) => {
      if (m === 'ListFeatures') {
        const stream = client.ListFeatures(Buffer.from('3'), md, {deadline: deadline()});
        stream.on('data', () => {});
        stream.on('error', (e) => resolve(e.code));
        stream.on('status', (s) => resolve(s.code));
      } else {
        client[m](Buffer.from('world'), md, {deadline: deadline()},
                  (err) => resolve(err ? err.code : grpc.status.OK));
      }
    });
    console.log(m, statusName[code]);
  }
  client.close();
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'serve') {
  serve(rest[0], rest[1]);
} else {
  const methods = [];
  let tp = '';
  let afterStdin = false;
  for (let i = 1; i < rest.length; i++) {
    if (rest[i] === '--traceparent') tp = rest[++i];
    else if (rest[i] === '--after-stdin') afterStdin = true;
    else methods.push(rest[i]);
  }
  if (afterStdin) {
    process.stdin.once('data', () => { process.stdin.pause(); callAll(rest[0], methods, tp); });
  } else {
    callAll(rest[0], methods, tp);
  }
}
