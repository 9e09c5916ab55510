// The OTLP/HTTP half of ht_otlp_sink: an HTTP/1.1 server for POST /v1/traces with binary
// protobuf bodies (Content-Length framing, keep-alive, optional Content-Encoding: gzip) that
// parses each ExportTraceServiceRequest, counts it and answers 200 with an empty
// ExportTraceServiceResponse.
//
// One thread per connection, blocking I/O. An exporter keeps one connection per export lane,
// so connections are few and long-lived: a thread each is the simplest server that parses on
// as many cores as there are lanes. Connections are capped (max_connections) so a runaway
// client cannot exhaust threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "tests/bench/sink_counters.h"

namespace hoptrace::bench {

// A move-only owner of a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct SinkHttpOptions {
  std::string listen = "127.0.0.1";  // IPv4 address
  uint16_t port = 4318;
  size_t max_connections = 1024;
  // Bound on a request body, compressed or not (the Collector's default is 20 MiB; a batch of
  // 512 typical spans is about 250 KB).
  size_t max_body_bytes = 64u << 20;
  SinkParse parse = SinkParse::kWire;
};

class SinkHttpServer {
 public:
  // Listens at once. Throws std::runtime_error when it cannot.
  SinkHttpServer(const SinkHttpOptions& options, SinkCounters* counters);
  ~SinkHttpServer();  // Stop()
  SinkHttpServer(const SinkHttpServer&) = delete;
  SinkHttpServer& operator=(const SinkHttpServer&) = delete;

  // Stops accepting, ends every open connection and waits for their threads.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(UniqueFd conn);
  // Handles one complete request; returns the response to send.
  std::string Handle(std::string_view method, std::string_view target,
                     std::string_view content_encoding, std::string_view body,
                     std::string* scratch);

  SinkHttpOptions options_;
  SinkCounters* counters_;
  UniqueFd listen_;
  UniqueFd wake_;  // eventfd: ends AcceptLoop()
  std::thread acceptor_;

  std::mutex mu_;
  std::condition_variable idle_;
  std::set<int> open_;  // connection fds, so Stop() can shut them down; guarded by mu_
};

}  // namespace hoptrace::bench
