#include "agent/kernel/verifier_matrix.h"

#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/capture_object.h"
#include "agent/kernel/propagation_loader.h"
#include "net_probe.skel.h"
#include "uprobe_trace.skel.h"
#include "propagation.skel.h"
#include "runtime_node.skel.h"

namespace hoptrace {
namespace {

constexpr uint16_t kMatrixPort = 18431;

struct Config {
  std::string selection;  // pid, exe, port, all
  bool propagation = false;
  std::string guard;  // auto, on, off, detect (propagation only)
  uint32_t payload = 4096;

  std::string Name() const {
    std::string n = "selection=" + selection + " propagation=" + (propagation ? "on" : "off");
    if (propagation) n += " guard=" + guard;
    return n + " payload=" + std::to_string(payload);
  }
};

LoaderOptions CaptureOptionsFor(const Config& c) {
  LoaderOptions lo;
  lo.max_payload = c.payload;
  lo.ringbuf_bytes = 1u << 16;  // its size does not change what is verified
  if (c.selection == "pid") lo.pids = {getpid()};
  if (c.selection == "exe") lo.exec_events = true;
  if (c.selection == "port") lo.ports = {kMatrixPort};
  if (c.selection == "all") lo.trace_all = true;
  lo.kernel_context = c.propagation;
  // The TCP option's code paths too, where this kernel has them.
  lo.tcp_option = c.propagation && ProbeTcpOptionSupport().empty();
  return lo;
}

// One object opened and configured for a load: the libbpf object, how to
// load it, and its owner (freeing it frees the object).
struct Opened {
  bpf_object* obj = nullptr;
  std::function<int()> load;
  std::shared_ptr<void> owner;
};
using Opener = std::function<std::optional<Opened>()>;

template <typename Skel>
Opener SkeletonOpener(std::function<void(Skel*)> configure) {
  return [configure]() -> std::optional<Opened> {
    Skel* skel = Skel::open();
    if (!skel) return std::nullopt;
    configure(skel);
    std::shared_ptr<Skel> owner(skel, [](Skel* s) { Skel::destroy(s); });
    return Opened{skel->obj, [skel] { return Skel::load(skel); }, owner};
  };
}

Opener CaptureOpener(const LoaderOptions& options) {
  return [options]() -> std::optional<Opened> {
    std::shared_ptr<CaptureObject> capture = CaptureObject::Open(options);
    if (!capture) return std::nullopt;
    return Opened{capture->obj(), [c = capture.get()] { return c->Load(); }, capture};
  };
}

// Loads an object and records what each program cost. When the object does
// not load, each program is loaded alone so that every one gets its own
// verdict.
ObjectCosts LoadAndMeasure(const std::string& name, const Opener& open) {
  ObjectCosts out;
  out.object = name;
  std::optional<Opened> o = open();
  if (!o) {
    out.error = std::string("cannot open: ") + strerror(errno);
    return out;
  }
  int err;
  {
    CostRecorder rec(o->obj);
    err = o->load();
    out.programs = rec.Costs(err);
  }
  o.reset();
  bool unknown = false;
  for (const auto& p : out.programs) unknown |= p.insns < 0;
  if (err == 0 && !unknown) return out;
  if (err != 0) out.error = strerror(-err);
  // Each program alone, with the verifier's log: its own verdict and count.
  std::vector<ProgramCost> each;
  for (const auto& p : out.programs) {
    if (p.loaded && p.insns >= 0) {
      each.push_back(p);
      continue;
    }
    std::optional<Opened> one = open();
    if (!one) break;
    bpf_program* prog;
    bpf_object__for_each_program(prog, one->obj) {
      if (p.program != bpf_program__name(prog)) bpf_program__set_autoload(prog, false);
    }
    CostRecorder rec(one->obj, /*with_log=*/true);
    const int one_err = one->load();
    auto costs = rec.Costs(one_err);
    if (!costs.empty()) each.push_back(costs.front());
  }
  if (each.size() == out.programs.size()) out.programs = std::move(each);
  return out;
}

std::vector<ObjectCosts> MeasureConfig(const Config& c) {
  std::vector<ObjectCosts> out;
  const LoaderOptions lo = CaptureOptionsFor(c);
  out.push_back(MeasureCapture(lo));
  if (c.propagation) {
    out.push_back(MeasurePropagation(lo, c.guard));
    out.push_back(MeasureNodeRuntime());  // --node-inject needs propagation
  }
  out.push_back(MeasureUprobes());  // --probe goes with every configuration
  return out;
}

bool Within(const ProgramCost& p, int64_t budget) {
  return p.loaded && p.insns >= 0 && p.insns <= budget;
}

}  // namespace

ObjectCosts MeasureCapture(const LoaderOptions& options) {
  return LoadAndMeasure(options.kernel_context ? "capture+ctx" : "capture",
                        CaptureOpener(options));
}

ObjectCosts MeasurePropagation(const LoaderOptions& capture_options, const std::string& guard) {
  const PropagationSupport support = ProbePropagationSupport();
  FionreadGuard g = FionreadGuard::kAuto;
  ParseFionreadGuard(guard, &g);
  LoaderOptions lo = capture_options;
  lo.kernel_context = true;
  return LoadAndMeasure(
      "propagation", SkeletonOpener<propagation_bpf>([&](propagation_bpf* s) {
        ConfigurePropagation(s, lo, g, support.route);
        // Both sockops routes where this kernel takes both: a DaemonSet
        // meets the other one on older nodes.
        if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_current_pid_tgid,
                                    nullptr) == 1) {
          bpf_program__set_autoload(s->progs.ht_sockops, true);
        }
        bpf_program__set_autoload(s->progs.ht_sockops_task, true);
      }));
}

ObjectCosts MeasureNodeRuntime() {
  return LoadAndMeasure("runtime_node",
                        SkeletonOpener<runtime_node_bpf>([](runtime_node_bpf*) {}));
}

ObjectCosts MeasureNetProbe() {
  return LoadAndMeasure("net_probe", SkeletonOpener<net_probe_bpf>([](net_probe_bpf*) {}));
}

ObjectCosts MeasureUprobes() {
  return LoadAndMeasure("uprobe_trace",
                        SkeletonOpener<uprobe_trace_bpf>([](uprobe_trace_bpf*) {}));
}

void PrintObjectCosts(const ObjectCosts& costs, int64_t budget, std::FILE* out) {
  for (const auto& p : costs.programs) {
    std::fprintf(out, "    %-12s %-24s %8s insns  %s\n", costs.object.c_str(), p.program.c_str(),
                 p.insns >= 0 ? std::to_string(p.insns).c_str() : "?",
                 !p.loaded            ? ("NOT LOADED: " + p.error).c_str()
                 : p.insns > budget   ? "OVER BUDGET"
                 : p.insns < 0        ? "(count unknown)"
                                      : "");
  }
  if (costs.programs.empty() && !costs.error.empty()) {
    std::fprintf(out, "    %-12s NOT LOADED: %s\n", costs.object.c_str(), costs.error.c_str());
  }
}

bool RunConfigMatrix(const MatrixOptions& options, std::FILE* out) {
  BpfLoader::InstallLibbpfLogger();
  EnsureTracefs();
  const PropagationSupport support = ProbePropagationSupport();
  std::vector<Config> configs;
  for (const char* sel : {"pid", "exe", "port", "all"}) {
    for (uint32_t payload : options.payloads) {
      configs.push_back(Config{sel, false, "", payload});
      if (!support.ok) continue;
      for (const char* guard : {"auto", "on", "off", "detect"}) {
        configs.push_back(Config{sel, true, guard, payload});
      }
    }
  }
  std::fprintf(out, "verifier budget per program: %lld processed instructions\n",
               static_cast<long long>(options.budget));
  if (!support.ok) std::fprintf(out, "propagation is off on this kernel: %s\n", support.why.c_str());

  struct Worst {
    int64_t insns = -1;
    std::string config;
  };
  std::map<std::string, Worst> worst;  // "object program" -> most it cost
  bool ok = true;
  int failed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& c : configs) {
    std::fprintf(out, "%s\n", c.Name().c_str());
    for (const auto& obj : MeasureConfig(c)) {
      PrintObjectCosts(obj, options.budget, out);
      if (obj.programs.empty()) {
        ok = false;
        ++failed;
      }
      for (const auto& p : obj.programs) {
        if (!Within(p, options.budget)) {
          ok = false;
          ++failed;
        }
        auto& w = worst[obj.object + " " + p.program];
        if (!p.loaded || p.insns > w.insns) w = Worst{p.loaded ? p.insns : INT64_MAX, c.Name()};
      }
    }
    std::fflush(out);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(out, "\nmost processed instructions per program over %zu configurations (%.0f s):\n",
               configs.size(), secs);
  for (const auto& [prog, w] : worst) {
    std::fprintf(out, "  %-38s %8s  %5.1f%% of 1M  (%s)\n", prog.c_str(),
                 w.insns == INT64_MAX ? "FAILED" : std::to_string(w.insns).c_str(),
                 w.insns == INT64_MAX ? 100.0 : w.insns / 10000.0, w.config.c_str());
  }
  std::fprintf(out, "\n%s\n",
               ok ? "every program loads within the budget in every configuration"
                  : (std::to_string(failed) + " program load(s) failed or went over the budget")
                        .c_str());
  return ok;
}

}  // namespace hoptrace
