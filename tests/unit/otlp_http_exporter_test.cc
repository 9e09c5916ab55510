// The HTTP exporter against a tiny HTTP/1.1 server on 127.0.0.1 running in a test thread: real
// sockets and real libcurl, with responses scripted per request.
#include "exporters/otlp/otlp_http_exporter.h"

#include <arpa/inet.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "exporters/otlp/gzip.h"
#include "exporters/otlp/otlp_translator.h"
#include "exporters/otlp/rpc_status.h"
#include "tests/unit/otlp_test_spans.h"

namespace hoptrace {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;
using google::protobuf::util::MessageDifferencer;
using std::chrono::milliseconds;

struct HttpRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct HttpResponse {
  HttpResponse(int s = 200, std::vector<std::pair<std::string, std::string>> h = {},
               std::string b = "", milliseconds d = milliseconds(0))
      : status(s), headers(std::move(h)), body(std::move(b)), delay(d) {}
  int status;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  milliseconds delay;  // wait before answering
};

// One connection at a time, keep-alive, Content-Length bodies only: what libcurl sends.
class TinyHttpServer {
 public:
  TinyHttpServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listen_fd_, 8) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        pipe(stop_) != 0) {
      ADD_FAILURE() << "cannot start the test HTTP server";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~TinyHttpServer() {
    if (thread_.joinable()) {
      (void)!write(stop_[1], "x", 1);
      thread_.join();
    }
    close(listen_fd_);
    close(stop_[0]);
    close(stop_[1]);
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces"; }
  void Script(std::vector<HttpResponse> responses) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(responses.begin(), responses.end());
  }
  std::vector<HttpRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  int connections() const { return connections_.load(); }

 private:
  // Waits for `fd` to be readable; false when the server is stopping or `timeout` passed.
  bool WaitReadable(int fd, int timeout_ms = -1) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    return poll(fds, 2, timeout_ms) > 0 && (fds[1].revents & POLLIN) == 0 &&
           (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }

  void Run() {
    while (WaitReadable(listen_fd_)) {
      const int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      ++connections_;
      Serve(conn);
      close(conn);
    }
  }

  void Serve(int conn) {
    std::string buf;
    while (true) {
      size_t head_end;
      while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadMore(conn, &buf)) return;
      }
      HttpRequest req = ParseHead(buf.substr(0, head_end));
      const size_t length =
          std::stoul(req.headers.count("content-length") ? req.headers["content-length"] : "0");
      buf.erase(0, head_end + 4);
      while (buf.size() < length) {
        if (!ReadMore(conn, &buf)) return;
      }
      req.body = buf.substr(0, length);
      buf.erase(0, length);
      HttpResponse resp;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(std::move(req));
        if (!script_.empty()) {
          resp = std::move(script_.front());
          script_.pop_front();
        }
      }
      if (resp.delay.count() > 0 && WaitReadable(stop_[0], static_cast<int>(resp.delay.count()))) {
        return;
      }
      std::string out = "HTTP/1.1 " + std::to_string(resp.status) +
                        " X\r\nContent-Length: " + std::to_string(resp.body.size()) + "\r\n";
      for (const auto& [k, v] : resp.headers) out += k + ": " + v + "\r\n";
      out += "\r\n" + resp.body;
      if (send(conn, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
        return;
      }
    }
  }

  bool ReadMore(int conn, std::string* buf) {
    if (!WaitReadable(conn)) return false;
    char chunk[65536];
    const ssize_t n = read(conn, chunk, sizeof(chunk));
    if (n <= 0) return false;
    buf->append(chunk, static_cast<size_t>(n));
    return true;
  }

  static HttpRequest ParseHead(const std::string& head) {
    HttpRequest req;
    size_t pos = head.find("\r\n");
    const std::string line = head.substr(0, pos);
    req.method = line.substr(0, line.find(' '));
    req.target = line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
    while (pos != std::string::npos && pos < head.size()) {
      const size_t next = head.find("\r\n", pos + 2);
      const std::string h =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      const size_t colon = h.find(':');
      if (colon != std::string::npos) {
        std::string name = h.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const size_t v = h.find_first_not_of(' ', colon + 1);
        req.headers[name] = v == std::string::npos ? "" : h.substr(v);
      }
      pos = next;
    }
    return req;
  }

  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::deque<HttpResponse> script_;
  std::vector<HttpRequest> requests_;
};

class OtlpHttpExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.protocol = OtlpProtocol::kHttpProtobuf;
    options_.endpoint = server_.url();
    options_.timeout = milliseconds(5000);
    options_.retry = {/*max_attempts=*/5, milliseconds(1), milliseconds(5), 2.0};
    options_.scope_version = "9.9.9";
  }
  collector::ExportTraceServiceRequest Expected() {
    return BuildExportRequest(otlp_test::SampleBatch(), "hoptrace", "9.9.9");
  }
  static std::string Ok(int64_t rejected = 0, std::string message = "") {
    collector::ExportTraceServiceResponse r;
    if (rejected != 0 || !message.empty()) {
      r.mutable_partial_success()->set_rejected_spans(rejected);
      r.mutable_partial_success()->set_error_message(message);
    }
    return r.SerializeAsString();
  }

  TinyHttpServer server_;
  OtlpExporterOptions options_;
};

TEST_F(OtlpHttpExporterTest, PostsBinaryProtobufWithConfiguredHeaders) {
  options_.headers = {{"X-Api-Key", "secret value"}, {"Content-Type", "text/plain"}};
  OtlpHttpExporter exporter(options_);
  ASSERT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const HttpRequest& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/traces");
  EXPECT_EQ(r.headers.at("content-type"), "application/x-protobuf");  // not the user's
  EXPECT_EQ(r.headers.at("x-api-key"), "secret value");
  EXPECT_EQ(r.headers.at("user-agent").rfind("hoptrace-otlp-exporter/", 0), 0u);
  EXPECT_EQ(r.headers.count("content-encoding"), 0u);
  EXPECT_EQ(r.headers.count("expect"), 0u);
  collector::ExportTraceServiceRequest got;
  ASSERT_TRUE(got.ParseFromString(r.body));
  EXPECT_TRUE(MessageDifferencer::Equals(got, Expected()));
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.spans_exported, 3u);
  EXPECT_EQ(s.export_requests, 1u);
}

TEST_F(OtlpHttpExporterTest, GzipBodyDecodesToTheSameRequest) {
  options_.compression = OtlpCompression::kGzip;
  OtlpHttpExporter exporter(options_);
  ASSERT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  const auto requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.at("content-encoding"), "gzip");
  std::string plain;
  ASSERT_TRUE(GzipDecompress(requests[0].body, &plain, 1 << 20));
  collector::ExportTraceServiceRequest got;
  ASSERT_TRUE(got.ParseFromString(plain));
  EXPECT_TRUE(MessageDifferencer::Equals(got, Expected()));
}

TEST_F(OtlpHttpExporterTest, Retries503ThenSucceedsOnOneConnection) {
  server_.Script({{503, {{"Retry-After", "0"}}, ""}, {200, {}, Ok()}});
  OtlpHttpExporter exporter(options_);
  ASSERT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  ASSERT_EQ(server_.requests().size(), 2u);
  EXPECT_EQ(server_.requests()[0].body, server_.requests()[1].body);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.export_requests, 2u);
  EXPECT_EQ(s.export_errors, 1u);
  EXPECT_EQ(s.spans_exported, 3u);
  // A second batch reuses the kept-alive connection of the same curl handle.
  ASSERT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  EXPECT_EQ(server_.connections(), 1);
}

TEST_F(OtlpHttpExporterTest, RetryAfterIsTheMinimumWait) {
  server_.Script({{429, {{"Retry-After", "1"}}, ""}});
  OtlpHttpExporter exporter(options_);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(1000));
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(OtlpHttpExporterTest, BadRequestIsNotRetried) {
  server_.Script({{400,
                   {{"Content-Type", "application/x-protobuf"}},
                   EncodeRpcStatus({3, "span 2 has an invalid trace id", std::nullopt})}});
  OtlpHttpExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  EXPECT_EQ(server_.requests().size(), 1u);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.spans_failed_non_retryable, 3u);
  EXPECT_EQ(s.export_errors, 1u);
}

TEST_F(OtlpHttpExporterTest, ServerErrorOtherThan502To504IsNotRetried) {
  server_.Script({{500, {}, "<html>oops</html>"}});
  OtlpHttpExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(OtlpHttpExporterTest, PartialSuccessIsCountedAndNotRetried) {
  server_.Script({{200, {}, Ok(1, "one span too large")}});
  OtlpHttpExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kSuccess);
  EXPECT_EQ(server_.requests().size(), 1u);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.spans_rejected, 1u);
  EXPECT_EQ(s.spans_exported, 2u);
}

TEST_F(OtlpHttpExporterTest, SlowServerIsATimeout) {
  server_.Script({{200, {}, Ok(), milliseconds(3000)}});
  options_.timeout = milliseconds(200);
  options_.retry.max_attempts = 1;
  OtlpHttpExporter exporter(options_);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  EXPECT_EQ(exporter.stats().spans_failed_timeout, 3u);
}

TEST_F(OtlpHttpExporterTest, RefusedConnectionIsRetriedThenLost) {
  TinyHttpServer* gone = new TinyHttpServer();
  options_.endpoint = gone->url();
  delete gone;  // nothing listens on that port any more
  options_.retry.max_attempts = 3;
  OtlpHttpExporter exporter(options_);
  EXPECT_EQ(exporter.Export(otlp_test::SampleBatch()), ExportResult::kFailure);
  const OtlpExporterStats s = exporter.stats();
  EXPECT_EQ(s.export_requests, 3u);
  EXPECT_EQ(s.spans_failed_retries_exhausted, 3u);
}

}  // namespace
}  // namespace hoptrace
