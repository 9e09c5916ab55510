// A native thread-pool HTTP/1.1 service for the propagation tests (issue 11,
// item 5): one acceptor thread accepts each connection and reads its request
// head, then hands (fd, query) to a fixed pool of worker threads through a
// mutex + condition-variable queue; a worker waits a random while, calls the
// downstream service on a new connection (GET /work?<query>), waits again
// and answers the client. Plain sockets and std::thread; knows nothing about
// tracing. Prints "listening" once it accepts.
//
//   native_pool --host H --port P --downstream http://H:P [--workers N]
//               [--sleep-ms S] [--jitter-ms J]   (S + random 0..J ms before and after
//               the call)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Job {
  int fd;
  std::string query;
};

std::mutex mu;
std::condition_variable cv;
std::deque<Job> jobs;

std::string host, down_host;
int port = 0, down_port = 0, sleep_ms = 0, jitter_ms = 0;

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the end of the head (and maybe a little more).
std::string ReadHead(int fd) {
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// --sleep-ms plus a random 0..--jitter-ms.
void Pause(std::mt19937& rng) {
  std::uniform_int_distribution<int> us(0, jitter_ms * 1000);
  int wait = sleep_ms * 1000 + (jitter_ms > 0 ? us(rng) : 0);
  if (wait > 0) std::this_thread::sleep_for(std::chrono::microseconds(wait));
}

// One downstream GET on a new connection; true on a 200.
bool CallDownstream(const std::string& query) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(down_port));
  inet_pton(AF_INET, down_host.c_str(), &a.sin_addr);
  bool ok = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
            WriteAll(s, "GET /work" + query + " HTTP/1.1\r\nHost: " + down_host +
                            "\r\nUser-Agent: native-pool\r\nConnection: close\r\n\r\n");
  // The head, then Content-Length bytes of body (the peer may keep the connection open).
  std::string resp = ok ? ReadHead(s) : "";
  size_t end = resp.find("\r\n\r\n"), cl = resp.find("Content-Length:");
  if (end != std::string::npos && cl != std::string::npos && cl < end) {
    size_t want = end + 4 + std::strtoul(resp.c_str() + cl + 15, nullptr, 10);
    char buf[4096];
    while (resp.size() < want) {
      ssize_t n = read(s, buf, sizeof(buf));
      if (n <= 0) break;
      resp.append(buf, static_cast<size_t>(n));
    }
  }
  close(s);
  return resp.rfind("HTTP/1.1 200", 0) == 0 || resp.rfind("HTTP/1.0 200", 0) == 0;
}

void Worker(unsigned seed) {
  std::mt19937 rng(seed);
  for (;;) {
    Job j;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [] { return !jobs.empty(); });
      j = std::move(jobs.front());
      jobs.pop_front();
    }
    Pause(rng);
    bool ok = CallDownstream(j.query);
    Pause(rng);
    std::string body = ok ? "via done\n" : "downstream failed\n";
    WriteAll(j.fd, std::string(ok ? "HTTP/1.1 200 OK" : "HTTP/1.1 502 Bad Gateway") +
                       "\r\nContent-Type: text/plain\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    close(j.fd);
  }
}

std::string Arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; i++)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  host = Arg(argc, argv, "--host", "127.0.0.1");
  port = std::atoi(Arg(argc, argv, "--port", "8000").c_str());
  sleep_ms = std::atoi(Arg(argc, argv, "--sleep-ms", "0").c_str());
  jitter_ms = std::atoi(Arg(argc, argv, "--jitter-ms", "0").c_str());
  int workers = std::atoi(Arg(argc, argv, "--workers", "16").c_str());
  std::string down = Arg(argc, argv, "--downstream", "http://127.0.0.1:9000");
  // http://H:P
  std::string hp = down.substr(down.find("//") + 2);
  down_host = hp.substr(0, hp.find(':'));
  down_port = std::atoi(hp.substr(hp.find(':') + 1).c_str());

  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(ls, 512) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  std::vector<std::thread> pool;
  for (int i = 0; i < workers; i++) pool.emplace_back(Worker, 1234u + static_cast<unsigned>(i));
  std::printf("listening\n");
  std::fflush(stdout);
  for (;;) {
    int fd = accept(ls, nullptr, nullptr);
    if (fd < 0) continue;
    std::string head = ReadHead(fd);
    // "GET /work?id=... HTTP/1.1": the query goes along.
    size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    std::string target = sp1 == std::string::npos || sp2 == std::string::npos
                             ? "/"
                             : head.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t q = target.find('?');
    {
      std::lock_guard<std::mutex> lk(mu);
      jobs.push_back({fd, q == std::string::npos ? "" : target.substr(q)});
    }
    cv.notify_one();
  }
}
