// A minimal HTTP endpoint for Prometheus: GET /metrics answers the text
// exposition format (version 0.0.4) produced by a callback. One thread, one
// connection at a time, short timeouts: scrapes are rare and small, and a
// slow or hostile client must not hold the agent.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace hoptrace {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  // address: "host:port" (IPv4; port 0 picks a free one). Throws
  // std::runtime_error if it cannot listen.
  MetricsServer(const std::string& address, Render render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  void Run();
  void Serve(int fd);

  Render render_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};  // pipe that ends Run()
  std::thread thread_;
};

}  // namespace hoptrace
