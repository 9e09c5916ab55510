// The gRPC exporter against a real in-process gRPC server on 127.0.0.1 (no mocks on the wire),
// plus one test through the stub seam with a fake clock for the export time budget.
#include "exporters/otlp/otlp_grpc_exporter.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <deque>
#include <mutex>

#include "exporters/otlp/otlp_translator.h"
#include "exporters/otlp/rpc_status.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "tests/unit/otlp_test_spans.h"

namespace hoptrace {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;
using google::protobuf::util::MessageDifferencer;
using std::chrono::milliseconds;

struct Reply {
  Reply(grpc::Status s = grpc::Status::OK, int64_t rejected = 0, std::string message = "")
      : status(std::move(s)), rejected_spans(rejected), partial_message(std::move(message)) {}
  grpc::Status status;
  int64_t rejected_spans;
  std::string partial_message;
};

// A TraceService that records every request and answers from a script (then OK).
class FakeCollector final : public collector::TraceService::Service {
 public:
  grpc::Status Export(grpc::ServerContext* ctx, const collector::ExportTraceServiceRequest* req,
                      collector::ExportTraceServiceResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(*req);
    std::multimap<std::string, std::string> md;
    for (const auto& [k, v] : ctx->client_metadata()) {
      md.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    metadata_.push_back(std::move(md));
    if (script_.empty()) return grpc::Status::OK;
    Reply r = std::move(script_.front());
    script_.pop_front();
    if (r.rejected_spans != 0 || !r.partial_message.empty()) {
      resp->mutable_partial_success()->set_rejected_spans(r.rejected_spans);
      resp->mutable_partial_success()->set_error_message(r.partial_message);
    }
    return r.status;
  }

  void Script(std::vector<Reply> replies) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(replies.begin(), replies.end());
  }
  std::vector<collector::ExportTraceServiceRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<std::multimap<std::string, std::string>> metadata() {
    std::lock_guard<std::mutex> lock(mu_);
    return metadata_;
  }

 private:
  std::mutex mu_;
  std::deque<Reply> script_;
  std::vector<collector::ExportTraceServiceRequest> requests_;
  std::vector<std::multimap<std::string, std::string>> metadata_;
};

class OtlpGrpcExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&collector_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    options_.protocol = OtlpProtocol::kGrpc;
    options_.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    options_.timeout = milliseconds(5000);
    options_.retry = {/*max_attempts=*/5, milliseconds(1), milliseconds(5), 2.0};
    options_.scope_version = "9.9.9";
  }
  void TearDown() override { server_->Shutdown(); }

  collector::ExportTraceServiceRequest Expected() {
    return BuildExportRequest(otlp_test::SampleBatch(), "hoptrace", "9.9.9");
  }

  FakeCollector collector_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  OtlpExporterOptions options_;
};

TEST_F(OtlpGrpcExporterTest, ServerReceivesTheTranslatedBatchWithHeaders) {
  options_.headers = {{"X-Tenant", "acme"}, {"authorization", "Bearer t0k"}};
  OtlpGrpcExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);

  const auto requests = collector_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(requests[0], Expected()));
  const auto md = collector_.metadata()[0];
  ASSERT_EQ(md.count("x-tenant"), 1u);  // lower-cased, as gRPC requires
  EXPECT_EQ(md.find("x-tenant")->second, "acme");
  EXPECT_EQ(md.find("authorization")->second, "Bearer t0k");
  ASSERT_EQ(md.count("user-agent"), 1u);
  EXPECT_EQ(md.find("user-agent")->second.rfind("hoptrace-otlp-exporter/", 0), 0u);
  EXPECT_EQ(md.count("grpc-encoding"), 0u);

  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.exports, 1u);
  EXPECT_EQ(s.spans_exported, 3u);
  EXPECT_EQ(s.export_requests, 1u);
  EXPECT_EQ(s.export_errors, 0u);
  EXPECT_EQ(s.spans_failed(), 0u);
  EXPECT_GT(s.last_export_latency_ns, 0u);
  EXPECT_EQ(s.total_export_latency_ns, s.last_export_latency_ns);
}

TEST_F(OtlpGrpcExporterTest, HeaderGrpcCannotCarryIsAStartupError) {
  options_.headers = {{"x-note", "caf\xc3\xa9"}};
  EXPECT_THROW(OtlpGrpcExporter exporter(options_), std::invalid_argument);
  options_.headers = {{"x-note-bin", "caf\xc3\xa9"}};  // binary metadata may hold any byte
  EXPECT_NO_THROW(OtlpGrpcExporter exporter(options_));
}

TEST_F(OtlpGrpcExporterTest, RetriesUnavailableTwiceThenSucceeds) {
  collector_.Script({{grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting")},
                     {grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting")}});
  OtlpGrpcExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  const auto requests = collector_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(MessageDifferencer::Equals(requests[2], Expected()));
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.export_requests, 3u);
  EXPECT_EQ(s.export_errors, 2u);
  EXPECT_EQ(s.spans_exported, 3u);
  EXPECT_EQ(s.spans_failed(), 0u);
}

TEST_F(OtlpGrpcExporterTest, InvalidArgumentIsNotRetried) {
  collector_.Script({{grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad trace id")}});
  OtlpGrpcExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  EXPECT_EQ(collector_.requests().size(), 1u);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.spans_failed_non_retryable, 3u);
  EXPECT_EQ(s.spans_exported, 0u);
  EXPECT_EQ(s.export_errors, 1u);
}

TEST_F(OtlpGrpcExporterTest, PartialSuccessIsCountedAndNotRetried) {
  collector_.Script({{grpc::Status::OK, 2, "2 spans had no name"}});
  OtlpGrpcExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  EXPECT_EQ(collector_.requests().size(), 1u);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.spans_rejected, 2u);
  EXPECT_EQ(s.spans_exported, 1u);
  EXPECT_EQ(s.spans_failed(), 0u);
}

TEST_F(OtlpGrpcExporterTest, GzipRequestDecodesToTheSameRequest) {
  options_.compression = OtlpCompression::kGzip;
  OtlpGrpcExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  ASSERT_EQ(collector_.requests().size(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(collector_.requests()[0], Expected()));
}

// gRPC hides grpc-encoding from the server's metadata, so prove the message really travels
// gzip-compressed: a server that has gzip disabled must refuse it, and only it.
TEST_F(OtlpGrpcExporterTest, GzipIsReallyOnTheWire) {
  FakeCollector no_gzip_collector;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
  builder.RegisterService(&no_gzip_collector);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  options_.endpoint = "http://127.0.0.1:" + std::to_string(port);
  options_.retry.max_attempts = 1;

  OtlpGrpcExporter plain(options_);
  EXPECT_EQ(plain.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  options_.compression = OtlpCompression::kGzip;
  OtlpGrpcExporter gzip(options_);
  EXPECT_EQ(gzip.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  EXPECT_EQ(gzip.stats().spans_failed_non_retryable, 3u);  // UNIMPLEMENTED
  EXPECT_EQ(no_gzip_collector.requests().size(), 1u);
  server->Shutdown();
}

TEST_F(OtlpGrpcExporterTest, ResourceExhaustedIsRetriedOnlyWithRetryInfo) {
  collector_.Script({{grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "quota")}});
  {
    OtlpGrpcExporter exporter(options_);
    EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
    EXPECT_EQ(exporter.stats().spans_failed_non_retryable, 3u);
  }
  ASSERT_EQ(collector_.requests().size(), 1u);

  const std::string details = EncodeRpcStatus({8, "slow down", milliseconds(200)});
  collector_.Script({{grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "slow down", details)}});
  OtlpGrpcExporter exporter(options_);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  // The back-off is at most 1 ms here; only RetryInfo can make it wait this long.
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200));
  EXPECT_EQ(collector_.requests().size(), 3u);
}

TEST_F(OtlpGrpcExporterTest, AfterALostBatchFailsFastUntilASuccess) {
  options_.retry.max_attempts = 3;
  const grpc::Status down(grpc::StatusCode::UNAVAILABLE, "down");
  collector_.Script({{down}, {down}, {down}, {down}});
  OtlpGrpcExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  EXPECT_EQ(collector_.requests().size(), 3u);
  EXPECT_EQ(exporter.stats().spans_failed_retries_exhausted, 3u);
  // The collector is known to be down: one attempt, not three.
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  EXPECT_EQ(collector_.requests().size(), 4u);
  // It is back: success, and the full retry budget returns.
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  collector_.Script({{down}, {down}});
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  EXPECT_EQ(collector_.requests().size(), 8u);
  EXPECT_EQ(exporter.stats().spans_exported, 6u);
}

TEST_F(OtlpGrpcExporterTest, UnreachableCollectorLosesTheBatchAsRetryable) {
  server_->Shutdown();
  options_.retry.max_attempts = 2;
  options_.timeout = milliseconds(2000);
  OtlpGrpcExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.export_requests, 2u);
  EXPECT_EQ(s.spans_failed_retries_exhausted + s.spans_failed_timeout, 3u);
}

// Through the seam: a stub on a fake clock whose every call takes a whole second and times
// out, to check the per-attempt deadline and the export's overall budget exactly.
class FakeClock final : public RetryClock {
 public:
  std::chrono::steady_clock::time_point Now() override { return now; }
  void SleepFor(std::chrono::nanoseconds d) override { now += d; }
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
};

class SlowStub final : public OtlpTraceServiceStub {
 public:
  explicit SlowStub(FakeClock* clock) : clock_(clock) {}
  grpc::Status Export(grpc::ClientContext* ctx, const grpc::ByteBuffer&,
                      collector::ExportTraceServiceResponse*) override {
    deadlines.push_back(std::chrono::duration_cast<milliseconds>(ctx->deadline() -
                                                                 std::chrono::system_clock::now()));
    clock_->now += milliseconds(1000);
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "too slow");
  }
  std::vector<milliseconds> deadlines;

 private:
  FakeClock* clock_;
};

TEST(OtlpGrpcExporterBudgetTest, GivesUpWhenTheExportDeadlineWouldPass) {
  FakeClock clock;
  auto stub = std::make_unique<SlowStub>(&clock);
  SlowStub* raw = stub.get();
  OtlpExporterOptions options;
  options.timeout = milliseconds(1000);
  options.max_export_time = milliseconds(2000);
  options.retry = {5, milliseconds(100), milliseconds(1000), 2.0};
  OtlpGrpcExporter exporter(options, std::move(stub), {&clock, [] { return 0.5; }, nullptr});

  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  // Attempt 1: 1000 ms (the timeout); back-off 50 ms; attempt 2: the 950 ms left; then the
  // next back-off would end past the 2000 ms budget.
  ASSERT_EQ(raw->deadlines.size(), 2u);
  EXPECT_NEAR(raw->deadlines[0].count(), 1000, 50);
  EXPECT_NEAR(raw->deadlines[1].count(), 950, 50);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.spans_failed_timeout, 3u);
  EXPECT_EQ(s.export_requests, 2u);
  EXPECT_EQ(s.last_export_latency_ns, 2050u * 1000 * 1000);
}

}  // namespace
}  // namespace hoptrace
