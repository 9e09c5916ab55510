// The one place that talks to libbpf: opens the capture object (one of the
// two builds of bpf/socket_trace.bpf.c, capture_object.h), sets its knobs,
// loads and attaches it, and hands ring-buffer records to the caller.
// Destroying the loader detaches and unloads everything; nothing is pinned,
// so nothing of ours outlives the process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

struct ring_buffer;
struct bpf_program;
struct bpf_map;

namespace hoptrace {

// A start-up failure the user can act on; what() says what to do.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LoaderOptions {
  bool trace_all = false;          // every process but the agent
  std::vector<pid_t> pids;         // selected processes (children follow)
  std::vector<uint16_t> ports;     // connections to/from these ports
  bool exec_events = false;        // report execs (for --exe selection)
  // Selected by the kernel at exec when their comm (first 15 bytes of the
  // file's name) is one of these (--exe); the agent confirms the full name.
  std::vector<std::string> exec_names;
  uint32_t max_payload = 4096;     // bytes captured per syscall
  uint32_t ringbuf_bytes = 8u << 20;
  // Kernel-side trace context (bpf/head_scan.bpf.h): the kernel decides the
  // context of each request a selected process reads, sampling as the agent
  // would (sampler_kind: hoptrace::SamplerKind; threshold: Sampler's). Loads
  // the capture build that has them; only where ProbeKernelContext() is ok.
  bool kernel_context = false;
  uint32_t sampler_kind = 3;
  uint64_t sample_threshold = 0;
  // Context across TLS in a TCP option (bpf/tcp_ctx_option.bpf.h): TLS
  // requests' contexts are staged for the propagation sockops and received
  // ones taken as parents. Only with kernel_context and propagation.
  bool tcp_option = false;
  // TLS plaintext (bpf/tls.bpf.h): load the uprobe programs and let the
  // syscall programs tie TLS sessions to sockets. They attach per library
  // file later (TlsUprobes); off, they are not even loaded.
  bool tls = true;
  // Reads followed at their exit alone (bpf/capture.bpf.h, ht_read_exit),
  // where the kernel has bpf_task_pt_regs (ReadAtExitSupported); false keeps
  // the entry programs anyway (the verifier matrix loads both ways).
  bool read_at_exit = true;
};

// Whether syscall exit programs can read the syscall's arguments
// (bpf_task_pt_regs, Linux 5.15). HOPTRACE_READ_AT_EXIT=off says no, for
// A/B measurements of the entry programs it saves.
bool ReadAtExitSupported();

// Whether a server's writes may be followed at their exit alone too (bpf/
// capture.bpf.h, ht_io_exit; only without kernel-side contexts). Their exit
// programs then have two ways to a write's event, which the verifier checks
// in ~140 k instructions on Linux 6.18 but 280 k on 6.1 (Debian 12), past
// the 25 % budget (README, "Verifier headroom"): kernels before 6.12 keep
// the entry programs. HOPTRACE_SERVER_WRITES_AT_EXIT=off says no anywhere,
// =on yes wherever reads are followed at their exit (A/B measurements, and
// the verifier's figure on an older kernel).
bool ServerWritesAtExitSupported();

struct KernelCounters {
  uint64_t ringbuf_drops = 0;
  uint64_t conn_map_full = 0;
  uint64_t data_events = 0;
  uint64_t truncated = 0;
  uint64_t shed = 0;  // requests (HTTP/1) or connections not followed: overload
  // TLS calls, by how their socket was found (bpf/tls_session.bpf.h).
  uint64_t tls_by_syscall = 0;
  uint64_t tls_by_session = 0;
  uint64_t tls_by_thread = 0;
  uint64_t tls_unbound = 0;  // plaintext dropped: no socket found
  // Go crypto/tls (bpf/tls_go.bpf.h).
  uint64_t gotls_calls = 0;  // calls whose plaintext went out
  uint64_t gotls_no_fd = 0;  // calls on a tls.Conn that is not over a *net.TCPConn
};

class CaptureObject;

class BpfLoader {
 public:
  using EventCallback = std::function<void(std::span<const uint8_t>)>;

  // Open, configure, load and attach. Throws StartupError with a message the
  // user can act on (missing privileges, no BTF, tracefs, ...).
  static std::unique_ptr<BpfLoader> Start(const LoaderOptions& options, EventCallback on_event);
  ~BpfLoader();
  BpfLoader(const BpfLoader&) = delete;
  BpfLoader& operator=(const BpfLoader&) = delete;

  // Waits up to timeout_ms for events and delivers them. Returns the number
  // of events, or a negative errno (-EINTR when a signal arrived).
  int Poll(int timeout_ms);

  bool SelectPid(pid_t pid);
  void DeselectPid(pid_t pid);
  // Drops the kernel's entry for a connection the agent knows is gone.
  void ForgetConnection(pid_t pid, int fd);
  KernelCounters ReadCounters() const;
  // Overload shedding (struct ht_shed): the share of new connections the
  // kernel follows, in 1/1024; HT_SHED_KEEP_ALL follows all. False if the
  // map could not be written.
  bool SetKeepRatio(uint32_t keep_per_1024);
  // File descriptor of the capture object's map `name`, or -1: for other
  // objects that share its maps (net_probe_loader.cc).
  int MapFd(const char* name) const;
  // Program `name` of the capture object, or nullptr: for attachments made
  // after start (TlsUprobes).
  bpf_program* Program(const char* name) const;

  // Routes libbpf's own messages into the agent's log.
  static void InstallLibbpfLogger();

  // While one lives, libbpf's warnings (a failed load prints the verifier's
  // whole log) go to the debug level: for optional parts, whose failure the
  // agent reports in one line of its own.
  class QuietLibbpf {
   public:
    QuietLibbpf();
    ~QuietLibbpf();
    QuietLibbpf(const QuietLibbpf&) = delete;
    QuietLibbpf& operator=(const QuietLibbpf&) = delete;
  };

 private:
  BpfLoader() = default;
  static int OnRingbufRecord(void* ctx, void* data, size_t size);
  void SetSelectedByte(pid_t pid, uint8_t value);

  std::unique_ptr<CaptureObject> capture_;
  bpf_map* selected_pids_ = nullptr;
  // ht_sel_pid_arr, mapped: one byte per pid (bpf/maps.bpf.h).
  uint8_t* selected_bytes_ = nullptr;
  size_t selected_bytes_len_ = 0;
  bpf_map* conns_ = nullptr;
  bpf_map* counters_ = nullptr;
  ring_buffer* ringbuf_ = nullptr;
  EventCallback on_event_;
};

// Makes sure tracefs is mounted (syscall tracepoints are attached through
// it); mounts it at /sys/kernel/tracing if needed. Throws StartupError.
void EnsureTracefs();

// Capabilities the capture path needs, checked before anything is loaded.
// Returns an empty string if all are present, else one plain sentence.
std::string MissingCapabilities();

}  // namespace hoptrace
