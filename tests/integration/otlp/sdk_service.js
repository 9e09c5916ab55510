#!/usr/bin/env node
// An HTTP service instrumented with the OpenTelemetry JS SDK, for hoptrace's interop tests:
// hoptrace's spans and an SDK's spans must join into one trace.
//
//   node sdk_service.js [--host 127.0.0.1] [--port 0] [--downstream URL]
//   env: OTEL_SERVICE_NAME (service.name of its resource)
//        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT (where spans go;
//          read by the exporter itself), OTEL_EXPORTER_OTLP_PROTOCOL grpc | http/protobuf
//          (default http/protobuf), OTEL_BSP_SCHEDULE_DELAY (default here: 100 ms)
//        SDK_SERVICE_DOWNSTREAM (instead of --downstream)
// Prints "listening <port>" when it accepts connections.
//
// Routes:
//   GET /call    http.get(downstream) (W3C traceparent injected by HttpInstrumentation), then
//                answer 200 with "<downstream status> <traceparent it sent>" (502 on failure)
//   anything else: answer 200 "ok" (a plain SDK SERVER span)
// SIGTERM / SIGINT: flush and shut the tracer provider down, then exit 0.
"use strict";

if (!process.env.OTEL_BSP_SCHEDULE_DELAY) process.env.OTEL_BSP_SCHEDULE_DELAY = "100";

const { diag, DiagConsoleLogger, DiagLogLevel } = require("@opentelemetry/api");
const { NodeTracerProvider } = require("@opentelemetry/sdk-trace-node");
const { BatchSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { registerInstrumentations } = require("@opentelemetry/instrumentation");
const { HttpInstrumentation } = require("@opentelemetry/instrumentation-http");
const { Resource } = require("@opentelemetry/resources");
const { SEMRESATTRS_SERVICE_NAME } = require("@opentelemetry/semantic-conventions");

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

function parseArgs(argv) {
  const opts = {
    host: "127.0.0.1",
    port: 0,
    downstream: process.env.SDK_SERVICE_DOWNSTREAM || "",
  };
  for (let i = 2; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === "--host") opts.host = v, i++;
    else if (argv[i] === "--port") opts.port = Number(v), i++;
    else if (argv[i] === "--downstream") opts.downstream = v, i++;
    else {
      process.stderr.write(`sdk_service: unknown argument ${argv[i]}\n`);
      process.exit(2);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv);

function makeExporter() {
  const protocol = (process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ||
                    process.env.OTEL_EXPORTER_OTLP_PROTOCOL || "http/protobuf").trim();
  if (protocol === "grpc") {
    const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-grpc");
    return new OTLPTraceExporter();
  }
  if (protocol !== "http/protobuf") {
    process.stderr.write(`sdk_service: unsupported protocol ${protocol}\n`);
    process.exit(2);
  }
  const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
  return new OTLPTraceExporter();
}

const provider = new NodeTracerProvider({
  resource: Resource.default().merge(new Resource({
    [SEMRESATTRS_SERVICE_NAME]: process.env.OTEL_SERVICE_NAME || "sdk-service",
  })),
});
provider.addSpanProcessor(new BatchSpanProcessor(makeExporter()));
provider.register(); // W3C trace context propagator + AsyncLocalStorage context manager
registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });

// Required only after the instrumentation is registered, so `http` is patched.
const http = require("http");

function callDownstream(cb) {
  const req = http.get(opts.downstream, (res) => {
    res.resume();
    res.on("end", () => cb(null, res.statusCode, req.getHeader("traceparent") || ""));
  });
  req.setTimeout(20000, () => req.destroy(new Error("downstream timeout")));
  req.on("error", (e) => cb(e));
}

const server = http.createServer((req, res) => {
  const path = (req.url || "").split("?")[0];
  const reply = (code, text) => {
    const body = Buffer.from(text + "\n");
    res.writeHead(code, { "Content-Type": "text/plain", "Content-Length": body.length });
    res.end(body);
  };
  if (path === "/call") {
    if (!opts.downstream) return reply(500, "no downstream configured");
    return callDownstream((err, status, traceparent) => {
      if (err) reply(502, `downstream failed: ${err.message}`);
      else reply(200, `${status} ${traceparent}`);
    });
  }
  return reply(200, "ok");
});

server.listen(opts.port, opts.host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close();
  const hardStop = setTimeout(() => process.exit(1), 10000);
  provider.forceFlush()
    .then(() => provider.shutdown())
    .catch((e) => process.stderr.write(`sdk_service: flush failed: ${e.message}\n`))
    .finally(() => {
      clearTimeout(hardStop);
      process.exit(0);
    });
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
