// The program tests/bench/probe_overhead.sh times with and without --probe.
//
//   probe_bench_target calls N   after a line on stdin, N calls of
//                                Bench::probed and N of Bench::unprobed;
//                                prints "probed_ns X unprobed_ns Y" per call
//   probe_bench_target serve PORT  HTTP/1.1 keep-alive server: each request
//                                runs Bench::handle -> Bench::parse, Bench::lookup,
//                                Bench::render (no sleeps: the probes' own cost shows)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace Bench {
volatile int sink;
__attribute__((noinline)) int probed(int x) { sink = x * 3 + 1;
  return x; }
__attribute__((noinline)) int unprobed(int x) { sink = x * 5 + 1;
  return x; }
__attribute__((noinline)) int parse(const char* req) { return static_cast<int>(strlen(req)); }
__attribute__((noinline)) int lookup(int key) {
  sink = key;
  return key * 7;
}
__attribute__((noinline)) std::string render(int v) { return "value " + std::to_string(v) + "\n"; }
__attribute__((noinline)) std::string handle(const char* req) { return render(lookup(parse(req))); }
}  // namespace Bench

static double NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void Serve(int fd) {
  std::string buf;
  char chunk[4096];
  for (;;) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n <= 0) {
        close(fd);
        return;
      }
      buf.append(chunk, static_cast<size_t>(n));
    }
    const std::string body = Bench::handle(buf.substr(0, end).c_str());
    buf.erase(0, end + 4);
    const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\n\r\n" + body;
    if (write(fd, resp.data(), resp.size()) < 0) break;
  }
  close(fd);
}

int main(int argc, char** argv) {
  if (argc == 3 && !strcmp(argv[1], "calls")) {
    const long n = atol(argv[2]);
    char line[8];
    if (!fgets(line, sizeof(line), stdin)) return 1;
    double t0 = NowNs();
    for (long i = 0; i < n; ++i) Bench::probed(static_cast<int>(i));
    double t1 = NowNs();
    for (long i = 0; i < n; ++i) Bench::unprobed(static_cast<int>(i));
    double t2 = NowNs();
    printf("probed_ns %.1f unprobed_ns %.1f\n", (t1 - t0) / n, (t2 - t1) / n);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "serve")) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(atoi(argv[2])));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(ls, 128) != 0) return 1;
    printf("listening\n");
    fflush(stdout);
    for (;;) {
      int c = accept(ls, nullptr, nullptr);
      if (c >= 0) std::thread(Serve, c).detach();  // thread per connection
    }
  }
  fprintf(stderr, "usage: probe_bench_target calls N | serve PORT\n");
  return 2;
}
