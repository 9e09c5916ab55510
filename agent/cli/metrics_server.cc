#include "agent/cli/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace hoptrace {
namespace {

constexpr int kIoTimeoutMs = 1000;
constexpr size_t kMaxRequestBytes = 8192;

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return false;
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

MetricsServer::MetricsServer(const std::string& address, Render render)
    : render_(std::move(render)) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    throw std::runtime_error("metrics address must be host:port, got \"" + address + "\"");
  }
  std::string host = address.substr(0, colon);
  if (host.empty() || host == "*") host = "0.0.0.0";
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    throw std::runtime_error("metrics address: \"" + host + "\" is not an IPv4 address");
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      listen(listen_fd_, 16) != 0) {
    std::string err = strerror(errno);
    if (listen_fd_ >= 0) close(listen_fd_);
    throw std::runtime_error("cannot serve metrics on " + address + ": " + err);
  }
  socklen_t len = sizeof(sa);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  if (pipe2(wake_, O_CLOEXEC) != 0) {
    close(listen_fd_);
    throw std::runtime_error("cannot create a pipe for the metrics server");
  }
  thread_ = std::thread([this] { Run(); });
}

MetricsServer::~MetricsServer() {
  if (wake_[1] >= 0) {
    char c = 1;
    (void)!write(wake_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void MetricsServer::Run() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    Serve(fd);
    close(fd);
  }
}

void MetricsServer::Serve(int fd) {
  std::string req;
  char buf[1024];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < kMaxRequestBytes) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  const bool metrics = req.rfind("GET /metrics ", 0) == 0 || req.rfind("GET /metrics?", 0) == 0;
  std::string body = metrics ? render_() : "not found: try /metrics\n";
  std::string head = metrics ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                             : "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n";
  if (!metrics && req.rfind("GET /", 0) == 0) {
    // "GET /path?query HTTP/1.1"
    std::string_view target(req);
    target.remove_prefix(4);
    target = target.substr(0, target.find(' '));
    const size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(routes_mu_);
      if (auto it = routes_.find(path); it != routes_.end()) handler = it->second;
    }
    if (handler) {
      Reply reply = handler(query);
      body = std::move(reply.body);
      head = "HTTP/1.1 " + std::to_string(reply.status) +
             (reply.status == 200   ? " OK"
              : reply.status == 404 ? " Not Found"
              : reply.status == 503 ? " Service Unavailable"
                                    : " Bad Request") +
             "\r\nContent-Type: " + reply.content_type + "\r\n";
    }
  }
  head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (SendAll(fd, head)) SendAll(fd, body);
}

void MetricsServer::Route(std::string path, Handler handler) {
  std::lock_guard<std::mutex> lock(routes_mu_);
  routes_[std::move(path)] = std::move(handler);
}

}  // namespace hoptrace
