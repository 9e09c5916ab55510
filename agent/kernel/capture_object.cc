#include "agent/kernel/capture_object.h"

#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/env_knob.h"
#include "agent/kernel/link_teardown.h"
#include "socket_trace.h"
#include "socket_trace.skel.h"
#include "socket_trace_capture.skel.h"

namespace hoptrace {

KernelContextSupport ProbeKernelContext() {
  KernelContextSupport out;
  const bool loop = libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop, nullptr) == 1;
  const bool force_off = EnvKnob("HOPTRACE_KERNEL_CONTEXT", {"off"}).has_value();
  if (!loop || force_off) {
    out.why = "this kernel has no bpf_loop (Linux 5.17, e6f2dd0f8067), which kernel-side trace "
              "contexts and traceparent injection need";
    if (loop) out.why += " (not true here: HOPTRACE_KERNEL_CONTEXT=off asks to act so)";
    return out;
  }
  out.ok = true;
  return out;
}

bool ReadAtExitSupported() {
  static const bool supported = [] {
    if (EnvKnob("HOPTRACE_READ_AT_EXIT", {"off"})) return false;
    return libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_pt_regs, nullptr) == 1;
  }();
  return supported;
}

bool ServerWritesAtExitSupported() {
  static const bool supported = [] {
    if (auto forced = EnvKnob("HOPTRACE_SERVER_WRITES_AT_EXIT", {"off", "on"})) {
      return *forced == "on";
    }
    utsname u{};
    int major = 0, minor = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return major > 6 || (major == 6 && minor >= 12);
  }();
  return supported;
}

namespace {

// Blocks of `block` pids (one byte each) that cover pid_max (PID_MAX_LIMIT
// when it cannot be read: 4194304 pids, 4 MiB).
uint32_t SelectedPidBlocks(uint32_t block) {
  constexpr uint32_t kPidMaxLimit = 4u << 20;
  uint64_t pid_max = kPidMaxLimit;
  if (FILE* f = fopen("/proc/sys/kernel/pid_max", "r")) {
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) == 1 && v > 0) pid_max = std::min<uint64_t>(v, kPidMaxLimit);
    fclose(f);
  }
  return static_cast<uint32_t>((pid_max + block - 1) / block);
}

}  // namespace

template <typename Skel>
std::unique_ptr<CaptureObject> CaptureObject::OpenAs(const LoaderOptions& options) {
  Skel* skel = Skel::open();
  if (!skel) return nullptr;
  auto* ro = skel->rodata;
  ro->targ_agent_tgid = static_cast<__u32>(getpid());
  ro->targ_trace_all = options.trace_all;
  ro->targ_port_filter = !options.ports.empty();
  ro->targ_exec_events = options.exec_events;
  ro->targ_max_payload = std::min<uint32_t>(options.max_payload, HT_MAX_PAYLOAD);
  // Reads at their exit alone: their entry programs stay unloaded.
  ro->targ_read_at_exit = options.read_at_exit && ReadAtExitSupported();
  for (bpf_program* prog : {skel->progs.ht_enter_read, skel->progs.ht_enter_readv,
                            skel->progs.ht_enter_recvfrom, skel->progs.ht_enter_recvmsg}) {
    bpf_program__set_autoload(prog, !ro->targ_read_at_exit);
  }
  // A server's writes too, where no kernel-side context starts at a write's
  // entry (their entry programs stay: clients' writes need them), and where
  // the verifier takes the two ways to a write's event within budget.
  ro->targ_server_writes_at_exit =
      ro->targ_read_at_exit && !options.kernel_context && ServerWritesAtExitSupported();
  // Only the build with kernel-side contexts has their knobs.
  if constexpr (requires { ro->targ_kernel_ctx; }) {
    ro->targ_kernel_ctx = options.kernel_context;
    ro->targ_sampler = options.sampler_kind;
    ro->targ_sample_threshold = options.sample_threshold;
    ro->targ_tcp_option = options.kernel_context && options.tcp_option;
  }
  // TLS plaintext (bpf/tls.bpf.h): its uprobe programs load only when asked;
  // TlsUprobes attaches them per library later.
  ro->targ_tls = options.tls;
  for (bpf_program* prog : {skel->progs.ht_ssl_write, skel->progs.ht_ssl_write_ex,
                            skel->progs.ht_ssl_read, skel->progs.ht_ssl_read_ex,
                            skel->progs.ht_ssl_return, skel->progs.ht_gotls_write,
                            skel->progs.ht_gotls_read, skel->progs.ht_gotls_write_ret,
                            skel->progs.ht_gotls_read_ret}) {
    bpf_program__set_autoload(prog, options.tls);
  }
  // One byte per pid up to pid_max (ht_sel_pid_arr, bpf/maps.bpf.h); a pid
  // past it, should pid_max grow later, is looked up in ht_selected_pids.
  bpf_map__set_max_entries(skel->maps.ht_sel_pid_arr,
                           SelectedPidBlocks(bpf_map__value_size(skel->maps.ht_sel_pid_arr)));
  // Ring buffer size must be a power-of-two multiple of the page size.
  uint32_t rb = 1u << 16;
  while (rb < options.ringbuf_bytes && rb < (1u << 30)) rb <<= 1;
  bpf_map__set_max_entries(skel->maps.ht_events, rb);
  return std::unique_ptr<CaptureObject>(new CaptureObject(
      skel->skeleton, skel->obj, options.kernel_context, [skel] { Skel::destroy(skel); }));
}

std::unique_ptr<CaptureObject> CaptureObject::Open(const LoaderOptions& options) {
  if (options.kernel_context) return OpenAs<socket_trace_bpf>(options);
  return OpenAs<socket_trace_capture_bpf>(options);
}

CaptureObject::~CaptureObject() {
  DetachSkeletonLinks(skeleton_);  // all at once: each waits for a grace period
  destroy_();                      // closes every program and map
}

int CaptureObject::Load() { return bpf_object__load_skeleton(skeleton_); }

int CaptureObject::Attach() { return bpf_object__attach_skeleton(skeleton_); }

bpf_map* CaptureObject::Map(const char* name) const {
  return bpf_object__find_map_by_name(obj_, name);
}

}  // namespace hoptrace
