#include "agent/kernel/preflight.h"

#include <bpf/libbpf.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/capture_object.h"
#include "agent/kernel/propagation_loader.h"
#include "net_probe.skel.h"
#include "uprobe_trace.skel.h"
#include "propagation.skel.h"
#include "uprobes/openssl/tls_libraries.h"

namespace hoptrace {
namespace {

using Status = PreflightItem::Status;

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// Mount point of the first filesystem of this type in /proc/mounts, or "".
std::string MountOf(const std::string& fstype) {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string dev, dir, type;
    fields >> dev >> dir >> type;
    if (type == fstype) return dir;
  }
  return "";
}

PreflightItem Item(std::string feature, bool ok, std::string detail, std::string needed_for,
                   bool required) {
  return PreflightItem{std::move(feature), ok ? Status::kOk : Status::kMissing, std::move(detail),
                       std::move(needed_for), required};
}

PreflightItem Item(std::string feature, Status status, std::string detail,
                   std::string needed_for, bool required) {
  return PreflightItem{std::move(feature), status, std::move(detail), std::move(needed_for),
                       required};
}

PreflightItem ProgType(const char* name, bpf_prog_type type, std::string needed_for,
                       bool required) {
  bool ok = libbpf_probe_bpf_prog_type(type, nullptr) == 1;
  return Item(std::string("BPF program type ") + name, ok, ok ? "loads" : "refused by the kernel",
              std::move(needed_for), required);
}

PreflightItem MapType(const char* name, bpf_map_type type, std::string needed_for,
                      bool required) {
  bool ok = libbpf_probe_bpf_map_type(type, nullptr) == 1;
  return Item(std::string("BPF map ") + name, ok, ok ? "created" : "refused by the kernel",
              std::move(needed_for), required);
}

}  // namespace

std::vector<PreflightItem> RunPreflight(std::vector<ObjectCosts>* costs) {
  BpfLoader::InstallLibbpfLogger();
  std::vector<PreflightItem> items;

  utsname u{};
  uname(&u);
  items.push_back({"kernel", Status::kInfo, std::string(u.release) + " " + u.machine, "", false});

  std::string caps = MissingCapabilities();
  items.push_back(Item("privileges", caps.empty(), caps.empty() ? "CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE" : caps,
                       "loading eBPF programs, reading /proc of traced processes", true));
  const bool privileged = caps.empty();
  if (privileged && costs) {
    // What the verifier spends on each program, loaded as `run` loads it by
    // default (again, on maps of its own, for the count alone).
    LoaderOptions lo;
    lo.pids = {getpid()};
    costs->push_back(MeasureCapture(lo));
    costs->push_back(MeasureNetProbe());
    costs->push_back(MeasureUprobes());
    if (ProbeKernelContext().ok) {
      lo.kernel_context = true;
      lo.tcp_option = ProbeTcpOptionSupport().empty();  // as run with propagation
      costs->push_back(MeasureCapture(lo));
    }
    if (ProbePropagationSupport().ok) {
      costs->push_back(MeasurePropagation(lo, "auto"));
      costs->push_back(MeasureNodeRuntime());
    }
  }

  items.push_back(Item("BTF (/sys/kernel/btf/vmlinux)", Exists("/sys/kernel/btf/vmlinux"),
                       Exists("/sys/kernel/btf/vmlinux") ? "present" : "absent: kernel needs CONFIG_DEBUG_INFO_BTF=y",
                       "CO-RE: one binary for every kernel", true));

  std::string tracefs = MountOf("tracefs");
  if (tracefs.empty() && Exists("/sys/kernel/tracing")) {
    items.push_back({"tracefs", Status::kInfo, "not mounted; `hoptrace run` mounts it at /sys/kernel/tracing",
                     "attaching syscall tracepoints", false});
  } else {
    items.push_back(Item("tracefs", !tracefs.empty(), tracefs.empty() ? "absent" : "mounted at " + tracefs,
                         "attaching syscall tracepoints", true));
  }
  if (!tracefs.empty()) {
    bool sys = Exists(tracefs + "/events/syscalls/sys_enter_read");
    items.push_back(Item("syscall tracepoints", sys, sys ? "present" : "absent: needs CONFIG_FTRACE_SYSCALLS",
                         "HTTP capture (read/write/accept/connect/close)", true));
    // Not required: without it every followed read and write also runs its entry program.
    const bool at_exit = ReadAtExitSupported();
    items.push_back({"syscall arguments at exit", at_exit ? Status::kOk : Status::kInfo,
                     !at_exit ? "no bpf_task_pt_regs (Linux 5.15) or HOPTRACE_READ_AT_EXIT=off: "
                                "reads and responses also run their entry programs"
                     : ServerWritesAtExitSupported()
                         ? "bpf_task_pt_regs present"
                         : "bpf_task_pt_regs present; a server's writes keep their entry "
                           "programs (before Linux 6.12 the verifier needs past its budget for "
                           "them, or HOPTRACE_SERVER_WRITES_AT_EXIT=off)",
                     "reads, and a server's writes without propagation, followed at their exit "
                     "alone",
                     false});
    bool kp = Exists(tracefs + "/kprobe_events");
    items.push_back({"kprobes", kp ? Status::kOk : Status::kInfo,
                     kp ? "present" : "absent (CONFIG_KPROBES off) — not needed, hoptrace uses tracepoints",
                     "nothing yet (optional accelerators later)", false});
    bool up = Exists(tracefs + "/uprobe_events");
    items.push_back(Item("uprobes", up, up ? "present" : "absent", "TLS library hooks (SSL_read/SSL_write)", false));
  }

  std::string cg2 = MountOf("cgroup2");
  items.push_back(Item("cgroup v2", !cg2.empty(), cg2.empty() ? "not mounted" : "mounted at " + cg2,
                       "sockops/sk_msg context propagation, per-cgroup selection", false));
  std::string bpffs = MountOf("bpf");
  items.push_back({"bpffs", bpffs.empty() ? Status::kInfo : Status::kOk,
                   bpffs.empty() ? "not mounted (only needed for pinning; hoptrace pins nothing)" : "mounted at " + bpffs,
                   "", false});

  if (privileged) {
    items.push_back(ProgType("tracepoint", BPF_PROG_TYPE_TRACEPOINT, "HTTP capture", true));
    items.push_back(ProgType("sock_ops", BPF_PROG_TYPE_SOCK_OPS, "TCP RTT/retransmit facts, context propagation", false));
    items.push_back(ProgType("sk_msg", BPF_PROG_TYPE_SK_MSG, "traceparent injection", false));
    items.push_back(ProgType("sched_cls (tc)", BPF_PROG_TYPE_SCHED_CLS, "IP hop counts", false));
    items.push_back(ProgType("cgroup_skb", BPF_PROG_TYPE_CGROUP_SKB, "IP hop counts", false));
    items.push_back(MapType("ringbuf", BPF_MAP_TYPE_RINGBUF, "events to the agent", true));
    items.push_back(MapType("lru_hash", BPF_MAP_TYPE_LRU_HASH, "bounded connection tables", true));
    items.push_back(MapType("sockhash", BPF_MAP_TYPE_SOCKHASH, "traceparent injection", false));

    // The decisive test: do our own objects pass the verifier here, as
    // `hoptrace run` configures them by default?
    LoaderOptions lo;
    lo.pids = {getpid()};
    std::unique_ptr<CaptureObject> capture = CaptureObject::Open(lo);
    int err = capture ? capture->Load() : -errno;
    items.push_back(Item("HTTP capture programs", err == 0,
                         err == 0 ? "loaded and verified" : std::string("load failed: ") + strerror(-err),
                         "everything", true));
    capture.reset();

    // The network probes load on their own here (with maps of their own).
    net_probe_bpf* net = net_probe_bpf__open();
    int net_err = -errno;
    if (net) net_err = net_probe_bpf__load(net);
    items.push_back(Item("network probe programs", net && net_err == 0,
                         net_err == 0 ? "loaded and verified"
                                      : std::string("load failed: ") + strerror(-net_err),
                         "RTT, retransmissions, resets, IP hops on spans", false));
    if (net) net_probe_bpf__destroy(net);

    // Function probes (--probe): uprobes, on maps of their own here.
    uprobe_trace_bpf* up = uprobe_trace_bpf__open();
    int up_err = -errno;
    if (up) up_err = uprobe_trace_bpf__load(up);
    items.push_back(Item("function probe programs (uprobes)", up && up_err == 0,
                         up_err == 0 ? "loaded and verified"
                                     : std::string("load failed: ") + strerror(-up_err),
                         "--probe: INTERNAL spans of named functions", false));
    if (up) uprobe_trace_bpf__destroy(up);

    // Kernel-side trace contexts: the capture build that has them.
    const char* prop_for = "--propagation-cgroup (traceparent injection)";
    const KernelContextSupport kctx = ProbeKernelContext();
    std::unique_ptr<CaptureObject> ctx;
    int ctx_err = 0;
    if (kctx.ok) {
      lo.kernel_context = true;
      lo.tcp_option = ProbeTcpOptionSupport().empty();  // as run loads it
      ctx = CaptureObject::Open(lo);
      ctx_err = ctx ? ctx->Load() : -errno;
    }
    const bool ctx_ok = kctx.ok && ctx_err == 0;
    items.push_back(Item("kernel-side trace contexts", ctx_ok,
                         ctx_ok     ? "loaded and verified"
                         : kctx.ok  ? "off: load failed: " + std::string(strerror(-ctx_err))
                                    : "off: " + kctx.why,
                         prop_for, false));

    // Context propagation: what this kernel lets it do, then the sockops/
    // sk_msg object (here with maps of its own).
    const PropagationSupport support = ProbePropagationSupport();
    if (!support.ok || !ctx_ok) {
      items.push_back(Item("context propagation", false,
                           "off: " + (support.ok ? std::string("the capture with kernel-side "
                                                               "contexts does not load here")
                                                 : support.why),
                           prop_for, false));
      return items;
    }
    propagation_bpf* prop = propagation_bpf__open();
    int prop_err = -errno;
    if (prop) {
      ConfigurePropagation(prop, lo, FionreadGuard::kAuto, support.route);
      prop_err = propagation_bpf__load(prop);
    }
    const bool prop_ok = prop && prop_err == 0;
    const std::string route =
        support.route == SockopsRoute::kTask
            ? " (sockops reads the connecting task: this kernel's sockops lacks "
              "bpf_get_current_pid_tgid)"
            : "";
    items.push_back(Item("context propagation programs", prop_ok,
                         prop_ok ? "loaded and verified" + route
                                 : "off: load failed: " + std::string(strerror(-prop_err)),
                         prop_for, false));
    if (prop_ok) {
      const int fionread = ProbeSockhashFionread(prop);
      items.push_back(Item(
          "FIONREAD on sockhash sockets", fionread == 1,
          fionread == 1   ? "exact"
          : fionread == 0 ? "answers 0 (sockmap FIONREAD regression): the read guard will be on"
                          : "could not check",
          "keep-alive requests injected back to back", false));
      const std::string opt_why = ProbeTcpOptionSupport();
      items.push_back(Item("context across TLS (TCP option)", opt_why.empty(),
                           opt_why.empty() ? "sockops writes and parses TCP header options"
                                           : "off: " + opt_why,
                           "HTTPS calls between traced hosts in one trace", false));
    }
    if (prop) propagation_bpf__destroy(prop);
  }
  return items;
}

std::vector<PreflightItem> TlsLibraryItems(int pid) {
  std::vector<PreflightItem> items;
  const std::string who = "TLS in pid " + std::to_string(pid);
  const char* for_what = "HTTPS plaintext (uprobes on SSL_read/SSL_write, Go's tls.Conn)";
  if (kill(pid, 0) != 0 && errno == ESRCH) {
    items.push_back(Item(who, Status::kInfo, "no such process", "", false));
    return items;
  }
  const auto libs = tls::FindTlsLibraries(pid);
  if (libs.empty()) {
    items.push_back(Item(who, Status::kInfo,
                         "no TLS library found (no libssl mapped, no OpenSSL or Go crypto/tls in "
                         "the executable)",
                         for_what, false));
  }
  for (const auto& lib : libs) {
    std::string symbols;
    for (const auto& s : lib.symbols) symbols += (symbols.empty() ? "" : ", ") + s;
    std::string detail = lib.path + " (" + lib.kind + "): ";
    if (lib.probeable()) {
      detail += "can be probed: " + symbols;
    } else if (!lib.error.empty() && lib.kind == tls::kGoTlsKind) {
      detail += "cannot be probed: " + lib.error;
    } else if (!lib.error.empty()) {
      detail += "cannot be read: " + lib.error;
    } else {
      detail += "cannot be probed: lacks SSL_read or SSL_write" +
                (symbols.empty() ? std::string() : " (has " + symbols + ")");
    }
    items.push_back(Item(who, lib.probeable() ? Status::kOk : Status::kInfo, detail, for_what,
                         false));
  }
  return items;
}

bool PrintPreflight(const std::vector<PreflightItem>& items, std::FILE* out) {
  bool ok = true;
  for (const auto& it : items) {
    const char* mark = it.status == Status::kOk ? "ok     " : it.status == Status::kInfo ? "info   " : "MISSING";
    if (it.status == Status::kMissing && it.required) ok = false;
    std::fprintf(out, "%s  %-34s %s", mark, it.feature.c_str(), it.detail.c_str());
    if (!it.needed_for.empty()) std::fprintf(out, "  [for: %s%s]", it.needed_for.c_str(), it.required ? ", required" : "");
    std::fprintf(out, "\n");
  }
  std::fprintf(out, "\n%s\n", ok ? "hoptrace can trace HTTP on this host."
                                  : "hoptrace cannot trace on this host: see the MISSING lines marked required.");
  return ok;
}

}  // namespace hoptrace
