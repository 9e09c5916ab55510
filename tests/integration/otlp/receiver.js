#!/usr/bin/env node
// A test OTLP trace receiver for hoptrace's integration tests.
//
// Listens for OTLP/gRPC (opentelemetry.proto.collector.trace.v1.TraceService/Export, via
// @grpc/grpc-js) and OTLP/HTTP (POST with Content-Type application/x-protobuf on any path but
// /control; the exporter's default is /v1/traces). Every request body is decoded with the
// protobufjs static module that @opentelemetry/otlp-transformer publishes
// (build/src/generated/root.js, generated from OpenTelemetry's own opentelemetry-proto), so the
// decoder shares nothing with hoptrace's in-project .proto files.
//
// Usage:
//   node receiver.js --out FILE [--host 127.0.0.1] [--grpc-port N] [--http-port N]
//   (or env RECEIVER_OUT, RECEIVER_HOST, RECEIVER_GRPC_PORT, RECEIVER_HTTP_PORT)
// Port 0 (the default) picks a free port. When both servers listen it prints one line on stdout:
//   ready <grpcPort> <httpPort>
// SIGTERM / SIGINT: stop listening and exit 0.
//
// Output: every request that reaches a server appends ONE line of JSON to FILE, written with a
// single write(2) before the answer is sent:
//   seq            1, 2, ... in order of arrival (both transports)
//   time_unix_ms   arrival time
//   transport      "grpc" | "http"
//   path           gRPC method path or HTTP request path
//   headers        HTTP/2 request headers (gRPC: metadata plus grpc-encoding, grpc-timeout, te,
//                  content-type, user-agent, pseudo-headers) or HTTP/1.1 request headers;
//                  names lower-case; repeated values joined with ", "
//   compressed     true when the body came gzip-compressed (gRPC: the message's compressed flag set
//                  with grpc-encoding gzip; HTTP: Content-Encoding gzip)
//   wire_bytes     body size as received; body_bytes: size after decompression
//   response       what the receiver answered: {grpc_code, grpc_message} or {http_status};
//                  plus delay_ms when it waited first and partial_success when it sent one
//   accepted       true when the answer chosen was a success (gRPC OK / HTTP 200), partial or
//                  not; with delay_ms, a client that gave up first never got that answer
//   span_count     spans in the request (0 when it could not be decoded)
//   error          present when the request could not be read or decoded
//   request        the decoded ExportTraceServiceRequest (null when it could not be decoded):
//                  protobuf field names in lowerCamelCase (protobufjs toObject), every field
//                  present with its default value when absent on the wire (defaults: true);
//                  enums as numbers (kind: SERVER=2, CLIENT=3; status.code: 0/1/2);
//                  64-bit integers (startTimeUnixNano, endTimeUnixNano, timeUnixNano,
//                  AnyValue.intValue) as DECIMAL STRINGS, exact; 32-bit integers as numbers;
//                  bytes fields (traceId, spanId, parentSpanId, AnyValue.bytesValue) as
//                  LOWER-CASE HEX ("" when absent); doubles as numbers.
//                  Span.flags (field 16, fixed32) and Span.Link.flags (field 6) were added to the
//                  OTLP schema in opentelemetry-proto 1.1.0, after the schema
//                  otlp-transformer 0.52 was built from; this receiver reads them straight from the
//                  wire and sets `flags` on every span and link (0 when absent).
//                  A span field number the schema does not know (anything but 1..16) is listed in
//                  the span's `_unknown_fields` (absent when there is none).
//
// Control (HTTP, on the HTTP port):
//   POST /control  {rule}   queue a rule for the next `count` export requests that match it
//   GET /control            {received: {grpc, http}, rules: [...]}
//   DELETE /control         drop every queued rule
// A rule (every field optional):
//   count          requests it applies to (default 1)
//   transport      "grpc" | "http" | "any" (default)
//   delay_ms       wait this long before answering (the client may give up first)
//   grpc_code      answer gRPC requests with this status code (e.g. 14 UNAVAILABLE)
//   grpc_message   its message
//   retry_delay_ms with grpc_code: attach google.rpc.RetryInfo{retry_delay} in
//                  grpc-status-details-bin (what OTLP/gRPC servers send to throttle)
//   http_status    answer HTTP requests with this status (e.g. 503, 429)
//   retry_after    with http_status: the Retry-After header value (e.g. "1")
//   error          true: answer with an error even without grpc_code/http_status
//                  (defaults: UNAVAILABLE / 503)
//   partial_success {rejected_spans, error_message}: answer success with this partial_success
// Rules are consumed first-in first-out; a request that matches no rule is answered with success.
"use strict";

const fs = require("fs");
const http = require("http");
const http2 = require("http2");
const zlib = require("zlib");

const root = require("@opentelemetry/otlp-transformer/build/src/generated/root");
const protobuf = require("protobufjs/minimal");

const v1 = root.opentelemetry.proto.collector.trace.v1;
const ExportRequest = v1.ExportTraceServiceRequest;
const ExportResponse = v1.ExportTraceServiceResponse;
const GRPC_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const MAX_BODY = 64 << 20;

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {
    out: process.env.RECEIVER_OUT || "",
    host: process.env.RECEIVER_HOST || "127.0.0.1",
    grpcPort: Number(process.env.RECEIVER_GRPC_PORT || 0),
    httpPort: Number(process.env.RECEIVER_HTTP_PORT || 0),
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === "--out") opts.out = v, i++;
    else if (a === "--host") opts.host = v, i++;
    else if (a === "--grpc-port") opts.grpcPort = Number(v), i++;
    else if (a === "--http-port") opts.httpPort = Number(v), i++;
    else {
      process.stderr.write(`receiver: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  if (!opts.out) {
    process.stderr.write("receiver: --out FILE is required\n");
    process.exit(2);
  }
  for (const p of [opts.grpcPort, opts.httpPort]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) {
      process.stderr.write(`receiver: bad port ${p}\n`);
      process.exit(2);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv);
const outFd = fs.openSync(opts.out, "a");

function log(msg) {
  process.stderr.write(`receiver: ${msg}\n`);
}

// ---------------------------------------------------------------- decoding

const ID_FIELDS = new Set(["traceId", "spanId", "parentSpanId", "bytesValue"]);

// base64 (protobufjs toObject with bytes: String) -> lower-case hex, recursively for ID_FIELDS.
function bytesToHex(node) {
  if (Array.isArray(node)) {
    node.forEach(bytesToHex);
  } else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (ID_FIELDS.has(k) && typeof v === "string") {
        node[k] = Buffer.from(v, "base64").toString("hex");
      } else {
        bytesToHex(v);
      }
    }
  }
}

// Reads the fields of one message: calls onField(fieldNumber, wireType, reader) which must
// consume the value, or returns false to have it skipped.
function eachField(buf, onField) {
  const r = protobuf.Reader.create(buf);
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (!onField(field, wt, r)) r.skipType(wt);
  }
}

// Wire facts the 0.52 schema cannot decode: Span.flags, Link.flags, unknown span fields.
// Returns, per resourceSpans/scopeSpans/span index, {flags, linkFlags[], unknown[]}.
function spanWireFacts(buf) {
  const out = [];
  eachField(buf, (f, wt, r) => {
    if (f !== 1 || wt !== 2) return false;
    const scopes = [];
    out.push(scopes);
    eachField(r.bytes(), (f2, wt2, r2) => {
      if (f2 !== 2 || wt2 !== 2) return false;
      const spans = [];
      scopes.push(spans);
      eachField(r2.bytes(), (f3, wt3, r3) => {
        if (f3 !== 2 || wt3 !== 2) return false;
        const facts = { flags: 0, linkFlags: [], unknown: [] };
        spans.push(facts);
        eachField(r3.bytes(), (f4, wt4, r4) => {
          if (f4 === 16 && wt4 === 5) {
            facts.flags = r4.fixed32();
            return true;
          }
          if (f4 === 13 && wt4 === 2) {
            let lf = 0;
            eachField(r4.bytes(), (f5, wt5, r5) => {
              if (f5 === 6 && wt5 === 5) {
                lf = r5.fixed32();
                return true;
              }
              return false;
            });
            facts.linkFlags.push(lf);
            return true;
          }
          if (f4 < 1 || f4 > 16) facts.unknown.push(f4);
          return false;
        });
        return true;
      });
      return true;
    });
    return true;
  });
  return out;
}

// Decodes an ExportTraceServiceRequest; throws on malformed input.
function decodeRequest(buf) {
  const msg = ExportRequest.decode(buf);
  const obj = ExportRequest.toObject(msg, {
    longs: String,
    enums: Number,
    bytes: String,
    defaults: true,
    arrays: true,
    objects: true,
  });
  bytesToHex(obj);
  const facts = spanWireFacts(buf);
  let count = 0;
  obj.resourceSpans.forEach((rs, i) => {
    rs.scopeSpans.forEach((ss, j) => {
      ss.spans.forEach((span, k) => {
        count++;
        const f = ((facts[i] || [])[j] || [])[k] || { flags: 0, linkFlags: [], unknown: [] };
        span.flags = f.flags;
        span.links.forEach((link, l) => {
          link.flags = f.linkFlags[l] || 0;
        });
        if (f.unknown.length) span._unknown_fields = f.unknown;
      });
    });
  });
  return { request: obj, spanCount: count };
}

// ---------------------------------------------------------------- behaviour rules

const rules = [];
const received = { grpc: 0, http: 0 };
let seq = 0;

function normalizeRule(r) {
  if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error("rule must be an object");
  const rule = {
    count: r.count === undefined ? 1 : Number(r.count),
    transport: r.transport || "any",
    delay_ms: Number(r.delay_ms || 0),
    error: !!r.error || r.grpc_code !== undefined || r.http_status !== undefined,
    grpc_code: r.grpc_code === undefined ? 14 : Number(r.grpc_code),
    grpc_message: r.grpc_message === undefined ? "receiver told to fail" : String(r.grpc_message),
    retry_delay_ms: r.retry_delay_ms === undefined ? null : Number(r.retry_delay_ms),
    http_status: r.http_status === undefined ? 503 : Number(r.http_status),
    retry_after: r.retry_after === undefined ? null : String(r.retry_after),
    partial_success: r.partial_success || null,
  };
  if (!Number.isInteger(rule.count) || rule.count < 1) throw new Error("count must be >= 1");
  if (!["grpc", "http", "any"].includes(rule.transport)) throw new Error("bad transport");
  if (!(rule.delay_ms >= 0)) throw new Error("bad delay_ms");
  if (rule.error && rule.grpc_code === 0) throw new Error("grpc_code 0 is not an error");
  if (!Number.isInteger(rule.http_status) || rule.http_status < 100 || rule.http_status > 599) {
    throw new Error("bad http_status");
  }
  return rule;
}

// The behaviour for one arriving request: consumes one unit of the first matching rule.
function takeRule(transport) {
  const i = rules.findIndex((r) => r.transport === "any" || r.transport === transport);
  if (i < 0) return null;
  const rule = rules[i];
  if (--rule.count === 0) rules.splice(i, 1);
  return rule;
}

function record(entry) {
  entry.seq = ++seq;
  received[entry.transport]++;
  // One write(2) per line: a reader never sees two lines interleaved.
  fs.writeSync(outFd, JSON.stringify(entry) + "\n");
}

function encodeResponse(rule) {
  const body = {};
  if (rule && rule.partial_success) {
    body.partialSuccess = {
      rejectedSpans: Number(rule.partial_success.rejected_spans || 0),
      errorMessage: String(rule.partial_success.error_message || ""),
    };
  }
  return Buffer.from(ExportResponse.encode(ExportResponse.fromObject(body)).finish());
}

function partialOf(rule) {
  return rule && rule.partial_success && !rule.error ? rule.partial_success : undefined;
}

// ---------------------------------------------------------------- gRPC server

// grpc-js strips grpc-encoding (and a few others) from the metadata it hands to handlers and
// decompresses messages transparently. To record what was really on the wire, tap the HTTP/2
// server grpc-js creates: our 'stream' listener runs before grpc-js's (it is added first), keeps
// the raw headers and the message's compressed flag, and tags the stream with an id that grpc-js
// then passes to the handler as metadata.
const TAP_HEADER = "x-receiver-tap-id";
const taps = new Map();
let tapSeq = 0;

function installHttp2Tap() {
  const origCreateServer = http2.createServer;
  http2.createServer = function tappedCreateServer(...args) {
    const server = origCreateServer.apply(this, args);
    server.on("stream", (stream, headers) => {
      const id = String(++tapSeq);
      const raw = {};
      for (const [k, v] of Object.entries(headers)) {
        raw[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : String(v);
      }
      const tap = { headers: raw, compressedFlag: null, wireBytes: 0 };
      taps.set(id, tap);
      headers[TAP_HEADER] = id;
      stream.on("data", (chunk) => {
        if (tap.compressedFlag === null && chunk.length > 0) tap.compressedFlag = chunk[0] === 1;
        tap.wireBytes += chunk.length;
      });
      stream.on("close", () => {
        // Keep the entry briefly: the handler may still run after a client reset.
        setTimeout(() => taps.delete(id), 5000).unref();
      });
    });
    return server;
  };
}

function retryInfoDetails(code, message, delayMs) {
  // google.rpc.Status{code=1, message=2, details=3: Any{type_url=1, value=2}}
  // google.rpc.RetryInfo{retry_delay=1: google.protobuf.Duration{seconds=1, nanos=2}}
  const dur = protobuf.Writer.create();
  dur.uint32(8).int64(Math.floor(delayMs / 1000));
  dur.uint32(16).int32((delayMs % 1000) * 1e6);
  const retryInfo = protobuf.Writer.create();
  retryInfo.uint32(10).bytes(dur.finish());
  const any = protobuf.Writer.create();
  any.uint32(10).string("type.googleapis.com/google.rpc.RetryInfo");
  any.uint32(18).bytes(retryInfo.finish());
  const st = protobuf.Writer.create();
  st.uint32(8).int32(code);
  st.uint32(18).string(message);
  st.uint32(26).bytes(any.finish());
  return Buffer.from(st.finish());
}

function startGrpc(grpc) {
  const service = {
    Export: {
      path: GRPC_PATH,
      requestStream: false,
      responseStream: false,
      // Keep the bytes: the handler decodes them, so a malformed body is recorded, not lost.
      requestSerialize: (b) => b,
      requestDeserialize: (b) => b,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => b,
    },
  };
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_BODY,
    "grpc.max_send_message_length": MAX_BODY,
  });
  server.addService(service, {
    Export(call, callback) {
      let done = false;
      const reply = (...args) => {
        if (done) return;
        done = true;
        try {
          callback(...args);
        } catch (e) {
          log(`grpc reply failed: ${e.message}`);
        }
      };
      try {
        const md = call.metadata.getMap();
        const tapId = md[TAP_HEADER] ? String(md[TAP_HEADER]) : "";
        const tap = taps.get(tapId);
        let headers = {};
        if (tap) {
          headers = tap.headers;
        } else {
          for (const [k, v] of Object.entries(md)) headers[k] = Buffer.isBuffer(v) ? v.toString("base64") : String(v);
        }
        delete headers[TAP_HEADER];
        const body = call.request;
        const encoding = headers["grpc-encoding"] || "identity";
        const entry = {
          time_unix_ms: Date.now(),
          transport: "grpc",
          path: GRPC_PATH,
          headers,
          compressed: !!(tap && tap.compressedFlag) && encoding !== "identity",
          wire_bytes: tap ? Math.max(0, tap.wireBytes - 5) : body.length,
          body_bytes: body.length,
          accepted: false,
          span_count: 0,
          request: null,
        };
        let decoded = null;
        try {
          decoded = decodeRequest(body);
          entry.request = decoded.request;
          entry.span_count = decoded.spanCount;
        } catch (e) {
          entry.error = `decode failed: ${e.message}`;
        }
        const rule = decoded ? takeRule("grpc") : null;
        const delay = rule ? rule.delay_ms : 0;
        let status;
        if (!decoded) {
          status = { code: 3, details: entry.error }; // INVALID_ARGUMENT
        } else if (rule && rule.error) {
          status = { code: rule.grpc_code, details: rule.grpc_message };
          if (rule.retry_delay_ms !== null) {
            const md2 = new grpc.Metadata();
            md2.set("grpc-status-details-bin",
                    retryInfoDetails(rule.grpc_code, rule.grpc_message, rule.retry_delay_ms));
            status.metadata = md2;
          }
        }
        entry.response = status ? { grpc_code: status.code, grpc_message: status.details }
                                : { grpc_code: 0 };
        if (delay) entry.response.delay_ms = delay;
        const partial = partialOf(rule);
        if (partial && !status) entry.response.partial_success = partial;
        entry.accepted = !status;
        record(entry);
        const answer = () => {
          if (status) reply(status);
          else reply(null, encodeResponse(rule));
        };
        if (delay) setTimeout(answer, delay);
        else answer();
      } catch (e) {
        log(`grpc handler error: ${e.stack}`);
        reply({ code: 13, details: `receiver error: ${e.message}` });
      }
    },
  });
  return new Promise((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.grpcPort}`, grpc.ServerCredentials.createInsecure(),
      (err, port) => {
        if (err) reject(err);
        else resolve({ server, port });
      });
  });
}

// ---------------------------------------------------------------- HTTP server

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let n = 0;
    req.on("data", (c) => {
      n += c.length;
      if (n > limit) {
        reject(Object.assign(new Error("body too large"), { status: 413 }));
        req.destroy();
        return;
      }
      parts.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
    req.on("aborted", () => reject(new Error("client aborted")));
  });
}

function sendJson(res, status, obj) {
  const body = Buffer.from(JSON.stringify(obj) + "\n");
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": body.length });
  res.end(body);
}

async function handleControl(req, res) {
  if (req.method === "GET") return sendJson(res, 200, { received, rules });
  if (req.method === "DELETE") {
    rules.length = 0;
    return sendJson(res, 200, { rules });
  }
  if (req.method !== "POST") return sendJson(res, 405, { error: "GET, POST or DELETE" });
  const body = await readBody(req, 1 << 20);
  let rule;
  try {
    rule = normalizeRule(JSON.parse(body.toString("utf8") || "{}"));
  } catch (e) {
    return sendJson(res, 400, { error: e.message });
  }
  rules.push(rule);
  return sendJson(res, 200, { rules });
}

async function handleExport(req, res) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    headers[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  const entry = {
    time_unix_ms: Date.now(),
    transport: "http",
    path: req.url,
    method: req.method,
    headers,
    compressed: false,
    wire_bytes: 0,
    body_bytes: 0,
    accepted: false,
    span_count: 0,
    request: null,
  };
  const fail = (status, error) => {
    entry.error = error;
    entry.response = { http_status: status };
    record(entry);
    sendJson(res, status, { error });
  };
  if (req.method !== "POST") return fail(405, `method ${req.method}`);
  let body;
  try {
    body = await readBody(req, MAX_BODY);
  } catch (e) {
    if (e.status) return fail(e.status, e.message);
    entry.error = `read failed: ${e.message}`;
    entry.response = { http_status: 0 };
    record(entry);
    return undefined;
  }
  entry.wire_bytes = body.length;
  const contentType = (headers["content-type"] || "").split(";")[0].trim().toLowerCase();
  if (contentType !== "application/x-protobuf") {
    return fail(415, `unsupported content-type ${headers["content-type"] || "(none)"}`);
  }
  const encoding = (headers["content-encoding"] || "identity").trim().toLowerCase();
  if (encoding === "gzip") {
    try {
      body = zlib.gunzipSync(body, { maxOutputLength: MAX_BODY });
      entry.compressed = true;
    } catch (e) {
      return fail(400, `gunzip failed: ${e.message}`);
    }
  } else if (encoding !== "identity") {
    return fail(415, `unsupported content-encoding ${encoding}`);
  }
  entry.body_bytes = body.length;
  let decoded;
  try {
    decoded = decodeRequest(body);
  } catch (e) {
    return fail(400, `decode failed: ${e.message}`);
  }
  entry.request = decoded.request;
  entry.span_count = decoded.spanCount;
  const rule = takeRule("http");
  const delay = rule ? rule.delay_ms : 0;
  const partial = partialOf(rule);
  if (rule && rule.error) {
    entry.response = { http_status: rule.http_status };
    if (rule.retry_after !== null) entry.response.retry_after = rule.retry_after;
  } else {
    entry.response = { http_status: 200 };
    if (partial) entry.response.partial_success = partial;
    entry.accepted = true;
  }
  if (delay) entry.response.delay_ms = delay;
  record(entry);
  const answer = () => {
    if (res.destroyed || res.writableEnded) return;
    if (rule && rule.error) {
      // OTLP/HTTP: an error body is a google.rpc.Status; an empty body is allowed too.
      const h = { "Content-Type": "text/plain", Connection: "close" };
      if (rule.retry_after !== null) h["Retry-After"] = rule.retry_after;
      const b = Buffer.from("receiver told to fail\n");
      h["Content-Length"] = b.length;
      res.writeHead(rule.http_status, h);
      res.end(b);
      return;
    }
    const b = encodeResponse(rule);
    res.writeHead(200, { "Content-Type": "application/x-protobuf", "Content-Length": b.length });
    res.end(b);
  };
  if (delay) setTimeout(answer, delay);
  else answer();
  return undefined;
}

function startHttp() {
  const server = http.createServer((req, res) => {
    res.on("error", (e) => log(`http response error: ${e.message}`));
    req.on("error", () => {});
    const path = (req.url || "").split("?")[0];
    const handler = path === "/control" ? handleControl : handleExport;
    handler(req, res).catch((e) => {
      log(`http handler error: ${e.stack}`);
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, { error: e.message });
    });
  });
  server.on("clientError", (err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  server.keepAliveTimeout = 30000;
  server.requestTimeout = 0; // delay rules may hold a request for longer than the default
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.httpPort, opts.host, () => resolve({ server, port: server.address().port }));
  });
}

// ---------------------------------------------------------------- main

async function main() {
  installHttp2Tap();
  const grpc = require("@grpc/grpc-js"); // after the tap, though it only matters at bind time
  const g = await startGrpc(grpc);
  const h = await startHttp();
  process.stdout.write(`ready ${g.port} ${h.port}\n`);
  const stop = () => {
    h.server.close();
    h.server.closeAllConnections();
    g.server.forceShutdown();
    try {
      fs.fsyncSync(outFd);
    } catch (e) {
      // not a regular file: nothing to sync
    }
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

process.on("uncaughtException", (e) => log(`uncaught: ${e.stack}`));
process.on("unhandledRejection", (e) => log(`unhandled rejection: ${e && e.stack}`));

main().catch((e) => {
  log(`cannot start: ${e.message}`);
  process.exit(1);
});
