// A C++ HTTP service for test_uprobes.py, one request at a time:
//   GET /order  -> Shop::handle -> Shop::validate -> Shop::query -> (GET backend /work)
//                                                              -> Shop::render
//   GET /fail   -> the same path; Shop::render throws Shop::OutOfStock, which
//                  Shop::handle catches (500).
// Each function sleeps a known time first (handle 1 ms, validate 3 ms,
// query 2 ms, render 4 ms), so a test can bound every span's duration.
//
//   shop PORT BACKEND_PORT      prints "listening" when it accepts
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

namespace Shop {

struct OutOfStock : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int g_backend_port = 0;

void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string Exchange(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

__attribute__((noinline)) std::string render(const std::string& stock, bool fail) {
  Sleep(4);
  if (fail) throw OutOfStock("out of stock");
  return "order ok: " + std::to_string(stock.size()) + " bytes of stock\n";
}

__attribute__((noinline)) std::string query(bool fail) {
  Sleep(2);
  std::string stock = Exchange(g_backend_port,
                               "GET /work HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  return render(stock, fail);
}

__attribute__((noinline)) std::string validate(bool fail) {
  Sleep(3);
  return query(fail);
}

__attribute__((noinline)) int handle(const std::string& request, std::string* body) {
  Sleep(1);
  try {
    *body = validate(request.rfind("GET /fail", 0) == 0);
    return 200;
  } catch (const OutOfStock& e) {
    *body = std::string(e.what()) + "\n";
    return 500;
  }
}

}  // namespace Shop

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: shop PORT BACKEND_PORT\n");
    return 2;
  }
  Shop::g_backend_port = std::atoi(argv[2]);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(ls, 64) != 0) {
    std::perror("shop: bind/listen");
    return 1;
  }
  std::printf("listening\n");
  std::fflush(stdout);
  for (;;) {
    int c = accept(ls, nullptr, nullptr);
    if (c < 0) continue;
    std::string req;
    char buf[4096];
    ssize_t n;
    while (req.find("\r\n\r\n") == std::string::npos && (n = read(c, buf, sizeof(buf))) > 0) {
      req.append(buf, static_cast<size_t>(n));
    }
    std::string body;
    const int status = Shop::handle(req, &body);
    std::string resp = "HTTP/1.1 " + std::to_string(status) +
                       (status == 200 ? " OK" : " Internal Server Error") +
                       "\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n" + body;
    if (write(c, resp.data(), resp.size()) < 0) std::perror("shop: write");
    close(c);
  }
}
