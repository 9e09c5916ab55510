// ht_otlp_sink: an OTLP trace receiver that parses, counts and discards, so the export
// benchmarks measure the agent and not the collector. And a load mode that measures the sink.
//
//   ht_otlp_sink [--listen 127.0.0.1] [--grpc-port 4317] [--http-port 4318]
//                [--stats-file PATH] [--parse wire|full]
//   ht_otlp_sink load --protocol grpc|http/protobuf [--endpoint URL] [--in-flight N]
//                     [--batch 512] [--seconds S] [--warmup S] [--gzip]
//
// Serve mode: OTLP/gRPC (TraceService/Export) and OTLP/HTTP (POST /v1/traces, binary
// protobuf, gzip accepted); port 0 turns a protocol off. Every request is read and answered
// with an empty ExportTraceServiceResponse (gRPC OK / HTTP 200). --parse wire (the default)
// walks the protobuf wire format down to each span and its attributes, checking every field's
// framing, and counts (~10x cheaper than a full parse: a benchmark's sink must cost little
// next to the agent it measures); --parse full parses into the generated messages with
// libprotobuf, as a collector does. A request that does not read is refused (gRPC
// INVALID_ARGUMENT / HTTP 400) and counted as bad.
//
// Counts: --stats-file PATH is rewritten (write + rename, so a reader never sees half a line)
// every 200 ms as one JSON line, first as soon as the ports listen (a script may wait for the
// file to appear): {"uptime_s", "requests", "grpc_requests", "http_requests", "spans",
// "resource_spans", "bytes", "http_wire_bytes", "bad_requests", "http_connections"}. On SIGINT
// or SIGTERM the sink stops, rewrites the file a last time and prints the same JSON on stdout,
// prefixed "final: ".
#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/message_allocator.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "tests/bench/sink_counters.h"
#include "tests/bench/sink_http_server.h"
#include "tests/bench/sink_load.h"

namespace hoptrace::bench {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;

struct SinkOptions {
  std::string listen = "127.0.0.1";
  uint16_t grpc_port = 4317;  // 0 = off
  uint16_t http_port = 4318;  // 0 = off
  std::string stats_file;     // empty = none
  SinkParse parse = SinkParse::kWire;
  std::chrono::milliseconds stats_interval{200};
  size_t max_message_bytes = 64u << 20;
};

using ExportRequest = collector::ExportTraceServiceRequest;
using ExportResponse = collector::ExportTraceServiceResponse;

// Each call's request parsed onto its own arena, as the HTTP receiver does: a batch is
// thousands of small messages, and allocating and freeing them one by one was 40% of the sink's
// CPU (measured with otlp_export.sh: 8.5 -> 4.9 us of sink CPU per span on this allocator).
class ArenaMessageAllocator final : public grpc::MessageAllocator<ExportRequest, ExportResponse> {
 public:
  grpc::MessageHolder<ExportRequest, ExportResponse>* AllocateMessages() override {
    return new Holder;
  }

 private:
  class Holder final : public grpc::MessageHolder<ExportRequest, ExportResponse> {
   public:
    Holder() {
      set_request(google::protobuf::Arena::CreateMessage<ExportRequest>(&arena_));
      set_response(google::protobuf::Arena::CreateMessage<ExportResponse>(&arena_));
    }
    void Release() override { delete this; }

   private:
    google::protobuf::Arena arena_;
  };
};

// The callback API: gRPC runs Export() on its own threads as calls arrive, so any number of
// calls are in flight without a thread per call or a completion-queue loop of ours.
class TraceServiceImpl final : public collector::TraceService::CallbackService {
 public:
  explicit TraceServiceImpl(SinkCounters* counters) : counters_(counters) {}

  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* ctx,
                                   const ExportRequest* request,
                                   ExportResponse* /*response*/) override {
    // gRPC has parsed the message already; the size is of the uncompressed serialization.
    counters_->CountRequest(*request, request->ByteSizeLong());
    counters_->Add(counters_->grpc_requests, 1);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  SinkCounters* counters_;
};

// The same service on the raw bytes (--parse wire): gRPC does not parse them.
class RawTraceServiceImpl final
    : public collector::TraceService::WithRawCallbackMethod_Export<collector::TraceService::Service> {
 public:
  explicit RawTraceServiceImpl(SinkCounters* counters) : counters_(counters) {}

  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::vector<grpc::Slice> slices;
    std::optional<WireCounts> counts;
    size_t size = 0;
    if (request->Dump(&slices).ok()) {
      std::string joined;  // only when gRPC delivered the message in pieces
      std::string_view bytes;
      if (slices.size() == 1) {
        bytes = {reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()};
      } else {
        for (const grpc::Slice& s : slices) {
          joined.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
        bytes = joined;
      }
      size = bytes.size();
      counts = CountWire(bytes);
    }
    if (!counts) {
      counters_->Add(counters_->bad_requests, 1);
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "not an ExportTraceServiceRequest"));
      return reactor;
    }
    counters_->CountRequest(*counts, size);
    counters_->Add(counters_->grpc_requests, 1);
    grpc::Slice empty;  // the serialized empty ExportTraceServiceResponse
    *response = grpc::ByteBuffer(&empty, 1);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  SinkCounters* counters_;
};

void WriteStatsFile(const std::string& path, const std::string& json) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json << '\n';
    if (!out) return;  // disk full or gone: the next interval tries again
  }
  std::rename(tmp.c_str(), path.c_str());
}

int Serve(const SinkOptions& o) {
  // SIGINT/SIGTERM are taken by sigtimedwait() in the main thread only: blocked before any
  // thread starts, so every thread (gRPC's, ours) inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the sink

  SinkCounters counters;
  const auto started = std::chrono::steady_clock::now();
  auto uptime = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };

  TraceServiceImpl service(&counters);
  ArenaMessageAllocator allocator;
  service.SetMessageAllocatorFor_Export(&allocator);
  RawTraceServiceImpl raw_service(&counters);
  std::unique_ptr<grpc::Server> grpc_server;
  if (o.grpc_port != 0) {
    grpc::ServerBuilder builder;
    int bound = 0;
    builder.AddListeningPort(o.listen + ":" + std::to_string(o.grpc_port),
                             grpc::InsecureServerCredentials(), &bound);
    if (o.parse == SinkParse::kFull) {
      builder.RegisterService(&service);
    } else {
      builder.RegisterService(&raw_service);
    }
    builder.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_bytes));
    grpc_server = builder.BuildAndStart();
    if (!grpc_server || bound == 0) {
      throw std::runtime_error("gRPC cannot listen on " + o.listen + ":" +
                               std::to_string(o.grpc_port));
    }
  }
  std::optional<SinkHttpServer> http_server;
  if (o.http_port != 0) {
    SinkHttpOptions ho;
    ho.listen = o.listen;
    ho.port = o.http_port;
    ho.max_body_bytes = o.max_message_bytes;
    ho.parse = o.parse;
    http_server.emplace(ho, &counters);
  }
  std::fprintf(stderr, "ht_otlp_sink: grpc %s:%u, http %s:%u (0 = off), parse %s\n",
               o.listen.c_str(), o.grpc_port, o.listen.c_str(), o.http_port,
               o.parse == SinkParse::kFull ? "full" : "wire");

  WriteStatsFile(o.stats_file, counters.Json(uptime()));
  timespec interval{};
  interval.tv_sec = o.stats_interval.count() / 1000;
  interval.tv_nsec = (o.stats_interval.count() % 1000) * 1000000;
  int sig;
  while ((sig = sigtimedwait(&stop_signals, nullptr, &interval)) < 0) {
    WriteStatsFile(o.stats_file, counters.Json(uptime()));
  }

  // Calls under way get a moment to finish, so what a client saw accepted is counted.
  if (grpc_server) {
    grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (http_server) http_server->Stop();
  const std::string json = counters.Json(uptime());
  WriteStatsFile(o.stats_file, json);
  std::printf("final: %s\n", json.c_str());
  std::fprintf(stderr, "ht_otlp_sink: stopped by %s\n", strsignal(sig));
  return 0;
}

}  // namespace
}  // namespace hoptrace::bench

int main(int argc, char** argv) {
  using hoptrace::OtlpProtocol;
  hoptrace::bench::SinkOptions sink;
  hoptrace::bench::LoadOptions load;

  CLI::App app{"OTLP trace receiver that counts and discards (benchmarks)"};
  app.add_option("--listen", sink.listen, "IPv4 address for both ports")
      ->capture_default_str();
  app.add_option("--grpc-port", sink.grpc_port, "OTLP/gRPC port, 0 = off")->capture_default_str();
  app.add_option("--http-port", sink.http_port, "OTLP/HTTP port, 0 = off")->capture_default_str();
  app.add_option("--stats-file", sink.stats_file,
                 "rewrite PATH every 200 ms with the counts as one JSON line");
  std::string parse = "wire";
  app.add_option("--parse", parse,
                 "wire: walk the protobuf wire format to the spans; full: libprotobuf")
      ->check(CLI::IsMember({"wire", "full"}))
      ->capture_default_str();

  CLI::App* lc = app.add_subcommand("load", "send batches through the project's exporters");
  std::string protocol = "grpc";
  lc->add_option("--protocol", protocol, "grpc or http/protobuf")
      ->check(CLI::IsMember({"grpc", "http/protobuf"}))
      ->capture_default_str();
  lc->add_option("--endpoint", load.endpoint,
                 "grpc: http://127.0.0.1:4317; http/protobuf: the full URL "
                 "(http://127.0.0.1:4318/v1/traces)");
  lc->add_option("--in-flight", load.in_flight, "lanes: exporters on their own threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  lc->add_option("--batch", load.batch, "spans per export")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  lc->add_option("--seconds", load.seconds, "measured time")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  lc->add_option("--warmup", load.warmup, "seconds not counted, before")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  lc->add_flag("--gzip", load.gzip, "compress (gRPC message compression / HTTP gzip body)");

  CLI11_PARSE(app, argc, argv);
  try {
    if (lc->parsed()) {
      load.protocol = protocol == "grpc" ? OtlpProtocol::kGrpc : OtlpProtocol::kHttpProtobuf;
      return hoptrace::bench::RunLoad(load);
    }
    sink.parse = parse == "full" ? hoptrace::bench::SinkParse::kFull
                                 : hoptrace::bench::SinkParse::kWire;
    return hoptrace::bench::Serve(sink);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ht_otlp_sink: %s\n", e.what());
    return 1;
  }
}
