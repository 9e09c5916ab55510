#include "tests/bench/sink_http_server.h"

#include <arpa/inet.h>
#include <google/protobuf/arena.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "exporters/otlp/gzip.h"

namespace hoptrace::bench {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kReadChunk = 256 * 1024;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Response(int status, std::string_view reason, std::string_view content_type,
                     std::string_view body, bool close) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  if (!content_type.empty()) r += "Content-Type: " + std::string(content_type) + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (close) r += "Connection: close\r\n";
  r += "\r\n";
  r += body;
  return r;
}

// The body says what was wrong, for a person reading a client's log.
std::string Error(int status, std::string_view reason, bool close = false,
                  std::string_view detail = {}) {
  return Response(status, reason, "text/plain",
                  std::string(detail.empty() ? reason : detail) + "\n", close);
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Bytes received on a connection and not yet consumed. The storage only grows (a request
// body is received straight into it), so no recv() pays for zeroing or copying a buffer.
class RecvBuffer {
 public:
  std::string_view view() const { return std::string_view(data_.data(), len_); }
  size_t size() const { return len_; }

  // Appends what one recv() returns, with room for at least `want` bytes in total. False on
  // EOF or error.
  bool Read(int fd, size_t want) {
    const size_t need = std::max(want, len_ + kReadChunk);
    if (data_.size() < need) data_.resize(std::max(need, 2 * data_.size()));
    ssize_t n;
    do {
      n = recv(fd, data_.data() + len_, data_.size() - len_, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    len_ += static_cast<size_t>(n);
    return true;
  }

  // Drops the first `n` bytes (one request); what follows (a pipelined request) moves up.
  void Consume(size_t n) {
    std::memmove(data_.data(), data_.data() + n, len_ - n);
    len_ -= n;
  }

 private:
  std::string data_;
  size_t len_ = 0;
};

// The parts of a request head the sink acts on (RFC 9112 section 3 and 6). Copies, not views:
// the receive buffer moves when it grows for the body.
struct RequestHead {
  std::string method, target;
  std::string content_encoding;
  size_t content_length = 0;
  bool bad = false;          // malformed request line or Content-Length
  bool chunked = false;      // Transfer-Encoding present: not supported here
  bool expect_continue = false;
  bool close = false;        // the client asked for the connection to end after this request
};

RequestHead ParseHead(std::string_view head) {
  RequestHead h;
  const size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  // request-line = method SP request-target SP HTTP-version
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) {
    h.bad = true;
    return h;
  }
  h.method = line.substr(0, sp1);
  h.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  // HTTP/1.0 closes after each response unless it asked to keep the connection.
  h.close = line.substr(sp2 + 1) == "HTTP/1.0";
  std::string_view rest = eol == std::string_view::npos ? "" : head.substr(eol + 2);
  while (!rest.empty()) {
    const size_t e = rest.find("\r\n");
    const std::string_view field = rest.substr(0, e);
    rest = e == std::string_view::npos ? "" : rest.substr(e + 2);
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = Trim(field.substr(colon + 1));
    if (IEquals(name, "Content-Length")) {
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(),
                                           h.content_length);
      if (ec != std::errc() || p != value.data() + value.size()) h.bad = true;
    } else if (IEquals(name, "Content-Encoding")) {
      h.content_encoding = value;
    } else if (IEquals(name, "Transfer-Encoding")) {
      h.chunked = true;
    } else if (IEquals(name, "Expect")) {
      h.expect_continue = IEquals(value, "100-continue");
    } else if (IEquals(name, "Connection")) {
      if (IEquals(value, "close")) h.close = true;
      if (IEquals(value, "keep-alive")) h.close = false;
    }
  }
  return h;
}

}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

SinkHttpServer::SinkHttpServer(const SinkHttpOptions& options, SinkCounters* counters)
    : options_(options), counters_(counters) {
  listen_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_.valid()) throw std::runtime_error(std::string("socket: ") + strerror(errno));
  const int one = 1;
  setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options.port);
  if (inet_pton(AF_INET, options.listen.c_str(), &addr.sin_addr) != 1) {
    throw std::runtime_error("--listen " + options.listen + ": not an IPv4 address");
  }
  if (bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_.get(), 1024) != 0) {
    throw std::runtime_error("HTTP listen on " + options.listen + ":" +
                             std::to_string(options.port) + ": " + strerror(errno));
  }
  wake_.reset(eventfd(0, EFD_CLOEXEC));
  if (!wake_.valid()) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

SinkHttpServer::~SinkHttpServer() { Stop(); }

void SinkHttpServer::Stop() {
  if (!acceptor_.joinable()) return;
  const uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof(one));
  acceptor_.join();
  std::unique_lock<std::mutex> lock(mu_);
  // Connection threads block in recv(); shutdown() makes it return 0 so they end.
  for (int fd : open_) shutdown(fd, SHUT_RDWR);
  idle_.wait(lock, [this] { return open_.empty(); });
}

void SinkHttpServer::AcceptLoop() {
  pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    UniqueFd conn(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) continue;
    // Responses are one small write each; never let Nagle hold one back.
    const int one = 1;
    setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (open_.size() >= options_.max_connections) {
        counters_->Add(counters_->bad_requests, 1);
        SendAll(conn.get(), Error(503, "Service Unavailable", /*close=*/true));
        continue;
      }
      open_.insert(conn.get());
    }
    counters_->Add(counters_->connections, 1);
    std::thread([this, c = std::move(conn)]() mutable { Serve(std::move(c)); }).detach();
  }
}

void SinkHttpServer::Serve(UniqueFd conn) {
  const int fd = conn.get();
  RecvBuffer buf;
  std::string scratch;  // decompressed body
  bool open = true;
  while (open) {
    size_t head_end;
    while ((head_end = buf.view().find("\r\n\r\n")) == std::string_view::npos) {
      if (buf.size() > kMaxHeadBytes) {
        SendAll(fd, Error(431, "Request Header Fields Too Large", true));
        open = false;
        break;
      }
      if (!buf.Read(fd, 0)) {
        open = false;
        break;
      }
    }
    if (!open) break;
    const RequestHead head = ParseHead(buf.view().substr(0, head_end));
    // Answers that end the connection: without a trustworthy length the next request cannot
    // be found in the stream.
    std::string fatal;
    if (head.bad) fatal = Error(400, "Bad Request", true);
    else if (head.chunked) fatal = Error(411, "Length Required", true);
    else if (head.content_length > options_.max_body_bytes) {
      fatal = Error(413, "Content Too Large", true);
    }
    if (!fatal.empty()) {
      counters_->Add(counters_->bad_requests, 1);
      SendAll(fd, fatal);
      break;
    }
    const size_t body_start = head_end + 4;
    const size_t total = body_start + head.content_length;
    if (buf.size() < total) {
      // "A client that sends a 100-continue expectation ... MAY proceed to send the content
      // [after a timeout]": answer at once so it does not wait for that timeout.
      if (head.expect_continue && !SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n")) break;
      while (buf.size() < total && open) open = buf.Read(fd, total);
      if (!open) break;
    }
    const std::string_view body = buf.view().substr(body_start, head.content_length);
    std::string response = Handle(head.method, head.target, head.content_encoding, body,
                                  &scratch);
    if (head.close) response.insert(response.find("\r\n\r\n") + 2, "Connection: close\r\n");
    if (!SendAll(fd, response) || head.close) break;
    buf.Consume(total);
  }
  conn.reset();
  std::lock_guard<std::mutex> lock(mu_);
  open_.erase(fd);
  idle_.notify_all();
}

std::string SinkHttpServer::Handle(std::string_view method, std::string_view target,
                                   std::string_view content_encoding, std::string_view body,
                                   std::string* scratch) {
  const std::string_view path = target.substr(0, target.find('?'));
  auto bad = [this](int status, std::string_view reason, std::string_view detail = {}) {
    counters_->Add(counters_->bad_requests, 1);
    return Error(status, reason, false, detail);
  };
  if (path != "/v1/traces") return bad(404, "Not Found");
  if (method != "POST") return bad(405, "Method Not Allowed");
  std::string_view payload = body;
  if (IEquals(content_encoding, "gzip")) {
    if (!GzipDecompress(body, scratch, options_.max_body_bytes)) {
      return bad(400, "Bad Request", "corrupt or oversized gzip body");
    }
    payload = *scratch;
  } else if (!content_encoding.empty() && !IEquals(content_encoding, "identity")) {
    return bad(415, "Unsupported Media Type");
  }
  if (options_.parse == SinkParse::kWire) {
    const std::optional<WireCounts> counts = CountWire(payload);
    if (!counts) return bad(400, "Bad Request", "not an ExportTraceServiceRequest");
    counters_->CountRequest(*counts, payload.size());
  } else {
    // An arena per request: the thousands of small messages of a batch go at once.
    google::protobuf::Arena arena;
    auto* request = google::protobuf::Arena::CreateMessage<OtlpExportRequest>(&arena);
    if (!request->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return bad(400, "Bad Request", "not an ExportTraceServiceRequest");
    }
    counters_->CountRequest(*request, payload.size());
  }
  counters_->Add(counters_->http_wire_bytes, body.size());
  counters_->Add(counters_->http_requests, 1);
  // The serialized empty ExportTraceServiceResponse is zero bytes long.
  return Response(200, "OK", "application/x-protobuf", "", false);
}

}  // namespace hoptrace::bench
