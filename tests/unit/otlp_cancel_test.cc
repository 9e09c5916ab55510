// Cancel() ends an export that a collector would otherwise hold for its whole timeout: the
// pipeline calls it when its shutdown deadline passes. The collector here is a real TCP
// listener that accepts connections and never answers (a hung collector).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "exporters/otlp/otlp_grpc_exporter.h"
#include "exporters/otlp/otlp_http_exporter.h"
#include "tests/unit/otlp_test_spans.h"

namespace hoptrace {
namespace {

using namespace std::chrono_literals;

// Listens on 127.0.0.1, lets the kernel complete handshakes (backlog) and never reads.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd_, 16) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
    }
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::unique_ptr<OtlpExporterBase> MakeExporter(OtlpProtocol protocol, int port) {
  OtlpExporterOptions o;
  o.protocol = protocol;
  o.endpoint = "http://127.0.0.1:" + std::to_string(port) +
               (protocol == OtlpProtocol::kHttpProtobuf ? "/v1/traces" : "");
  o.timeout = 20s;  // far longer than the test may take
  if (protocol == OtlpProtocol::kGrpc) return std::make_unique<OtlpGrpcExporter>(o);
  return std::make_unique<OtlpHttpExporter>(o);
}

class OtlpCancelTest : public ::testing::TestWithParam<OtlpProtocol> {};

TEST_P(OtlpCancelTest, CancelEndsAnExportTheCollectorNeverAnswers) {
  SilentListener collector;
  auto exporter = MakeExporter(GetParam(), collector.port());
  const auto batch = otlp_test::SampleBatch();
  auto pending = std::async(std::launch::async, [&] { return exporter->Export(batch); });
  // The export is under way and stays so: the collector never answers.
  ASSERT_EQ(pending.wait_for(300ms), std::future_status::timeout);
  const auto cancelled_at = std::chrono::steady_clock::now();
  exporter->Cancel();
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready) << "Cancel() did not end the export";
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, 3s);
  EXPECT_EQ(pending.get(), ExportResult::kFailure);
  EXPECT_EQ(exporter->stats().spans_failed_timeout, batch.size());
  // Later exports lose their batch at once instead of waiting for the collector.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(exporter->Export(batch), ExportResult::kFailure);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(exporter->stats().spans_failed_timeout, 2 * batch.size());
}

INSTANTIATE_TEST_SUITE_P(Transports, OtlpCancelTest,
                         ::testing::Values(OtlpProtocol::kGrpc, OtlpProtocol::kHttpProtobuf),
                         [](const auto& info) {
                           return info.param == OtlpProtocol::kGrpc ? "Grpc" : "Http";
                         });

}  // namespace
}  // namespace hoptrace
