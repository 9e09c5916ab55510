// Black-box context propagation (bpf/propagation.bpf.c): loads the sockops
// and sk_msg programs so that they share the capture object's maps (the
// selection, its connections and syscalls in flight, the kernel-side
// contexts and the ring buffer), attaches sk_msg to the sockhash and sockops
// to cgroup v2 directories: the one the configuration names, or (scope
// "pods") each selected container's own, attached and detached while the
// agent runs (AttachCgroup, DetachCgroup). Destroying the loader detaches
// everything and frees the sockhash, which takes every socket out of it;
// nothing is pinned.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/kernel/bpf_loader.h"

struct propagation_bpf;
struct bpf_link;

namespace hoptrace {

// Kernels with the sockmap FIONREAD regression (upstream 929e30f93125, fixed
// by 04af4efde58a; in 6.6.128+, 6.12.75+, 6.18.14+ until the fix) answer
// FIONREAD with 0 on a socket in a sockhash without a verdict program, and
// programs that size their reads with it (nginx, Java, .NET, Dart) stall.
// The read guard keeps a socket in the sockhash only while it has nothing to
// read: the kernel takes it out when the peer acknowledges a request (before
// any answer can be read), the agent puts it back once the process has read
// the whole response (Rearm).
enum class FionreadGuard {
  kAuto,    // on when the start-up probe finds the regression
  kOn,
  kOff,     // sockets stay in the sockhash; FIONREAD under-reports on such kernels
  // Only for processes seen asking FIONREAD (a tracepoint on ioctl): the
  // others keep their sockets in the sockhash and every keep-alive request
  // injected. The first FIONREAD a process asks of a socket in the sockhash
  // is answered 0; the agent then takes the socket out and wakes its reader
  // (SO_RCVLOWAT set to what it is runs tcp_data_ready: an EPOLLIN edge), so
  // it reads again instead of stalling.
  kDetect,
};

// "auto", "on", "off", "detect"; false when the text is none of them.
bool ParseFionreadGuard(const std::string& text, FionreadGuard* out);

// How the sockops program learns which process connects (it runs in the
// connecting thread): propagation.bpf.c ht_sockops / ht_sockops_task.
enum class SockopsRoute {
  kHelper,  // bpf_get_current_pid_tgid(), allowed in sockops since Linux 6.10
  kTask,    // the ids read from the current task (older kernels)
};

// What this kernel lets propagation do, found by probing helpers (never by
// its version). ok false: propagation is off here, `why` says why in one
// sentence; everything else runs.
struct PropagationSupport {
  bool ok = false;
  SockopsRoute route = SockopsRoute::kHelper;
  std::string why;
};

// "" where sockops can write and parse TCP header options (context across
// TLS, bpf/tcp_ctx_option.bpf.h), else why not, in one sentence.
std::string ProbeTcpOptionSupport();

// HOPTRACE_SOCKOPS_ROUTE=task in the environment forces the kTask route where
// both work (tests of the older kernels' route on a newer one).
PropagationSupport ProbePropagationSupport();

struct PropagationOptions {
  // A cgroup v2 directory to attach sockops to at start; empty: none yet
  // (scope "pods": AttachCgroup as containers are selected).
  std::string cgroup_path;
  FionreadGuard fionread_guard = FionreadGuard::kAuto;
  SockopsRoute sockops_route = SockopsRoute::kHelper;
};

// Sets the propagation object's knobs (the capture's, the same decisions)
// and which of its programs load, between open and load: the one place, so
// that `hoptrace check` verifies exactly what `run` loads.
void ConfigurePropagation(propagation_bpf* skel, const LoaderOptions& capture_options,
                          FionreadGuard guard, SockopsRoute route);

struct PropagationCounters {
  uint64_t server_contexts = 0;  // decided by the kernel
  uint64_t remote = 0;           // ... joining an incoming traceparent
  uint64_t invalid = 0;          // ... restarting after an invalid one
  uint64_t head_cut = 0;         // ... on a head longer than what was captured
  uint64_t injected = 0;
  uint64_t already_present = 0;  // requests left untouched: had a traceparent
  uint64_t no_context = 0;       // ... written by a thread serving nothing
  uint64_t untracked = 0;        // ... in a write the capture did not follow
  uint64_t inject_failed = 0;
  uint64_t sockets_added = 0;
  uint64_t sockets_busy = 0;  // another sk_msg program already had the socket
  uint64_t sockets_failed = 0;
  uint64_t not_http = 0;
  uint64_t released = 0;    // non-HTTP sockets taken out of the sockhash by Sweep()
  uint64_t replaced = 0;    // invalid or repeated traceparent replaced
  uint64_t not_linear = 0;  // injected messages left in pieces (copy failed)
  // Read guard: sockets the kernel took out (peer acked a request), put
  // back by Rearm(), or left out (bytes still waiting, socket gone).
  uint64_t disarmed = 0;
  // Runtime context (bpf/context.bpf.h ht_rt_current): parents chosen by a
  // runtime's own context, and those whose request was already answered.
  uint64_t rt_picked = 0;
  uint64_t rt_gone = 0;
  uint64_t rearmed = 0;
  uint64_t rearm_skipped = 0;
  // Guard "detect": processes seen asking FIONREAD, readers woken.
  uint64_t fionread_processes = 0;
  uint64_t fionread_wakeups = 0;
  // Context across TLS in a TCP option (bpf/tcp_ctx_option.bpf.h). Sender:
  // staged for sockops, written, no room (SACK), first byte gone without it;
  // contexts made for TLS requests of threads serving nothing. Receiver:
  // arrived, taken as a parent, TLS request heads that had none (fallback).
  uint64_t opt_staged = 0;
  uint64_t opt_sent = 0;
  uint64_t opt_no_room = 0;
  uint64_t opt_unsent = 0;
  uint64_t opt_roots = 0;
  uint64_t opt_received = 0;
  uint64_t opt_used = 0;
  uint64_t opt_absent = 0;
};

class PropagationLoader {
 public:
  // capture must have been started with LoaderOptions::kernel_context and
  // outlive this loader. Throws StartupError with what to do.
  static std::unique_ptr<PropagationLoader> Start(const PropagationOptions& options,
                                                  const LoaderOptions& capture_options,
                                                  const BpfLoader& capture);
  ~PropagationLoader();
  PropagationLoader(const PropagationLoader&) = delete;
  PropagationLoader& operator=(const PropagationLoader&) = delete;

  PropagationCounters ReadCounters() const;
  // Takes the sockets the sk_msg program found not to speak HTTP out of the
  // sockhash (BPF programs of that type may not). Call it every tick.
  void Sweep();
  // Read guard: the process pid has read a whole response on its socket fd,
  // having written `written` and read `read` bytes on it in all (as the
  // capture saw them). If that socket is one of ours, out of the sockhash,
  // and the kernel's counts say the same (nothing sent since: no request
  // waiting for an answer; nothing arrived unread), it goes back in, and its
  // next request gets a traceparent again. A no-op without the guard.
  void Rearm(uint32_t pid, int fd, uint16_t local_port, uint64_t written, uint64_t read);
  // Guard "detect": process pid asked FIONREAD of its socket fd (flags:
  // HT_FIONREAD_F_*). Marks the process; a socket that was in the sockhash
  // is taken out and its reader woken; on the first FIONREAD of a process
  // all its sockets in the sockhash are taken out.
  void OnFionread(uint32_t pid, int fd, uint32_t flags);
  bool read_guard() const { return guard_mode_ != 0; }
  bool detect_mode() const;
  // sockops programs of others on the cgroup (effective, inherited ones
  // included) when we attached: "id NAME" each. Their sk_msg programs, if
  // any, keep the sockets they claim (counted as sockets_busy).
  const std::vector<std::string>& other_sockops() const { return other_sockops_; }

  // Attaches the sockops program to one more cgroup v2 directory (and its
  // descendants): connections made there from now on by selected processes
  // get traceparent. "" or a sentence saying why not. Attaching one that is
  // attached already does nothing.
  std::string AttachCgroup(const std::string& path);
  // Detaches it again (a no-op for one not attached). Sockets already in the
  // sockhash stay there until they close.
  void DetachCgroup(const std::string& path);
  std::vector<std::string> AttachedCgroups() const;

 private:
  PropagationLoader() = default;

  propagation_bpf* skel_ = nullptr;
  bpf_program* sockops_ = nullptr;  // the program of this kernel's route
  struct Attachment {
    int fd = -1;
    bpf_link* link = nullptr;
  };
  std::map<std::string, Attachment> cgroups_;
  bool msg_attached_ = false;
  uint8_t guard_mode_ = 0;  // enum ht_guard_mode
  bpf_link* ioctl_link_ = nullptr;
  std::unordered_set<uint32_t> fionread_pids_;  // guard "detect": marked processes
  uint64_t fionread_wakeups_ = 0;
  // A socket of the process, by its descriptor there (pidfd_getfd), or -1.
  int TakeSocket(uint32_t pid, int fd);
  // Takes the socket with this cookie out of the sockhash (and out of the
  // "detect" mirror of it); true if it was in.
  bool Release(uint64_t cookie);
  uint64_t released_ = 0;
  uint64_t rearmed_ = 0;
  uint64_t rearm_skipped_ = 0;
  bool rearm_warned_ = false;
  std::unordered_map<uint32_t, int> pidfds_;  // pid -> pidfd, for pidfd_getfd
  std::vector<std::string> other_sockops_;
};

// For `hoptrace check`: 1 if FIONREAD stays exact on a socket in a sockhash
// with the propagation sk_msg program, 0 if this kernel answers 0 (the
// sockmap FIONREAD regression: the read guard turns on), -1 if it cannot
// tell. loaded: the propagation object, loaded on maps of its own.
int ProbeSockhashFionread(propagation_bpf* loaded);

// "" if path is a directory of a cgroup v2 hierarchy we may attach to, else
// a sentence saying what is wrong.
std::string CheckPropagationCgroup(const std::string& path);

}  // namespace hoptrace
