// The whole userspace path under a burst, through the real sinks: N
// synthetic HTTP exchanges (kernel records from the event generator) go
// EventReader -> ConnTracker -> TraceStitcher -> SpanPipeline -> a JSON-lines
// file and the OTLP/gRPC exporter (one per consumer) to an in-process
// collector. Not a timing test: it checks that every span arrives, exactly
// once, everywhere — and, when the collector stalls and the queue is small,
// that every span is either delivered or counted dropped, exactly.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "agent/connections/conn_tracker.h"
#include "agent/export/span_pipeline.h"
#include "agent/kernel/event_reader.h"
#include "agent/process/process_registry.h"
#include "agent/trace/trace_stitcher.h"
#include "event_generator.h"
#include "exporters/console/jsonl_exporter.h"
#include "exporters/otlp/otlp_exporter_factory.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

namespace hoptrace {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;
using testing::ConnGenerator;
using testing::FakeClock;

// Counts span ids; can be told to hold every export until released.
class CountingCollector final : public collector::TraceService::Service {
 public:
  grpc::Status Export(grpc::ServerContext*, const collector::ExportTraceServiceRequest* req,
                      collector::ExportTraceServiceResponse*) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !hold_; });
    for (const auto& rs : req->resource_spans())
      for (const auto& ss : rs.scope_spans())
        for (const auto& s : ss.spans()) {
          ++received_;
          ids_.insert(s.span_id());
        }
    return grpc::Status::OK;
  }
  void Hold(bool hold) {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = hold;
    cv_.notify_all();
  }
  size_t received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  size_t unique() {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  size_t received_ = 0;
  std::set<std::string> ids_;
};

class BurstTest : public ::testing::Test, public EventHandler {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&collector_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    file_ = std::filesystem::path(::testing::TempDir()) /
            ("burst-" + std::to_string(::getpid()) + ".jsonl");
    std::filesystem::remove(file_);
  }
  void TearDown() override {
    server_->Shutdown();
    std::filesystem::remove(file_);
  }

  // The agent's outputs: a JSON-lines file (shared) and one OTLP exporter
  // per consumer with shared counters.
  void MakePipeline(SpanPipelineOptions options) {
    OtlpExporterOptions o;
    o.protocol = OtlpProtocol::kGrpc;
    o.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    o.timeout = std::chrono::milliseconds(30000);
    std::vector<SpanOutput> outputs;
    outputs.push_back(SpanOutput::Shared(std::make_unique<JsonlExporter>(file_)));
    SpanOutput otlp;
    OtlpExporterHooks hooks;
    hooks.counters = std::make_shared<OtlpExporterCounters>();
    for (size_t i = 0; i < options.consumers; ++i) {
      otlp.sinks.push_back(MakeOtlpExporter(o, hooks));
    }
    otlp_ = static_cast<const OtlpExporterBase*>(otlp.sinks.front().get());
    outputs.push_back(std::move(otlp));
    pipeline_ = std::make_unique<SpanPipeline>(std::move(outputs), options);
    stitcher_ = std::make_unique<TraceStitcher>(
        &processes_, [this](Span s) { pipeline_->Submit(std::move(s)); }, TraceStitcherOptions{},
        IdGenerator(11));
    tracker_ = std::make_unique<ConnTracker>(stitcher_.get());
  }

  // n keep-alive exchanges on each of `conns` server connections, interleaved.
  void Burst(int conns, int per_conn) {
    EventReader reader(this);
    std::vector<ConnGenerator> gens;
    for (int c = 0; c < conns; ++c) {
      gens.emplace_back(&clock_, 300, 10 + c, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1",
                        static_cast<uint16_t>(40000 + c));
      reader.Dispatch(gens.back().Open());
    }
    for (int i = 0; i < per_conn; ++i) {
      for (auto& g : gens) {
        reader.Dispatch(g.Data(HT_DIR_INGRESS, "GET /item/" + std::to_string(i) +
                                                   " HTTP/1.1\r\nHost: shop\r\n\r\n"));
        reader.Dispatch(g.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
      }
    }
    for (auto& g : gens) reader.Dispatch(g.Close());
  }

  size_t FileLines() {
    std::ifstream in(file_);
    size_t n = 0;
    for (std::string line; std::getline(in, line);) n += !line.empty();
    return n;
  }

  void OnConnOpen(const ConnEvent& ev) override { tracker_->OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_->OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_->OnConnClose(ev); }
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent&) override {}
  void OnProcIdentity(const ProcIdentityEvent&) override {}

  CountingCollector collector_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::filesystem::path file_;
  FakeClock clock_;
  ProcessRegistry processes_{"testhost", "/nonexistent-proc"};
  std::unique_ptr<SpanPipeline> pipeline_;
  const OtlpExporterBase* otlp_ = nullptr;
  std::unique_ptr<TraceStitcher> stitcher_;
  std::unique_ptr<ConnTracker> tracker_;
};

TEST_F(BurstTest, EverySpanOfABurstReachesEveryOutputExactlyOnce) {
  constexpr int kConns = 50, kPerConn = 400;  // 20 000 exchanges
  SpanPipelineOptions o;
  o.max_queue = 2 * kConns * kPerConn;  // room for all: nothing may be dropped
  o.max_batch = 512;
  o.consumers = 4;
  MakePipeline(o);
  Burst(kConns, kPerConn);
  pipeline_->Shutdown();

  const size_t n = kConns * kPerConn;
  const SpanPipelineStats st = pipeline_->stats();
  EXPECT_EQ(stitcher_->stats().spans, n);
  EXPECT_EQ(st.submitted, n);
  EXPECT_EQ(st.dropped_queue_full, 0u);
  EXPECT_EQ(st.dropped_shutdown, 0u);
  EXPECT_EQ(st.exported, n);
  EXPECT_EQ(otlp_->stats().spans_exported, n);
  EXPECT_EQ(collector_.received(), n);
  EXPECT_EQ(collector_.unique(), n);  // no span twice
  EXPECT_EQ(FileLines(), n);
  EXPECT_EQ(tracker_->tracked_connections(), 0u);
}

TEST_F(BurstTest, AStalledCollectorMakesCountedDropsAndLosesNothingUncounted) {
  constexpr int kConns = 10, kPerConn = 300;  // 3 000 exchanges
  SpanPipelineOptions o;
  o.max_queue = 100;
  o.max_batch = 50;
  o.consumers = 2;
  o.schedule_delay = std::chrono::milliseconds(5);
  MakePipeline(o);
  collector_.Hold(true);
  Burst(kConns, kPerConn);
  // The burst is in; the collector comes back and the pipeline drains.
  collector_.Hold(false);
  pipeline_->Shutdown();

  const size_t n = kConns * kPerConn;
  const SpanPipelineStats st = pipeline_->stats();
  EXPECT_EQ(st.submitted, n);
  EXPECT_GT(st.dropped_queue_full, 0u);
  // What was held (queue + a batch per consumer in flight) at most survived.
  EXPECT_LE(st.exported, o.max_queue + o.consumers * o.max_batch);
  EXPECT_EQ(st.exported + st.dropped_queue_full + st.dropped_shutdown, n);
  EXPECT_EQ(collector_.received(), st.exported);
  EXPECT_EQ(collector_.unique(), st.exported);
  EXPECT_EQ(FileLines(), st.exported);
}

}  // namespace
}  // namespace hoptrace
