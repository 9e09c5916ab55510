// A minimal HTTP endpoint for Prometheus: GET /metrics answers the text
// exposition format (version 0.0.4) produced by a callback. One thread, one
// connection at a time, short timeouts: scrapes are rare and small, and a
// slow or hostile client must not hold the agent.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
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

  // Other GET endpoints (e.g. /api/hops): handler(query) answers a path,
  // "?..." excluded. Safe to call while serving.
  struct Reply {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
  };
  using Handler = std::function<Reply(std::string_view query)>;
  void Route(std::string path, Handler handler);

 private:
  void Run();
  void Serve(int fd);

  Render render_;
  std::mutex routes_mu_;
  std::map<std::string, Handler, std::less<>> routes_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};  // pipe that ends Run()
  std::thread thread_;
};

}  // namespace hoptrace
