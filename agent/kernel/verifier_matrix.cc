#include "agent/kernel/verifier_matrix.h"

#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <atomic>
#include <map>
#include <optional>
#include <thread>

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
  // Reads with their entry programs where the kernel could do without
  // (LoaderOptions::read_at_exit false): the path kernels before 5.15 take.
  bool read_entries = false;

  std::string Name() const {
    std::string n = "selection=" + selection + " propagation=" + (propagation ? "on" : "off");
    if (propagation) n += " guard=" + guard;
    if (read_entries) n += " read-entries";
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
  lo.read_at_exit = !c.read_entries;
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

// Loads an opened object and records what each program cost; when it does
// not load, each program alone (opened again) gets its own verdict.
ObjectCosts MeasureOpened(const std::string& name, const Opener& open, Opened opened) {
  ObjectCosts out;
  out.object = name;
  std::optional<Opened> o(std::move(opened));
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

template <typename T>
void Append(std::string* key, const T& v) {
  key->append(reinterpret_cast<const char*>(&v), sizeof v);
}

void AppendBytes(std::string* key, const void* data, size_t size) {
  Append(key, size);
  if (size > 0) key->append(static_cast<const char*>(data), size);
}

// Everything of an opened object that the verifier's work depends on, as
// the bytes the kernel will be handed: every program (name, type, attach
// type, flags, whether it loads, its instructions as compiled) and every map
// (name, type, sizes, flags, and the initial contents of .rodata/.data/.bss,
// which hold the configuration's knobs). Two objects with the same key load
// the same programs against the same maps with the same constants; in the
// same process on the same kernel (CO-RE relocates them alike) the verifier
// walks them alike.
std::string LoadKey(const std::string& name, bpf_object* obj) {
  std::string key = name + '\0' + bpf_object__name(obj) + '\0';
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    key += bpf_program__name(prog);
    key += '\0';
    Append(&key, bpf_program__type(prog));
    Append(&key, bpf_program__expected_attach_type(prog));
    Append(&key, bpf_program__flags(prog));
    Append(&key, bpf_program__log_level(prog));
    Append(&key, bpf_program__autoload(prog));
    AppendBytes(&key, bpf_program__insns(prog),
                bpf_program__insn_cnt(prog) * sizeof(struct bpf_insn));
  }
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    key += bpf_map__name(map);
    key += '\0';
    Append(&key, bpf_map__type(map));
    Append(&key, bpf_map__key_size(map));
    Append(&key, bpf_map__value_size(map));
    Append(&key, bpf_map__max_entries(map));
    Append(&key, bpf_map__map_flags(map));
    Append(&key, bpf_map__map_extra(map));
    Append(&key, bpf_map__autocreate(map));
    size_t size = 0;
    const void* init = bpf_map__initial_value(map, &size);
    AppendBytes(&key, init, init ? size : 0);
  }
  return key;
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
  return MeasureOpened(name, open, std::move(*o));
}

// The openers of the public Measure* functions below.
Opener PropagationOpener(const LoaderOptions& capture_options, const std::string& guard) {
  const PropagationSupport support = ProbePropagationSupport();
  FionreadGuard g = FionreadGuard::kAuto;
  ParseFionreadGuard(guard, &g);
  LoaderOptions lo = capture_options;
  lo.kernel_context = true;
  return SkeletonOpener<propagation_bpf>([lo, g, route = support.route](propagation_bpf* s) {
    ConfigurePropagation(s, lo, g, route);
    // Both sockops routes where this kernel takes both: a DaemonSet
    // meets the other one on older nodes.
    if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_current_pid_tgid,
                                nullptr) == 1) {
      bpf_program__set_autoload(s->progs.ht_sockops, true);
    }
    bpf_program__set_autoload(s->progs.ht_sockops_task, true);
  });
}

Opener NodeRuntimeOpener() {
  return SkeletonOpener<runtime_node_bpf>([](runtime_node_bpf*) {});
}
Opener UprobesOpener() {
  return SkeletonOpener<uprobe_trace_bpf>([](uprobe_trace_bpf*) {});
}

// The objects a configuration loads, as `run` would load them.
std::vector<std::pair<std::string, Opener>> ConfigObjects(const Config& c) {
  std::vector<std::pair<std::string, Opener>> out;
  const LoaderOptions lo = CaptureOptionsFor(c);
  out.emplace_back(lo.kernel_context ? "capture+ctx" : "capture", CaptureOpener(lo));
  if (c.propagation) {
    out.emplace_back("propagation", PropagationOpener(lo, c.guard));
    out.emplace_back("runtime_node", NodeRuntimeOpener());  // --node-inject needs propagation
  }
  out.emplace_back("uprobe_trace", UprobesOpener());  // --probe goes with every configuration
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
  return LoadAndMeasure("propagation", PropagationOpener(capture_options, guard));
}

ObjectCosts MeasureNodeRuntime() { return LoadAndMeasure("runtime_node", NodeRuntimeOpener()); }

ObjectCosts MeasureNetProbe() {
  return LoadAndMeasure("net_probe", SkeletonOpener<net_probe_bpf>([](net_probe_bpf*) {}));
}

ObjectCosts MeasureUprobes() { return LoadAndMeasure("uprobe_trace", UprobesOpener()); }

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
      if (ReadAtExitSupported()) configs.push_back(Config{sel, false, "", payload, true});
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
  // Loads identical to an earlier one (LoadKey: same object, instructions,
  // constants and map sizes) are not verified again: the guard changes the
  // propagation object only in detect mode and the capture object not at all,
  // and the node runtime and function probe objects have no knob. Their
  // figures are printed for every configuration all the same, with the
  // configuration that measured them.
  struct Load {
    std::string name;
    Opener open;
    std::string config;  // the first configuration that loads it
    ObjectCosts costs;
  };
  std::vector<Load> loads;
  std::map<std::string, size_t> by_key;  // LoadKey -> index in loads
  std::vector<ObjectCosts> unopened;     // objects that did not even open
  // Per configuration, its objects in order: a load (index in loads) or, as
  // ~index, one that did not open (in unopened).
  std::vector<std::vector<long>> config_objs;
  for (const auto& c : configs) {
    config_objs.emplace_back();
    for (auto& [name, open] : ConfigObjects(c)) {
      std::optional<Opened> o = open();
      if (!o) {
        ObjectCosts failed_open;
        failed_open.object = name;
        failed_open.error = std::string("cannot open: ") + strerror(errno);
        config_objs.back().push_back(~static_cast<long>(unopened.size()));
        unopened.push_back(std::move(failed_open));
        continue;
      }
      auto [it, fresh] = by_key.emplace(LoadKey(name, o->obj), loads.size());
      if (fresh) loads.push_back(Load{name, open, c.Name(), {}});
      config_objs.back().push_back(static_cast<long>(it->second));
    }
  }
  // The distinct loads, on every CPU: the verifier runs in the loading
  // thread, and its count does not depend on what else loads.
  {
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < loads.size(); i = next++) {
        loads[i].costs = LoadAndMeasure(loads[i].name, loads[i].open);
      }
    };
    const unsigned n = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
    std::vector<std::thread> threads;
    for (unsigned t = 1; t < n; ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
  }
  int reused = 0;
  for (size_t ci = 0; ci < configs.size(); ++ci) {
    const auto& c = configs[ci];
    std::fprintf(out, "%s\n", c.Name().c_str());
    std::vector<std::pair<const ObjectCosts*, std::string>> objs;
    for (long i : config_objs[ci]) {
      if (i < 0) {
        objs.emplace_back(&unopened[~i], "");
        continue;
      }
      const Load& l = loads[i];
      objs.emplace_back(&l.costs, l.config == c.Name() ? "" : l.config);
    }
    for (const auto& [objp, reused_from] : objs) {
      const ObjectCosts& obj = *objp;
      PrintObjectCosts(obj, options.budget, out);
      if (!reused_from.empty()) {
        ++reused;
        std::fprintf(out, "    %-12s (identical load to \"%s\": its figures, not verified again)\n",
                     obj.object.c_str(), reused_from.c_str());
      }
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
  std::fprintf(out,
               "\nmost processed instructions per program over %zu configurations (%.0f s; %d "
               "object loads verified, %d identical ones reused):\n",
               configs.size(), secs, static_cast<int>(loads.size()), reused);
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
