#include "uprobes/node/node_inspector.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "node_agent_js.h"

namespace hoptrace::node {
namespace {

constexpr int kSigusr1Bit = SIGUSR1 - 1;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// "SigCgt:\t0000000100004602" -> the mask.
bool SignalMask(const std::string& status, const std::string& field, uint64_t* mask) {
  const auto at = status.find(field + ":");
  if (at == std::string::npos) return false;
  *mask = std::stoull(status.substr(at + field.size() + 1), nullptr, 16);
  return true;
}

std::vector<std::string> NulSplit(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); i++) {
    if (i == s.size() || s[i] == '\0') {
      if (i > start) out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// Inodes of the sockets pid holds now.
std::set<uint64_t> SocketInodes(pid_t pid) {
  std::set<uint64_t> out;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code ec2;
    const std::string target = std::filesystem::read_symlink(e.path(), ec2).string();
    if (!ec2 && target.rfind("socket:[", 0) == 0) {
      out.insert(std::stoull(target.substr(8)));
    }
  }
  return out;
}

// The port of a socket pid listens on at 127.0.0.1 that is not in `before`
// (its inspector, just opened), or 0.
uint16_t NewLoopbackListener(pid_t pid, const std::set<uint64_t>& before) {
  const std::set<uint64_t> now = SocketInodes(pid);
  std::istringstream tcp(ReadFile("/proc/" + std::to_string(pid) + "/net/tcp"));
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    // sl local rem st tx:rx tr:when retr uid timeout inode
    std::istringstream f(line);
    std::string sl, local, rem, st, q, tr, retr, uid, timeout;
    uint64_t inode = 0;
    f >> sl >> local >> rem >> st >> q >> tr >> retr >> uid >> timeout >> inode;
    if (st != "0A" || local.rfind("0100007F:", 0) != 0) continue;
    if (!now.count(inode) || before.count(inode)) continue;
    return static_cast<uint16_t>(std::stoul(local.substr(9), nullptr, 16));
  }
  return 0;
}

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

bool RecvSome(int fd, std::string* buf) {
  char tmp[8192];
  const ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
  if (n <= 0) return false;
  buf->append(tmp, static_cast<size_t>(n));
  return true;
}

int ConnectLoopback(uint16_t port, int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One HTTP/1 exchange with the inspector's HTTP side (it closes after).
bool HttpGet(uint16_t port, const std::string& path, std::string* body, int timeout_ms) {
  const int fd = ConnectLoopback(port, timeout_ms);
  if (fd < 0) return false;
  std::string resp;
  bool ok = SendAll(fd, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                            "\r\nConnection: close\r\n\r\n");
  // Until the body is whole (Content-Length): the inspector may keep the
  // connection open, and waiting for its close would cost the whole timeout.
  size_t want = std::string::npos;
  while (ok && RecvSome(fd, &resp)) {
    const auto end = resp.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    if (want == std::string::npos) {
      std::string head = resp.substr(0, end);
      for (auto& ch : head) ch = static_cast<char>(tolower(ch));
      const auto cl = head.find("content-length:");
      if (cl == std::string::npos) continue;  // read to the close
      want = end + 4 + std::stoul(head.substr(cl + 15));
    }
    if (resp.size() >= want) break;
  }
  close(fd);
  const auto end = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return false;
  *body = resp.substr(end + 4);
  return true;
}

// A WebSocket client just big enough for one DevTools session (RFC 6455:
// client frames masked; the inspector's frames are unmasked and whole).
class WsSession {
 public:
  ~WsSession() {
    if (fd_ >= 0) close(fd_);
  }
  bool Open(uint16_t port, const std::string& path, int timeout_ms, std::string* error) {
    fd_ = ConnectLoopback(port, timeout_ms);
    if (fd_ < 0) return Fail(error, "cannot connect to the inspector");
    std::string key(16, '\0');
    for (auto& c : key) c = static_cast<char>(rng_());
    if (!SendAll(fd_, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: " + Base64(key) +
                          "\r\nSec-WebSocket-Version: 13\r\n\r\n")) {
      return Fail(error, "inspector handshake: send failed");
    }
    while (buf_.find("\r\n\r\n") == std::string::npos) {
      if (!RecvSome(fd_, &buf_)) return Fail(error, "inspector handshake: no answer");
    }
    if (buf_.rfind("HTTP/1.1 101", 0) != 0) return Fail(error, "inspector refused the WebSocket");
    buf_.erase(0, buf_.find("\r\n\r\n") + 4);
    return true;
  }
  // Sends a DevTools command and returns its "result" (events skipped).
  bool Call(const nlohmann::json& cmd, nlohmann::json* result, std::string* error) {
    unsigned char mask[4];
    for (auto& m : mask) m = static_cast<unsigned char>(rng_());
    if (!SendAll(fd_, WsTextFrame(cmd.dump(), mask))) return Fail(error, "inspector: send failed");
    for (;;) {
      std::string msg;
      if (!NextMessage(&msg)) return Fail(error, "inspector: no answer");
      auto j = nlohmann::json::parse(msg, nullptr, false);
      if (j.is_discarded() || !j.contains("id") || j["id"] != cmd["id"]) continue;
      if (j.contains("error")) return Fail(error, "inspector: " + j["error"].dump());
      *result = j["result"];
      return true;
    }
  }
  void Close() {
    unsigned char mask[4] = {1, 2, 3, 4};
    std::string f = WsTextFrame("", mask);
    f[0] = static_cast<char>(0x88);  // FIN | close
    SendAll(fd_, f);
  }

 private:
  bool NextMessage(std::string* msg) {
    for (;;) {
      if (buf_.size() >= 2) {
        const auto* b = reinterpret_cast<const unsigned char*>(buf_.data());
        uint64_t len = b[1] & 0x7f;
        size_t hdr = 2;
        if (len == 126 && buf_.size() >= 4) {
          len = (uint64_t{b[2]} << 8) | b[3];
          hdr = 4;
        } else if (len == 127 && buf_.size() >= 10) {
          len = 0;
          for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
          hdr = 10;
        } else if (len >= 126) {
          len = UINT64_MAX;  // header incomplete
        }
        if (len != UINT64_MAX && buf_.size() >= hdr + len) {
          const int opcode = b[0] & 0x0f;
          *msg = buf_.substr(hdr, len);
          buf_.erase(0, hdr + len);
          if (opcode == 0x8) return false;  // closed
          if (opcode == 0x1) return true;   // text (the inspector sends no others)
          continue;
        }
      }
      if (!RecvSome(fd_, &buf_)) return false;
    }
  }
  static bool Fail(std::string* error, const std::string& what) {
    *error = what;
    return false;
  }
  int fd_ = -1;
  std::string buf_;
  std::mt19937 rng_{std::random_device{}()};
};

// Opens pid's inspector (SIGUSR1), evaluates each expression in turn over
// one session, closes the session. Runs in a thread of its own that joins
// pid's network namespace (setns affects the calling thread only).
// next(values so far) gives the next expression, "" to end.
using NextExpression = std::function<std::string(const std::vector<nlohmann::json>&)>;

bool Evaluate(pid_t pid, const NextExpression& next, std::vector<nlohmann::json>* values,
              std::string* error, int timeout_ms) {
  const std::string proc = "/proc/" + std::to_string(pid);
  const int netns = open((proc + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC);
  if (netns < 0) {
    *error = "cannot open its network namespace: " + std::string(strerror(errno));
    return false;
  }
  const std::set<uint64_t> before = SocketInodes(pid);
  bool ok = false;
  std::thread worker([&] {
    if (setns(netns, CLONE_NEWNET) != 0) {
      *error = "cannot join its network namespace: " + std::string(strerror(errno));
      return;
    }
    if (kill(pid, SIGUSR1) != 0) {
      *error = "SIGUSR1 failed: " + std::string(strerror(errno));
      return;
    }
    uint16_t port = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!(port = NewLoopbackListener(pid, before))) {
      if (std::chrono::steady_clock::now() > deadline) {
        *error = "no inspector opened after SIGUSR1 (port in use, or the process handles "
                 "SIGUSR1 itself)";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::string body;
    if (!HttpGet(port, "/json/list", &body, timeout_ms)) {
      *error = "inspector on port " + std::to_string(port) + " did not list its target";
      return;
    }
    auto list = nlohmann::json::parse(body, nullptr, false);
    if (list.is_discarded() || !list.is_array() || list.empty() || !list[0].contains("id")) {
      *error = "inspector target list unreadable";
      return;
    }
    WsSession ws;
    if (!ws.Open(port, "/" + list[0]["id"].get<std::string>(), timeout_ms, error)) return;
    int id = 0;
    for (std::string expr = next(*values); !expr.empty(); expr = next(*values)) {
      nlohmann::json cmd = {{"id", ++id},
                            {"method", "Runtime.evaluate"},
                            {"params",
                             {{"expression", expr},
                              {"includeCommandLineAPI", true},
                              {"returnByValue", true},
                              {"silent", true}}}};
      nlohmann::json result;
      if (!ws.Call(cmd, &result, error)) return;
      if (result.contains("exceptionDetails")) {
        *error = "the script threw: " + result["exceptionDetails"].dump().substr(0, 300);
        return;
      }
      values->push_back(result["result"].value("value", nlohmann::json()));
    }
    ws.Close();
    ok = true;
  });
  worker.join();
  close(netns);
  return ok;
}

// Closes the inspector after our session has gone (a timer of the process,
// unreferenced: it keeps nothing alive).
constexpr const char kCloseInspector[] =
    "(setTimeout(() => { try { process._debugEnd(); } catch (e) {} }, 50).unref(), true)";
constexpr const char kUninstallScript[] =
    "globalThis[Symbol.for('hoptrace.node.v1')].uninstall()";
constexpr const char kStartScript[] = "globalThis[Symbol.for('hoptrace.node.v1')].start()";

}  // namespace

std::string Base64(const std::string& bytes) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string WsTextFrame(const std::string& payload, const unsigned char mask[4]) {
  std::string f;
  f += static_cast<char>(0x81);  // FIN | text
  const uint64_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else if (n <= 0xffff) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; i--) f += static_cast<char>((n >> (8 * i)) & 0xff);
  }
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (uint64_t i = 0; i < n; i++) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

Eligibility CheckProcess(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink(proc + "/exe", ec).filename().string();
  if (ec) return {false, "no such process"};
  // node, nodejs (Debian's old name), node20 and the like.
  const bool is_node = exe == "node" || exe == "nodejs" ||
                       (exe.size() > 4 && exe.rfind("node", 0) == 0 && isdigit(exe[4]));
  if (!is_node) return {false, "not a Node.js process (" + exe + ")"};
  const std::string status = ReadFile(proc + "/status");
  uint64_t caught = 0, ignored = 0;
  if (!SignalMask(status, "SigCgt", &caught) || !SignalMask(status, "SigIgn", &ignored)) {
    return {false, "cannot read its signal dispositions"};
  }
  // Node catches SIGUSR1 itself to open the inspector; a process that
  // ignores it, or a node without that handler (no inspector in the build,
  // --disable-sigusr1), would not open it.
  if (ignored & (uint64_t{1} << kSigusr1Bit)) return {false, "it ignores SIGUSR1"};
  if (!(caught & (uint64_t{1} << kSigusr1Bit))) {
    return {false, "it does not catch SIGUSR1 (no inspector to open)"};
  }
  std::vector<std::string> args = NulSplit(ReadFile(proc + "/cmdline"));
  for (const auto& e : NulSplit(ReadFile(proc + "/environ"))) {
    if (e.rfind("NODE_OPTIONS=", 0) == 0) args.push_back(e);
  }
  for (const auto& a : args) {
    if (a.find("--inspect") != std::string::npos || a.find("--debug") != std::string::npos) {
      return {false, "its inspector is the user's (" + a + ")"};
    }
    if (a.find("--disable-sigusr1") != std::string::npos) {
      return {false, "started with --disable-sigusr1"};
    }
  }
  return {true, ""};
}

InjectResult Inject(pid_t pid, const std::function<bool(int)>& on_loaded, int timeout_ms) {
  InjectResult r;
  if (auto e = CheckProcess(pid); !e.ok) {
    r.error = e.why;
    return r;
  }
  std::vector<nlohmann::json> values;
  std::string refused;
  auto next = [&](const std::vector<nlohmann::json>& v) -> std::string {
    switch (v.size()) {
      case 0:
        return kAgentScript;
      case 1: {
        // Installed, off: the kernel learns the fd before the first announce.
        auto j = v[0].is_string() ? nlohmann::json::parse(v[0].get<std::string>(), nullptr, false)
                                  : nlohmann::json();
        if (!j.is_object() || !j.contains("fd") || !j["fd"].is_number_integer()) {
          refused = "the script answered " + v[0].dump();
          return kCloseInspector;
        }
        r.announce_fd = j["fd"].get<int>();
        if (!on_loaded(r.announce_fd)) {
          refused = "the kernel side did not take the process";
          return std::string(kUninstallScript) + ", " + kCloseInspector;
        }
        return std::string(kStartScript) + ", " + kCloseInspector;
      }
      default:
        return "";
    }
  };
  if (!Evaluate(pid, next, &values, &r.error, timeout_ms)) return r;
  if (!refused.empty()) {
    r.error = refused;
    return r;
  }
  r.ok = true;
  return r;
}

namespace {
bool CallState(pid_t pid, const char* method, std::string* error, int timeout_ms) {
  std::vector<nlohmann::json> values;
  const std::string expr = std::string("(() => { const s = globalThis[Symbol.for('hoptrace.node.v1')]; "
                                       "return s ? s.") + method + "() : false; })(), " +
                           kCloseInspector;
  auto next = [&](const std::vector<nlohmann::json>& v) { return v.empty() ? expr : ""; };
  if (!Evaluate(pid, next, &values, error, timeout_ms)) return false;
  if (values.empty() || values[0] != true) {
    *error = std::string("the script is not there (") + method + ")";
    return false;
  }
  return true;
}
}  // namespace

bool Uninstall(pid_t pid, std::string* error, int timeout_ms) {
  return CallState(pid, "uninstall", error, timeout_ms);
}

}  // namespace hoptrace::node
