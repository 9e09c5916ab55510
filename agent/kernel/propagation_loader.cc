#include "agent/kernel/propagation_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "agent/kernel/capture_object.h"
#include "agent/kernel/env_knob.h"
#include "agent/kernel/link_teardown.h"
#include "propagation.h"
#include "propagation.skel.h"

namespace hoptrace {
namespace {

std::string Errno(int err) { return strerror(err < 0 ? -err : err); }

// The sockops programs attached to the cgroup, effective ones included.
std::vector<std::string> SockopsPrograms(int cgroup_fd) {
  std::vector<std::string> out;
  uint32_t ids[64] = {};
  uint32_t count = 64;
  uint32_t attach_flags = 0;
  if (bpf_prog_query(cgroup_fd, BPF_CGROUP_SOCK_OPS, BPF_F_QUERY_EFFECTIVE, &attach_flags, ids,
                     &count) != 0) {
    return out;
  }
  for (uint32_t i = 0; i < count && i < 64; ++i) {
    std::string name = "?";
    int fd = bpf_prog_get_fd_by_id(ids[i]);
    if (fd >= 0) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) name = info.name;
      close(fd);
    }
    out.push_back(std::to_string(ids[i]) + " " + name);
  }
  return out;
}

// Does FIONREAD still count pending bytes on a TCP socket in the sockhash?
// A loopback pair in a network namespace of its own (a thread's unshare), the
// client put in the sockhash from here, ten bytes sent to it. -1: could not
// tell.
int ProbeFionread(int sockhash_fd) {
  int result = -1;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) return;
    int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    const bool lo_up = ctl >= 0 && ioctl(ctl, SIOCSIFFLAGS, &ifr) == 0;
    if (ctl >= 0) close(ctl);
    if (!lo_up) return;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int sfd = -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    uint64_t cookie = 0;
    socklen_t clen = sizeof(cookie);
    if (lfd >= 0 && cfd >= 0 && bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        listen(lfd, 1) == 0 && getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
        connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        (sfd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0 &&
        getsockopt(cfd, SOL_SOCKET, SO_COOKIE, &cookie, &clen) == 0) {
      uint64_t value = static_cast<uint64_t>(cfd);
      if (bpf_map_update_elem(sockhash_fd, &cookie, &value, BPF_NOEXIST) == 0) {
        pollfd p{cfd, POLLIN, 0};
        int pending = -1;
        if (send(sfd, "0123456789", 10, 0) == 10 && poll(&p, 1, 1000) == 1 &&
            ioctl(cfd, FIONREAD, &pending) == 0) {
          result = pending == 10 ? 1 : 0;
        }
        bpf_map_delete_elem(sockhash_fd, &cookie);
      }
    }
    for (int fd : {sfd, cfd, lfd}) {
      if (fd >= 0) close(fd);
    }
  });
  t.join();
  return result;
}

// What the kernel counts for a TCP socket: bytes the process wrote (acked,
// in flight or not sent yet) and bytes that arrived (read or not).
struct TcpCounts {
  uint64_t written = 0;
  uint64_t received = 0;
  bool operator==(const TcpCounts&) const = default;
};

bool ReadTcpCounts(int sock, TcpCounts* out) {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  int outq = 0;
  if (getsockopt(sock, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
      len < offsetof(tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received) ||
      ioctl(sock, SIOCOUTQ, &outq) != 0 || ti.tcpi_bytes_acked == 0) {
    return false;
  }
  // tcpi_bytes_acked counts the SYN too.
  out->written = ti.tcpi_bytes_acked - 1 + static_cast<uint64_t>(outq);
  out->received = ti.tcpi_bytes_received;
  return true;
}

}  // namespace

int ProbeSockhashFionread(propagation_bpf* loaded) {
  const int msg = bpf_program__fd(loaded->progs.ht_sk_msg);
  const int sockhash = bpf_map__fd(loaded->maps.ht_prop_sockhash);
  int result = -1;
  if (bpf_prog_attach(msg, sockhash, BPF_SK_MSG_VERDICT, 0) == 0) {
    result = ProbeFionread(sockhash);
    bpf_prog_detach2(msg, sockhash, BPF_SK_MSG_VERDICT);
  }
  return result;
}

bool ParseFionreadGuard(const std::string& text, FionreadGuard* out) {
  if (text == "auto") {
    *out = FionreadGuard::kAuto;
  } else if (text == "on") {
    *out = FionreadGuard::kOn;
  } else if (text == "off") {
    *out = FionreadGuard::kOff;
  } else if (text == "detect") {
    *out = FionreadGuard::kDetect;
  } else {
    return false;
  }
  return true;
}

std::string CheckPropagationCgroup(const std::string& path) {
  if (path.empty()) return "no cgroup given";
  struct statfs fs {};
  if (statfs(path.c_str(), &fs) != 0) {
    return "cannot open the propagation cgroup " + path + ": " + Errno(errno);
  }
  if (fs.f_type != CGROUP2_SUPER_MAGIC) {
    return path +
           " is not a cgroup v2 directory (cgroup v2 is often mounted at "
           "/sys/fs/cgroup or /sys/fs/cgroup/unified)";
  }
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return path + " is not a directory";
  return "";
}

namespace {

bool Helper(bpf_prog_type type, bpf_func_id helper) {
  return libbpf_probe_bpf_helper(type, helper, nullptr) == 1;
}

}  // namespace

std::string ProbeTcpOptionSupport() {
  // The header-option helpers and callbacks came together (Linux 5.10,
  // 0813a841566f "bpf: tcp: Allow bpf prog to write and parse TCP header
  // option"): one helper answers for all of them.
  if (!Helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_reserve_hdr_opt) ||
      !Helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_load_hdr_opt) ||
      !Helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_store_hdr_opt)) {
    return "this kernel's sockops programs cannot write TCP header options (Linux 5.10, "
           "0813a841566f)";
  }
  return "";
}

PropagationSupport ProbePropagationSupport() {
  PropagationSupport out;
  // The kernel decides the contexts it injects (the capture's request-head
  // scans), and sk_msg scans the requests it writes: both bpf_loop callbacks.
  if (const KernelContextSupport ctx = ProbeKernelContext(); !ctx.ok) {
    out.why = ctx.why;
    return out;
  }
  if (!Helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_loop)) {
    out.why = "this kernel's sk_msg programs have no bpf_loop (Linux 5.17, e6f2dd0f8067), "
              "which the outgoing request scan needs";
    return out;
  }
  // sk_msg: who writes, and what we know of the socket (both since Linux 5.8:
  // abe3cac8706b, 13d70f5a5ecf); the insertion itself (4.20).
  if (!Helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_current_pid_tgid) ||
      !Helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get) ||
      !Helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_push_data)) {
    out.why = "this kernel's sk_msg programs lack bpf_get_current_pid_tgid, bpf_sk_storage_get "
              "or bpf_msg_push_data (Linux 5.8+)";
    return out;
  }
  const bool helper = Helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_current_pid_tgid);
  const bool task = Helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_current_task) &&
                    Helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_probe_read_kernel);
  const bool task_forced = EnvKnob("HOPTRACE_SOCKOPS_ROUTE", {"task", "helper"}) == "task";
  if (helper && !(task && task_forced)) {
    out.ok = true;
    out.route = SockopsRoute::kHelper;
  } else if (task) {
    out.ok = true;
    out.route = SockopsRoute::kTask;
  } else {
    out.why = "this kernel's sockops programs can tell neither the connecting process "
              "(bpf_get_current_pid_tgid) nor its task (bpf_get_current_task)";
  }
  return out;
}

void ConfigurePropagation(propagation_bpf* skel, const LoaderOptions& capture_options,
                          FionreadGuard guard, SockopsRoute route) {
  // The same knobs as the capture object: the programs decide alike.
  auto* ro = skel->rodata;
  ro->targ_agent_tgid = static_cast<__u32>(getpid());
  ro->targ_trace_all = capture_options.trace_all;
  ro->targ_port_filter = !capture_options.ports.empty();
  ro->targ_exec_events = capture_options.exec_events;
  ro->targ_max_payload = std::min<uint32_t>(capture_options.max_payload, HT_MAX_PAYLOAD);
  ro->targ_kernel_ctx = true;
  ro->targ_sampler = capture_options.sampler_kind;
  ro->targ_sample_threshold = capture_options.sample_threshold;
  ro->targ_tcp_option = capture_options.tcp_option;
  bpf_program__set_autoload(skel->progs.ht_ioctl_enter, guard == FionreadGuard::kDetect);
  bpf_program__set_autoload(skel->progs.ht_sockops, route == SockopsRoute::kHelper);
  bpf_program__set_autoload(skel->progs.ht_sockops_task, route == SockopsRoute::kTask);
}

std::unique_ptr<PropagationLoader> PropagationLoader::Start(const PropagationOptions& options,
                                                            const LoaderOptions& capture_options,
                                                            const BpfLoader& capture) {
  if (!options.cgroup_path.empty()) {
    if (auto err = CheckPropagationCgroup(options.cgroup_path); !err.empty()) {
      throw StartupError(err + "; or run with --no-propagation");
    }
  }
  std::unique_ptr<PropagationLoader> self(new PropagationLoader());
  self->skel_ = propagation_bpf__open();
  if (!self->skel_) {
    throw StartupError("cannot open the propagation BPF object: " + Errno(errno));
  }
  ConfigurePropagation(self->skel_, capture_options, options.fionread_guard,
                       options.sockops_route);

  // Every map both objects declare is the capture's.
  bpf_map* map;
  bpf_object__for_each_map(map, self->skel_->obj) {
    const char* name = bpf_map__name(map);
    if (strchr(name, '.') != nullptr) continue;  // .rodata, .bss: per object
    const int fd = capture.MapFd(name);
    if (fd < 0) continue;
    if (int err = bpf_map__reuse_fd(map, fd); err != 0) {
      throw StartupError(std::string("cannot share the capture's map ") + name + ": " + Errno(err));
    }
  }
  if (int err = propagation_bpf__load(self->skel_); err != 0) {
    throw StartupError("loading the propagation programs (sockops, sk_msg) failed (" + Errno(err) +
                       "); run `hoptrace check`, or run with --no-propagation");
  }

  // sk_msg first: no socket can enter the sockhash before it is there.
  const int msg_prog = bpf_program__fd(self->skel_->progs.ht_sk_msg);
  const int sockhash = bpf_map__fd(self->skel_->maps.ht_prop_sockhash);
  if (int err = bpf_prog_attach(msg_prog, sockhash, BPF_SK_MSG_VERDICT, 0); err != 0) {
    throw StartupError("attaching the sk_msg program failed (" + Errno(err) +
                       "); run with --no-propagation");
  }
  self->msg_attached_ = true;
  const int fionread = ProbeFionread(sockhash);
  switch (options.fionread_guard) {
    case FionreadGuard::kOn:
      self->guard_mode_ = HT_GUARD_ALL;
      break;
    case FionreadGuard::kAuto:
      self->guard_mode_ = fionread == 0 ? HT_GUARD_ALL : HT_GUARD_OFF;
      break;
    case FionreadGuard::kDetect:
      self->guard_mode_ = HT_GUARD_DETECT;
      break;
    case FionreadGuard::kOff:
      self->guard_mode_ = HT_GUARD_OFF;
      break;
  }
  self->skel_->bss->ht_guard_mode = self->guard_mode_;
  if (self->guard_mode_ == HT_GUARD_DETECT) {
    self->ioctl_link_ = bpf_program__attach(self->skel_->progs.ht_ioctl_enter);
    if (!self->ioctl_link_) {
      throw StartupError("attaching the FIONREAD tracepoint failed (" + Errno(errno) +
                         "); use --fionread-guard auto");
    }
    spdlog::info(
        "propagation: read guard \"detect\": sockets of processes seen asking FIONREAD leave "
        "the sockhash while they have something to read; the first FIONREAD such a process "
        "asks of a socket in the sockhash is answered 0 and its reader woken");
  }
  if (fionread == 0) {
    const char* what =
        self->guard_mode_ == HT_GUARD_ALL
            ? "read guard on: a socket is in the sockhash only while it has nothing to read, so "
              "FIONREAD and readiness stay exact; a keep-alive request written before the agent "
              "saw the previous response read goes without traceparent"
        : self->guard_mode_ == HT_GUARD_DETECT
            ? "read guard \"detect\": processes that ask FIONREAD get the guard"
            : "the read guard is off: programs that size reads with FIONREAD (nginx, Java, .NET) "
              "may stall on the outgoing connections propagation serves; use --fionread-guard "
              "auto";
    if (self->guard_mode_ == HT_GUARD_OFF) {
      spdlog::warn("propagation: this kernel answers FIONREAD with 0 on sockets in a sockmap "
                   "(sockmap FIONREAD regression); {}",
                   what);
    } else {
      spdlog::info("propagation: this kernel answers FIONREAD with 0 on sockets in a sockmap "
                   "(sockmap FIONREAD regression); {}",
                   what);
    }
  } else if (fionread < 0) {
    spdlog::debug("propagation: could not check FIONREAD on sockhash sockets");
  }
  self->sockops_ = options.sockops_route == SockopsRoute::kTask
                      ? self->skel_->progs.ht_sockops_task
                      : self->skel_->progs.ht_sockops;
  if (!options.cgroup_path.empty()) {
    if (auto err = self->AttachCgroup(options.cgroup_path); !err.empty()) {
      throw StartupError(err + "; run with --no-propagation");
    }
  }
  spdlog::info("propagation: injecting traceparent for selected processes in {}{}",
               options.cgroup_path.empty() ? std::string("the cgroups of selected containers")
                                           : "cgroup " + options.cgroup_path,
               options.sockops_route == SockopsRoute::kTask
                   ? " (sockops reads the connecting task: this kernel's sockops lacks "
                     "bpf_get_current_pid_tgid)"
                   : "");
  return self;
}

bool PropagationLoader::detect_mode() const { return guard_mode_ == HT_GUARD_DETECT; }

std::string PropagationLoader::AttachCgroup(const std::string& path) {
  if (cgroups_.contains(path)) return "";
  if (auto err = CheckPropagationCgroup(path); !err.empty()) return err;
  Attachment a;
  a.fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (a.fd < 0) return "cannot open the propagation cgroup " + path + ": " + Errno(errno);
  for (const auto& p : SockopsPrograms(a.fd)) {
    spdlog::warn(
        "propagation: cgroup {} already runs sockops program {}; sockets another sk_msg "
        "program claims first are not injected (counted as sockets_busy)",
        path, p);
    other_sockops_.push_back(p);
  }
  a.link = bpf_program__attach_cgroup(sockops_, a.fd);
  if (!a.link) {
    const std::string err = Errno(errno);
    close(a.fd);
    return "attaching the sockops program to " + path + " failed (" + err + ")";
  }
  cgroups_.emplace(path, a);
  return "";
}

void PropagationLoader::DetachCgroup(const std::string& path) {
  auto it = cgroups_.find(path);
  if (it == cgroups_.end()) return;
  bpf_link__destroy(it->second.link);
  close(it->second.fd);
  cgroups_.erase(it);
}

std::vector<std::string> PropagationLoader::AttachedCgroups() const {
  std::vector<std::string> out;
  for (const auto& [path, a] : cgroups_) out.push_back(path);
  return out;
}

int PropagationLoader::TakeSocket(uint32_t pid, int fd) {
  auto it = pidfds_.find(pid);
  if (it == pidfds_.end()) {
    if (pidfds_.size() >= 4096) {
      for (auto& [p, pfd] : pidfds_) close(pfd);
      pidfds_.clear();
    }
    const int pfd = static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
    if (pfd < 0) return -1;  // gone
    it = pidfds_.emplace(pid, pfd).first;
  }
  const int sock = static_cast<int>(syscall(SYS_pidfd_getfd, it->second, fd, 0));
  if (sock >= 0) return sock;
  if (errno == ESRCH) {  // the process is gone (its pid may come back as another)
    close(it->second);
    pidfds_.erase(it);
    return -1;
  }
  if (errno == EPERM && !rearm_warned_) {
    rearm_warned_ = true;
    spdlog::warn("propagation: cannot reach a process's socket ({}; needs CAP_SYS_PTRACE): "
                 "keep-alive requests after the first go without traceparent",
                 Errno(errno));
  }
  return -1;
}

bool PropagationLoader::Release(uint64_t cookie) {
  const bool was_in = bpf_map_delete_elem(bpf_map__fd(skel_->maps.ht_prop_sockhash), &cookie) == 0;
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.ht_prop_armed), &cookie);
  return was_in;
}

void PropagationLoader::OnFionread(uint32_t pid, int fd, uint32_t flags) {
  if (guard_mode_ != HT_GUARD_DETECT) return;
  const int armed = bpf_map__fd(skel_->maps.ht_prop_armed);
  if (fionread_pids_.insert(pid).second) {
    spdlog::info("propagation: pid {} asks FIONREAD: its sockets are guarded from now on", pid);
  }
  if (flags & HT_FIONREAD_F_FIRST) {
    // Every socket of the process in the sockhash goes out: one of them may
    // hold an answer it will ask FIONREAD of next.
    std::vector<uint64_t> cookies;
    uint64_t key = 0, next = 0;
    for (uint64_t* prev = nullptr; bpf_map_get_next_key(armed, prev, &next) == 0; prev = &key) {
      uint32_t owner = 0;
      if (bpf_map_lookup_elem(armed, &next, &owner) == 0 && owner == pid) cookies.push_back(next);
      key = next;
    }
    for (uint64_t cookie : cookies) Release(cookie);
  }
  if (!(flags & HT_FIONREAD_F_ARMED)) return;
  const int sock = TakeSocket(pid, fd);
  if (sock < 0) return;
  ht_prop_sock ps{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ht_prop_socks), &sock, &ps) == 0 && ps.cookie) {
    Release(ps.cookie);
  }
  // The FIONREAD that brought us here was answered 0: wake the reader so it
  // asks again, now of a plain TCP socket. Setting SO_RCVLOWAT to its value
  // changes nothing else and signals EPOLLIN when bytes wait.
  int lowat = 1;
  socklen_t len = sizeof(lowat);
  if (getsockopt(sock, SOL_SOCKET, SO_RCVLOWAT, &lowat, &len) == 0 &&
      setsockopt(sock, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0) {
    ++fionread_wakeups_;
  }
  close(sock);
}

void PropagationLoader::Rearm(uint32_t pid, int fd, uint16_t local_port, uint64_t written,
                              uint64_t read) {
  if (guard_mode_ == HT_GUARD_OFF || fd < 0) return;
  // "detect": only processes that ask FIONREAD have sockets taken out.
  if (guard_mode_ == HT_GUARD_DETECT && !fionread_pids_.contains(pid)) return;
  const int sock = TakeSocket(pid, fd);
  if (sock < 0) {
    ++rearm_skipped_;
    return;
  }
  const int socks = bpf_map__fd(skel_->maps.ht_prop_socks);
  const int sockhash = bpf_map__fd(skel_->maps.ht_prop_sockhash);
  ht_prop_sock ps{};
  sockaddr_storage local{};
  socklen_t local_len = sizeof(local);
  TcpCounts before, after;
  // Only a socket of ours (selected at connect, HTTP so far), the one the
  // event was about (the descriptor may have been reused since), on which
  // the kernel counts what the capture saw (plus what injection added):
  // nothing written since the answered request, nothing arrived unread.
  if (bpf_map_lookup_elem(socks, &sock, &ps) != 0 || !ps.selected || ps.kind != HT_PK_HTTP ||
      ps.cookie == 0) {
    close(sock);
    return;
  }
  const bool same = getsockname(sock, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
                    ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port) == local_port;
  const uint64_t value = static_cast<uint64_t>(sock);
  if (!same || !ReadTcpCounts(sock, &before) ||
      before.written != written + static_cast<uint64_t>(ps.wire_delta) ||
      before.received != read) {
    ++rearm_skipped_;
  } else if (bpf_map_update_elem(sockhash, &ps.cookie, &value, BPF_NOEXIST) == 0) {
    // Anything sent or received while it went in, and it comes out again:
    // a request the kernel may not have seen acknowledged, or bytes to read.
    if (ReadTcpCounts(sock, &after) && after == before) {
      ++rearmed_;
      if (guard_mode_ == HT_GUARD_DETECT) {
        bpf_map_update_elem(bpf_map__fd(skel_->maps.ht_prop_armed), &ps.cookie, &pid, BPF_ANY);
      }
    } else {
      bpf_map_delete_elem(sockhash, &ps.cookie);
      ++rearm_skipped_;
    }
  } else if (errno != EEXIST) {
    ++rearm_skipped_;
  }
  close(sock);
}

PropagationLoader::~PropagationLoader() {
  for (auto& [pid, pfd] : pidfds_) close(pfd);
  if (ioctl_link_) bpf_link__destroy(ioctl_link_);
  // No new sockets first, then no more injection; freeing the sockhash (with
  // the skeleton) takes every socket out of it and restores its protocol ops.
  for (auto& [path, a] : cgroups_) {
    bpf_link__destroy(a.link);
    close(a.fd);
  }
  cgroups_.clear();
  if (msg_attached_) {
    bpf_prog_detach2(bpf_program__fd(skel_->progs.ht_sk_msg),
                     bpf_map__fd(skel_->maps.ht_prop_sockhash), BPF_SK_MSG_VERDICT);
  }
  if (skel_) {
    DetachSkeletonLinks(skel_->skeleton);
    propagation_bpf__destroy(skel_);
  }
}

void PropagationLoader::Sweep() {
  const int release = bpf_map__fd(skel_->maps.ht_prop_release);
  uint64_t key = 0, next = 0;
  std::vector<uint64_t> cookies;
  for (uint64_t* prev = nullptr;
       bpf_map_get_next_key(release, prev, &next) == 0 && cookies.size() < 4096; prev = &key) {
    cookies.push_back(next);
    key = next;
  }
  for (uint64_t cookie : cookies) {
    if (Release(cookie)) ++released_;
    bpf_map_delete_elem(release, &cookie);
  }
}

PropagationCounters PropagationLoader::ReadCounters() const {
  PropagationCounters out;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> values(ncpu);
  auto sum = [&](uint32_t idx) -> uint64_t {
    if (bpf_map__lookup_elem(skel_->maps.ht_ctx_counters, &idx, sizeof(idx), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0) {
      return 0;
    }
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  out.server_contexts = sum(HT_CTXC_SERVER);
  out.remote = sum(HT_CTXC_REMOTE);
  out.invalid = sum(HT_CTXC_INVALID);
  out.head_cut = sum(HT_CTXC_HEAD_CUT);
  out.injected = sum(HT_CTXC_INJECTED);
  out.already_present = sum(HT_CTXC_PRESENT);
  out.no_context = sum(HT_CTXC_NO_CONTEXT);
  out.untracked = sum(HT_CTXC_UNTRACKED);
  out.inject_failed = sum(HT_CTXC_INJECT_FAILED);
  out.sockets_added = sum(HT_CTXC_SOCK_ADDED);
  out.sockets_busy = sum(HT_CTXC_SOCK_BUSY);
  out.sockets_failed = sum(HT_CTXC_SOCK_FAILED);
  out.not_http = sum(HT_CTXC_NOT_HTTP);
  out.replaced = sum(HT_CTXC_REPLACED);
  out.not_linear = sum(HT_CTXC_NOT_LINEAR);
  out.disarmed = sum(HT_CTXC_DISARMED);
  out.rt_picked = sum(HT_CTXC_RT_PICKED);
  out.rt_gone = sum(HT_CTXC_RT_GONE);
  out.opt_staged = sum(HT_CTXC_OPT_STAGED);
  out.opt_sent = sum(HT_CTXC_OPT_SENT);
  out.opt_no_room = sum(HT_CTXC_OPT_NO_ROOM);
  out.opt_unsent = sum(HT_CTXC_OPT_UNSENT);
  out.opt_roots = sum(HT_CTXC_OPT_ROOT);
  out.opt_received = sum(HT_CTXC_OPT_RECEIVED);
  out.opt_used = sum(HT_CTXC_OPT_USED);
  out.opt_absent = sum(HT_CTXC_OPT_ABSENT);
  out.released = released_;
  out.rearmed = rearmed_;
  out.rearm_skipped = rearm_skipped_;
  out.fionread_processes = fionread_pids_.size();
  out.fionread_wakeups = fionread_wakeups_;
  return out;
}

}  // namespace hoptrace
