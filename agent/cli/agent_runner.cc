#include "agent/cli/agent_runner.h"

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/capture_object.h"
#include "agent/kernel/net_probe_loader.h"
#include "agent/kernel/propagation_loader.h"
#include "agent/kernel/python_runtime.h"
#include "agent/cli/node_inject.h"
#include "agent/kernel/go_runtime.h"
#include "agent/kernel/tls_uprobes.h"
#include "agent/kernel/uprobe_loader.h"

#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <memory>
#include <thread>
#include <unordered_map>
#include <optional>

#include <spdlog/spdlog.h>

#include "agent/connections/conn_tracker.h"
#include "agent/kernel/event_reader.h"
#include "agent/hops/hop_joiner.h"
#include "agent/hops/hop_table.h"
#include "agent/hops/hops_api.h"
#include "agent/hops/network_attributes.h"
#include "agent/k8s/cgroup_identity.h"
#include "agent/k8s/cgroup_namespace.h"
#include "agent/k8s/pod_cache.h"
#include "agent/k8s/pod_process_scanner.h"
#include "agent/k8s/pod_watcher.h"
#include "agent/process/process_registry.h"
#include "agent/process/process_tree.h"
#include "agent/export/span_pipeline.h"
#include "agent/kernel/shed_controller.h"
#include "agent/trace/internal_spans.h"
#include "agent/trace/trace_stitcher.h"
#include "agent/cli/probe_specs.h"
#include "agent/cli/metrics_server.h"
#include "agent/trace/sampler.h"
#include "agent/cli/self_metrics.h"
#include "exporters/console/jsonl_exporter.h"
#include "exporters/console/tree_exporter.h"
#include "exporters/otlp/otlp_exporter_factory.h"

namespace hoptrace {
namespace {

uint64_t MonotonicNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

bool Matches(const ProcessInfo& info, const std::vector<std::string>& names) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) {
    return n == info.executable_name || n == info.comm || n == info.service_name;
  });
}

bool MatchesName(ProcessRegistry& processes, pid_t pid, const std::vector<std::string>& names) {
  return Matches(*processes.Get(pid), names);
}

std::vector<pid_t> ScanProcesses(ProcessRegistry& processes, const std::vector<std::string>& names) {
  std::vector<pid_t> found;
  DIR* dir = opendir("/proc");
  if (!dir) return found;
  const pid_t self = getpid();
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self) continue;
    if (MatchesName(processes, pid, names)) {
      found.push_back(static_cast<pid_t>(pid));
    } else {
      processes.Forget(pid);  // keep the cache to what we trace
    }
  }
  closedir(dir);
  return found;
}

// The OTLP exporter, kept apart from the other sinks so its counters can be
// published.
struct Sinks {
  std::vector<SpanOutput> all;
  const OtlpExporterBase* otlp = nullptr;  // the first of the OTLP exporters; counters shared
};

Sinks MakeSinks(const Settings& settings) {
  const RunSettings& run = settings.run();
  Sinks sinks;
  std::vector<std::string> outputs = run.outputs;
  if (outputs.empty()) {
    // OTEL_TRACES_EXPORTER picks the exporter when no --output says so.
    std::string exporter = settings.Get("OTEL_TRACES_EXPORTER").value_or("tree");
    outputs = {exporter == "console" ? "tree" : exporter};
  }
  for (const std::string& out : outputs) {
    if (out == "tree") {
      if (run.output_file.empty() || std::count(outputs.begin(), outputs.end(), "jsonl")) {
        sinks.all.push_back(SpanOutput::Shared(std::make_unique<TreeExporter>(stdout)));
      } else {
        sinks.all.push_back(SpanOutput::Shared(std::make_unique<TreeExporter>(
            std::filesystem::path(run.output_file), TreeExporter::Options{})));
      }
    } else if (out == "jsonl") {
      if (run.output_file.empty()) {
        sinks.all.push_back(SpanOutput::Shared(std::make_unique<JsonlExporter>(stdout)));
      } else {
        sinks.all.push_back(SpanOutput::Shared(
            std::make_unique<JsonlExporter>(std::filesystem::path(run.output_file))));
      }
    } else if (out == "otlp") {
      auto options = OtlpOptionsFromEnv(settings.AsGetenv());
      if (!options.ok()) throw StartupError(options.error());
      // One exporter per pipeline consumer, so that exports overlap; one set of counters.
      SpanOutput out;
      OtlpExporterHooks hooks;
      hooks.counters = std::make_shared<OtlpExporterCounters>();
      for (uint32_t i = 0; i < run.export_consumers; ++i) {
        out.sinks.push_back(MakeOtlpExporter(options.value(), hooks));
      }
      sinks.otlp = static_cast<const OtlpExporterBase*>(out.sinks.front().get());
      spdlog::info("exporting OTLP ({}) to {}, {} exports in flight at most",
                   OtlpProtocolName(options.value().protocol),
                   EffectiveOtlpEndpoint(options.value()), run.export_consumers);
      sinks.all.push_back(std::move(out));
    } else if (out != "none") {
      throw StartupError("unknown output \"" + out + "\": use tree, jsonl, otlp or none");
    }
  }
  return sinks;
}

ExporterCounters CountersOf(const OtlpExporterStats& o) {
  ExporterCounters e;
  e.name = "otlp";
  e.spans_exported = o.spans_exported;
  e.spans_failed = o.spans_failed_retries_exhausted + o.spans_failed_non_retryable;
  e.spans_timed_out = o.spans_failed_timeout;
  e.spans_rejected = o.spans_rejected;
  e.export_requests = o.export_requests;
  e.export_errors = o.export_errors;
  e.latency_seconds_sum = static_cast<double>(o.total_export_latency_ns) / 1e9;
  e.latency_count = o.exports;
  return e;
}

// A positive integer OTEL_* setting (milliseconds or counts), or the default.
size_t PositiveSetting(const Settings& settings, std::string_view name, size_t fallback) {
  auto v = settings.Get(name);
  if (!v) return fallback;
  char* end = nullptr;
  long n = strtol(v->c_str(), &end, 10);
  if (*end != '\0' || n <= 0) {
    throw StartupError(std::string(name) + " must be a positive integer, got \"" + *v + "\"");
  }
  return static_cast<size_t>(n);
}

SpanPipelineOptions PipelineOptions(const Settings& settings, const Sinks& sinks) {
  SpanPipelineOptions o;
  // Workers only help where an output has one sink each: OTLP.
  o.consumers = sinks.otlp != nullptr ? settings.run().export_consumers : 1;
  o.max_queue = PositiveSetting(settings, "OTEL_BSP_MAX_QUEUE_SIZE", o.max_queue);
  o.max_batch = std::min(o.max_queue,
                         PositiveSetting(settings, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", o.max_batch));
  o.schedule_delay = std::chrono::milliseconds(PositiveSetting(
      settings, "OTEL_BSP_SCHEDULE_DELAY", static_cast<size_t>(o.schedule_delay.count())));
  o.shutdown_timeout = std::chrono::milliseconds(PositiveSetting(
      settings, "OTEL_BSP_EXPORT_TIMEOUT", static_cast<size_t>(o.shutdown_timeout.count())));
  return o;
}

SamplerConfig SamplerFrom(const Settings& settings) {
  SamplerConfig config;
  auto name = settings.Get("OTEL_TRACES_SAMPLER");
  if (!name) return config;
  if (auto err = ParseSampler(*name, settings.Get("OTEL_TRACES_SAMPLER_ARG").value_or(""), &config)) {
    throw StartupError("OTEL_TRACES_SAMPLER: " + *err);
  }
  return config;
}

Attributes ResourceAttributesFrom(const Settings& settings) {
  Attributes out;
  auto value = settings.Get("OTEL_RESOURCE_ATTRIBUTES");
  if (!value) return out;
  std::vector<std::pair<std::string, std::string>> parsed;
  if (auto err = ParseResourceAttributes(*value, &parsed)) throw StartupError(*err);
  for (auto& [k, v] : parsed) {
    // Each traced process names itself; an agent-wide service.name would
    // merge every service into one.
    if (k == "service.name") {
      spdlog::warn("OTEL_RESOURCE_ATTRIBUTES: service.name is ignored; each process has its own");
      continue;
    }
    if (auto key = AttrKey::Intern(k)) out.push_back(Attribute{*key, v});
  }
  return out;
}

// Where cgroup v2 is mounted in this mount namespace ("" if nowhere).
std::string Cgroup2Mount() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string dev, dir, type;
    fields >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  return "";
}

// The "0::" path of /proc/<pid>/cgroup ("" if unreadable or cgroup v1 only).
std::string UnifiedCgroupOf(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cgroup");
  std::stringstream text;
  text << in.rdbuf();
  return ParseCgroupFile(text.str()).unified_path;
}

// pid is a live process (its own thread group leader), not a thread or gone.
bool IsProcess(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (f == nullptr) return false;
  char line[256];
  long tgid = -1;
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "Tgid: %ld", &tgid) == 1) break;
  }
  fclose(f);
  return tgid == pid;
}

// Routes decoded events: connection events to the tracker, process events
// to selection (exec) and clean-up (exit).
class Dispatcher : public EventHandler {
 public:
  Dispatcher(ConnTracker* tracker, ProcessRegistry* processes, const std::vector<std::string>& names)
      : tracker_(tracker), processes_(processes), names_(names) {}
  void set_loader(BpfLoader* loader) { loader_ = loader; }
  void set_stitcher(TraceStitcher* stitcher) { stitcher_ = stitcher; }
  void set_network(NetworkFacts* network) { network_ = network; }
  void set_propagation(PropagationLoader* propagation) { propagation_ = propagation; }
  void set_node(NodeInjector* node) { node_ = node; }
  void set_tls(tls::TlsAttacher* tls) { tls_ = tls; }
  void set_go(GoRuntime* go) { go_ = go; }
  void set_python(PythonRuntime* python) { python_ = python; }
  // Pod selection at exec: true if the process that has just exec'd is now
  // selected (its container is).
  void set_exec_hook(std::function<bool(pid_t)> hook) { exec_hook_ = std::move(hook); }
  void set_probes(uprobes::ProbeManager* probes, InternalSpans* internal) {
    probes_ = probes;
    internal_ = internal;
  }
  // A process now traced: attach the probes that name it or its files.
  void MaybeProbe(pid_t pid) {
    if (!probes_ || probes_->Knows(pid)) return;
    auto info = processes_->Get(pid);
    const uprobes::ProcessNames names = NamesOf(*info);
    if (probes_->Wants(pid, names) || probes_->NamesLibraries()) probes_->OnProcess(pid, names);
  }

  void OnConnOpen(const ConnEvent& ev) override { tracker_->OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_->OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_->OnConnClose(ev); }
  void OnProcExec(const ProcEvent& ev) override {
    const pid_t pid = static_cast<pid_t>(ev.hdr->pid);
    processes_->Forget(pid);  // exec changed who it is
    if (python_) python_->Forget(pid);  // the kernel side forgot it at exec already
    // Probes attached for the program it ran before (an exec the agent saw
    // late, when /proc already showed this one) are that program's.
    if (probes_ && probes_->OnExec(pid, ev.hdr->ts_exit_ns) && internal_) {
      internal_->OnProcessExit(ev.hdr->pid);
    }
    if (node_) node_->OnGone(pid);
    // Every exec on the node comes here while pods are selected: the
    // name's /proc reads only when names are asked for.
    const bool by_name = loader_ && !names_.empty() && MatchesName(*processes_, pid, names_);
    const bool by_pod = loader_ && !by_name && exec_hook_ && exec_hook_(pid);
    if (by_name || by_pod) {
      loader_->SelectPid(pid);
      if (tls_) tls_->AddProcess(pid, ev.hdr->ts_exit_ns, true);
      spdlog::info("tracing pid {} ({}){}", pid, processes_->Get(pid)->service_name,
                   by_pod ? ": exec in a selected container" : "");
      MaybeProbe(pid);
      if (go_) go_->Attach(pid);
    } else {
      processes_->Forget(pid);
    }
  }
  void OnProcIdentity(const ProcIdentityEvent& ev) override {
    auto info = processes_->Learn(KernelIdentityOf(ev));
    const bool exec = ev.identity->flags & HT_IDENTITY_F_EXEC;
    // A selected process that exec'd runs a new program: the probes of the
    // old one go; the new one is probed if a spec names it (a traced
    // launcher's child that became `python3 app.py`).
    if (probes_ && exec && probes_->OnExec(static_cast<pid_t>(info->pid), ev.hdr->ts_exit_ns) &&
        internal_) {
      internal_->OnProcessExit(ev.hdr->pid);
    }
    if (ev.identity->flags & HT_IDENTITY_F_NAME_MATCH) {
      // The kernel matched 15 bytes of comm; a longer --exe name must match whole.
      if (!Matches(*info, names_)) {
        if (loader_) loader_->DeselectPid(info->pid);
        processes_->Forget(info->pid);
        return;
      }
      spdlog::info("tracing pid {} ({})", info->pid, info->service_name);
      MaybeProbe(info->pid);
    } else if (exec) {
      MaybeProbe(info->pid);
    }
    if (go_ && (ev.identity->flags & HT_IDENTITY_F_EXEC)) {
      // A new program: the old one's probes go, the new one's come.
      go_->Detach(static_cast<pid_t>(info->pid));
      go_->Attach(static_cast<pid_t>(info->pid));
    } else if (go_ && (ev.identity->flags & HT_IDENTITY_F_NAME_MATCH)) {
      go_->Attach(static_cast<pid_t>(info->pid));
    }
    if (tls_) TlsLibrariesOf(ev);
    if (python_ && (ev.identity->flags & HT_IDENTITY_F_FORK)) {
      // A forked worker (uvicorn --workers, gunicorn) of a followed Python;
      // a new thread is no new process.
      const auto pid = static_cast<pid_t>(ev.hdr->pid);
      std::string model;
      if (python_->Follows(static_cast<pid_t>(ev.identity->ppid)) && IsProcess(pid)) {
        python_->Follow(pid, &model);
      }
    }
    if (python_ && (ev.identity->flags & HT_IDENTITY_F_EXEC)) {
      // A followed process exec'd: its old interpreter is gone (the kernel
      // side dropped it at exec); a new one is followed if it is Python.
      const auto pid = static_cast<pid_t>(ev.hdr->pid);
      python_->Forget(pid);
      std::string model;
      python_->Follow(pid, &model);
    }
  }
  void OnProcExit(const ProcEvent& ev) override {
    if (node_) node_->OnGone(static_cast<pid_t>(ev.hdr->pid));
    if (tls_) tls_->RemoveProcess(static_cast<pid_t>(ev.hdr->pid));
    if (go_) go_->Detach(static_cast<pid_t>(ev.hdr->pid));
    if (python_) python_->Forget(static_cast<pid_t>(ev.hdr->pid));
    if (probes_) probes_->OnExit(static_cast<pid_t>(ev.hdr->pid));
    if (internal_) internal_->OnProcessExit(ev.hdr->pid);
    tracker_->OnProcessExit(ev.hdr->pid, ev.hdr->ts_exit_ns);
    processes_->Forget(static_cast<pid_t>(ev.hdr->pid));
  }
  void OnTraceContext(const CtxEvent& ev) override {
    if (stitcher_) {
      stitcher_->OnKernelContext(ConnId{ev.hdr->pid, ev.hdr->fd, ev.hdr->conn_gen},
                                 KernelContextFrom(ev));
    }
  }
  void OnTcpEvent(const TcpEvent& ev) override {
    if (network_) network_->OnTcpEvent(ev);
  }
  void OnFionread(const FionreadEvent& ev) override {
    if (propagation_) propagation_->OnFionread(ev.hdr->pid, ev.hdr->fd, ev.flags);
  }
  void OnFuncCall(const FuncCallEvent& ev) override {
    if (!internal_) return;
    if (ev.python) {
      internal_->OnCall(*ev.call, ev.abandoned,
                        CodeLocation{std::string(ev.python->path, ev.python->path_len),
                                     static_cast<int>(ev.python->line)});
    } else {
      internal_->OnCall(*ev.call, ev.abandoned);
    }
  }

 private:
  // A selected process became who it is, or was first seen: where its TLS
  // library files are (a fork maps what its parent maps).
  void TlsLibrariesOf(const ProcIdentityEvent& ev) {
    const auto pid = static_cast<pid_t>(ev.hdr->pid);
    const uint64_t now = ev.hdr->ts_exit_ns;
    if (ev.identity->flags & HT_IDENTITY_F_FORK) {
      // A new process (the kernel sends none for new threads).
      tls_->AddChild(static_cast<pid_t>(ev.identity->ppid), pid, now);
    } else {
      tls_->AddProcess(pid, now, (ev.identity->flags & HT_IDENTITY_F_EXEC) != 0);
    }
  }

  ConnTracker* tracker_;
  ProcessRegistry* processes_;
  const std::vector<std::string>& names_;
  BpfLoader* loader_ = nullptr;
  TraceStitcher* stitcher_ = nullptr;
  NetworkFacts* network_ = nullptr;
  PropagationLoader* propagation_ = nullptr;
  NodeInjector* node_ = nullptr;
  tls::TlsAttacher* tls_ = nullptr;
  GoRuntime* go_ = nullptr;
  std::function<bool(pid_t)> exec_hook_;
  PythonRuntime* python_ = nullptr;
  uprobes::ProbeManager* probes_ = nullptr;
  InternalSpans* internal_ = nullptr;
};

// Between the connection tracker and the stitcher: a client exchange whose
// response the process has read in full is when its socket may go back into
// the propagation sockhash (read guard, PropagationLoader::Rearm). It also
// counts the client requests not answered yet: while there are none, no
// socket waits for a Rearm, and the run loop may let events gather.
class RearmTap : public ExchangeHandler {
 public:
  explicit RearmTap(ExchangeHandler* next) : next_(next) {}
  void set_propagation(PropagationLoader* p) { propagation_ = p; }
  // Client requests seen whose exchange has not ended (nor their connection).
  bool AwaitsResponses() const { return !in_flight_.empty(); }

  void OnConnectionOpen(const ConnInfo& conn, uint32_t tid) override {
    next_->OnConnectionOpen(conn, tid);
  }
  void OnRequestStart(const ConnInfo& conn, Role role, const RequestStart& request) override {
    if (propagation_ != nullptr && role == Role::kClient) ++in_flight_[conn.id];
    next_->OnRequestStart(conn, role, request);
  }
  void OnExchange(const ConnInfo& conn, Role role, Exchange exchange,
                  const std::optional<Closing>& closing) override {
    const bool rearm = propagation_ != nullptr && role == Role::kClient && !closing &&
                       exchange.outcome == Exchange::Outcome::kComplete &&
                       conn.followed_from_open && conn.tuple_known;
    if (role == Role::kClient) {
      // An exchange without a start seen (an orphan response) ends nothing.
      if (auto it = in_flight_.find(conn.id); it != in_flight_.end() && --it->second == 0) {
        in_flight_.erase(it);
      }
    }
    next_->OnExchange(conn, role, std::move(exchange), closing);
    if (rearm) {
      propagation_->Rearm(conn.id.pid, conn.id.fd, conn.local_port, conn.bytes_written,
                          conn.bytes_read);
    }
  }
  void OnConnectionGone(const ConnInfo& conn) override {
    in_flight_.erase(conn.id);
    next_->OnConnectionGone(conn);
  }

 private:
  ExchangeHandler* next_;
  PropagationLoader* propagation_ = nullptr;
  std::unordered_map<ConnId, uint32_t, ConnIdHash> in_flight_;
};

}  // namespace

int RunAgent(const Settings& settings, const std::atomic<bool>* stop) {
  const RunSettings& run = settings.run();
  // A reader of our stdout going away must not kill the agent.
  signal(SIGPIPE, SIG_IGN);

  ProcessRegistry processes(HostName());
  processes.SetExtraAttributes(ResourceAttributesFrom(settings));
  // Kubernetes: the pods of this node, watched on a thread of their own.
  std::string k8s_error, k8s_warning;
  const auto k8s = settings.Kubernetes(&k8s_error, &k8s_warning);
  if (!k8s_error.empty()) throw StartupError(k8s_error);
  if (!k8s_warning.empty()) spdlog::warn("{}", k8s_warning);
  if (run.discovery.enabled() && !k8s) {
    throw StartupError("discovery selects pods, but there is no Kubernetes API: set "
                       "kubernetes.api_server or run in a pod with NODE_NAME");
  }
  PodCache pods(k8s ? run.kubernetes.max_pods : 1);
  std::unique_ptr<PodWatcher> pod_watcher;
  if (k8s) {
    PodWatcherOptions wo;
    wo.node_name = k8s->node_name;
    pod_watcher = std::make_unique<PodWatcher>(KubeClient(k8s->endpoint), &pods, wo);
    pod_watcher->Start();
    processes.SetPods(&pods);
    spdlog::info("k8s: watching the pods of node {} at {}", k8s->node_name, k8s->endpoint.server);
  }
  Sinks sinks;
  try {
    sinks = MakeSinks(settings);
  } catch (const StartupError&) {
    throw;
  } catch (const std::exception& e) {
    throw StartupError(e.what());
  }
  const OtlpExporterBase* otlp = sinks.otlp;
  SpanPipelineOptions pipeline_options = PipelineOptions(settings, sinks);
  // Exported spans' attribute vectors come back to the span builder.
  AttributePool attribute_pool(pipeline_options.max_queue, kSpanAttributeReserve);
  pipeline_options.attribute_pool = &attribute_pool;
  SpanPipeline pipeline(std::move(sinks.all), pipeline_options);

  TraceStitcherOptions stitch_options;
  stitch_options.span.redact_query = run.redact_query;
  stitch_options.span.monotonic_to_unix_ns = MonotonicToUnixOffsetNs();
  stitch_options.span.attribute_pool = &attribute_pool;
  stitch_options.sampler = SamplerFrom(settings);
  // Network half of every span: TCP facts per connection (network probes),
  // client/server pairing and the hop table behind `hoptrace hops`.
  NetworkFacts net_facts;
  if (run.net_probes) stitch_options.span.network = &net_facts;
  HopTable hop_table;  // only kept when someone can ask (the metrics endpoint)
  HopJoiner joiner(stitch_options.span.network, run.metrics_address.empty() ? nullptr : &hop_table,
                   [&](Span&& span) { pipeline.Submit(std::move(span)); },
                   stitch_options.span.monotonic_to_unix_ns);
  TraceStitcher stitcher(&processes,
                         [&](Span&& span) { joiner.OnSpan(std::move(span), MonotonicNowNs()); },
                         stitch_options);
  RearmTap rearm_tap(&stitcher);
  ConnTracker tracker(&rearm_tap);
  // --probe PROGRAM:FUNCTION: the programs it names are traced as --exe ones.
  std::vector<uprobes::ProbeSpec> probe_specs;
  if (auto err = ParseProbeSpecs(run.probes, &probe_specs)) throw StartupError(*err);
  std::vector<std::string> exe_names = run.exe_names;
  for (const std::string& n : ExeNamesOf(probe_specs)) {
    if (std::find(exe_names.begin(), exe_names.end(), n) == exe_names.end()) exe_names.push_back(n);
  }
  Dispatcher dispatcher(&tracker, &processes, exe_names);
  EventReader reader(&dispatcher);

  LoaderOptions lo;
  lo.trace_all = run.all;
  lo.pids = run.pids;
  lo.ports = run.ports;
  lo.max_payload = run.payload_bytes;
  lo.ringbuf_bytes = run.ringbuf_mb << 20;
  lo.tls = run.tls;
  if (!exe_names.empty()) {
    lo.exec_events = true;
    lo.exec_names = exe_names;
    for (pid_t pid : ScanProcesses(processes, exe_names)) lo.pids.push_back(pid);
  }
  // Pod selection reacts to execs (a runtime starting a container's process);
  // the /proc scan below is the slow resync.
  if (run.discovery.enabled()) lo.exec_events = true;
  std::unique_ptr<PodProcessScanner> pod_scanner;
  if (run.discovery.enabled()) {
    // The first scan selects the pods' processes that run already: wait a
    // little for the first list, without making the agent's start depend
    // on the API server (later scans catch up).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!pods.synced() && std::chrono::steady_clock::now() < deadline && !stop->load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pod_scanner = std::make_unique<PodProcessScanner>(&pods, run.discovery, getpid());
    for (pid_t pid : pod_scanner->Scan()) lo.pids.push_back(pid);
  }
  for (pid_t pid : run.node_inject) {
    if (std::find(lo.pids.begin(), lo.pids.end(), pid) == lo.pids.end()) lo.pids.push_back(pid);
  }
  // Workers forked before we started are selected with their parent.
  if (!lo.pids.empty()) lo.pids = WithDescendants(lo.pids);
  if (!lo.trace_all && lo.pids.empty() && lo.ports.empty() && exe_names.empty() &&
      !pod_scanner) {
    throw StartupError("nothing selected: pass --pid, --exe, --port, --all or a discovery section");
  }
  // Propagation changes bytes on the wire: only with a cgroup named, never
  // with --no-propagation. It is optional: where this kernel cannot do it,
  // or its programs do not load, the agent says so in one line and traces
  // without it.
  // Scope "pods": the cgroups of the containers the discovery section selects,
  // each while it has a selected process; the agent attaches and detaches them.
  if (run.propagation_scope != "cgroup" && run.propagation_scope != "pods") {
    throw StartupError("propagation.scope must be cgroup or pods, got \"" +
                       run.propagation_scope + "\"");
  }
  const bool pods_scope = run.propagation && run.propagation_scope == "pods";
  if (pods_scope && !run.discovery.enabled()) {
    throw StartupError("propagation.scope pods follows the discovery section's selection: add "
                       "one, or use propagation.cgroup");
  }
  if (pods_scope && !run.propagation_cgroup.empty()) {
    throw StartupError("propagation.scope pods attaches to the selected containers' cgroups: "
                       "propagation.cgroup names one for scope cgroup; give one or the other");
  }
  std::string cgroup_root;
  if (pods_scope) {
    cgroup_root = run.propagation_cgroup_root.empty() ? Cgroup2Mount()
                                                      : run.propagation_cgroup_root;
    if (auto err = CheckPropagationCgroup(cgroup_root); !err.empty()) {
      throw StartupError("propagation.cgroup_root: " + err + "; or run with --no-propagation");
    }
    while (cgroup_root.size() > 1 && cgroup_root.back() == '/') cgroup_root.pop_back();
  }
  // In a cgroup namespace of its own (a container's, on cgroup v2), the agent
  // reads other processes' cgroup paths relative to its namespace's root:
  // where that root is in the host's hierarchy turns them into host paths.
  std::optional<std::string> cgroup_ns_root;
  bool cgroup_ns_own = false;
  if (pods_scope && UnifiedCgroupOf("1").starts_with("/..")) {
    cgroup_ns_own = true;
    cgroup_ns_root = FindNamespaceRoot(cgroup_root, getpid(), UnifiedCgroupOf("self"));
    if (cgroup_ns_root) {
      spdlog::info("propagation: the agent's cgroup namespace is {} in {}", *cgroup_ns_root,
                   cgroup_root);
    } else {
      spdlog::warn("propagation: the agent runs in a cgroup namespace of its own and its cgroup "
                   "is not under {}: the selected containers' cgroups cannot be found there",
                   cgroup_root);
    }
  }
  bool propagate = run.propagation && (pods_scope || !run.propagation_cgroup.empty());
  PropagationOptions po;
  if (propagate) {
    po.cgroup_path = run.propagation_cgroup;
    if (!ParseFionreadGuard(run.fionread_guard, &po.fionread_guard)) {
      throw StartupError("fionread_guard must be auto, on, off or detect, got \"" +
                         run.fionread_guard + "\"");
    }
    if (!pods_scope) {
      if (auto err = CheckPropagationCgroup(po.cgroup_path); !err.empty()) {
        throw StartupError(err + "; or run with --no-propagation");
      }
    }
    const PropagationSupport support = ProbePropagationSupport();
    if (!support.ok) {
      spdlog::warn("propagation is off: {}; tracing continues without traceparent injection",
                   support.why);
      propagate = false;
    }
    po.sockops_route = support.route;
  } else if (const KernelContextSupport ctx = ProbeKernelContext(); !ctx.ok) {
    // Nothing asked for is lost, but say what this kernel would not do.
    spdlog::info("kernel-side trace contexts and traceparent injection are off: {}", ctx.why);
  }
  if (propagate) {
    lo.kernel_context = true;
    lo.sampler_kind = static_cast<uint32_t>(stitch_options.sampler.kind);
    lo.sample_threshold = Sampler(stitch_options.sampler).threshold();
    // Context across TLS: a TCP option between hoptrace agents.
    if (const std::string why = ProbeTcpOptionSupport(); why.empty()) {
      lo.tcp_option = true;
    } else {
      spdlog::warn("propagation: {}; HTTPS requests carry no context to other hosts", why);
    }
  }
  auto on_event = [&](std::span<const uint8_t> rec) { reader.Dispatch(rec); };
  std::unique_ptr<BpfLoader> loader;
  try {
    std::optional<BpfLoader::QuietLibbpf> quiet;
    if (propagate) quiet.emplace();
    try {
      loader = BpfLoader::Start(lo, on_event);
    } catch (const StartupError& e) {
      if (!lo.tcp_option) throw;
      // The TCP option's paths are the newest: without them before giving
      // up on propagation altogether.
      spdlog::warn("propagation: the capture does not load with context across TLS ({}); "
                   "HTTPS requests carry no context to other hosts",
                   e.what());
      lo.tcp_option = false;
      loader = BpfLoader::Start(lo, on_event);
    }
  } catch (const StartupError& e) {
    if (!propagate) throw;
    spdlog::warn("propagation is off: the capture with kernel-side contexts does not load here "
                 "({}); tracing continues without traceparent injection",
                 e.what());
    propagate = false;
    lo.kernel_context = false;
    loader = BpfLoader::Start(lo, on_event);
  }
  dispatcher.set_loader(loader.get());
  std::unique_ptr<PropagationLoader> propagation;
  if (propagate) {
    try {
      BpfLoader::QuietLibbpf quiet;
      try {
        propagation = PropagationLoader::Start(po, lo, *loader);
      } catch (const StartupError& e) {
        if (!lo.tcp_option) throw;
        // The capture keeps staging contexts nobody writes: bounded (LRU),
        // and its TLS requests' ids stay the kernel's, as the agent reports.
        spdlog::warn("propagation: its programs do not load with context across TLS ({}); "
                     "HTTPS requests carry no context to other hosts",
                     e.what());
        LoaderOptions without = lo;
        without.tcp_option = false;
        propagation = PropagationLoader::Start(po, without, *loader);
      }
    } catch (const StartupError& e) {
      spdlog::warn("propagation is off: {}", e.what());
      propagate = false;
    }
  }
  // Spans take the kernel's ids only while the kernel decides contexts.
  if (lo.kernel_context) dispatcher.set_stitcher(&stitcher);
  // Python's own contexts (asyncio tasks, copied contexts) say which request
  // an outgoing one serves, for the processes named by --pid that run a
  // known CPython; the others keep the thread model.
  std::unique_ptr<PythonRuntime> python;
  if (lo.kernel_context) {
    python = std::make_unique<PythonRuntime>(*loader);
    for (pid_t pid : lo.pids) {
      std::string model;
      if (!python->Follow(pid, &model) && !PythonModelOf(pid).empty()) {
        spdlog::info("python: pid {}: {}", pid, model);
      }
    }
    dispatcher.set_python(python.get());
  }
  if (propagation) {
    if (propagation->read_guard()) rearm_tap.set_propagation(propagation.get());
    if (propagation->detect_mode()) dispatcher.set_propagation(propagation.get());
  }
  // Scope "pods": sockops on exactly the cgroups of the containers with a
  // selected process now. Called after every scan and every exec selected.
  std::set<std::string> cgroups_refused;  // said once each
  bool other_namespace_warned = false;
  auto sync_pod_cgroups = [&] {
    if (!propagation || !pods_scope || !pod_scanner) return;
    std::set<std::string> want;
    for (const std::string& rel : pod_scanner->SelectedCgroups()) {
      std::string host = rel;
      if (cgroup_ns_own) {
        if (!cgroup_ns_root) continue;  // said at start
        host = NormalizeCgroupPath(*cgroup_ns_root + "/" + rel);
      } else if (rel.find("/..") != std::string::npos) {
        // Outside the hierarchy as we see it: not a directory we can name.
        if (!other_namespace_warned) {
          other_namespace_warned = true;
          spdlog::warn("propagation: cgroup path {} of a selected process is outside the "
                       "agent's cgroup namespace; its container is not attached",
                       rel);
        }
        continue;
      }
      want.insert(cgroup_root + (host == "/" ? "" : host));
    }
    for (const std::string& path : propagation->AttachedCgroups()) {
      if (!want.contains(path)) {
        propagation->DetachCgroup(path);
        spdlog::info("propagation: detached from {} (no selected process left in it)", path);
      }
    }
    const std::set<std::string> attached = [&] {
      auto v = propagation->AttachedCgroups();
      return std::set<std::string>(v.begin(), v.end());
    }();
    for (const std::string& path : want) {
      if (attached.contains(path)) continue;
      if (auto err = propagation->AttachCgroup(path); !err.empty()) {
        if (cgroups_refused.insert(path).second) spdlog::warn("propagation: {}", err);
      } else {
        spdlog::info("propagation: attached to {}", path);
      }
    }
  };
  sync_pod_cgroups();
  if (pod_scanner) {
    dispatcher.set_exec_hook([&](pid_t pid) {
      if (!pod_scanner->Consider(pid)) return false;
      sync_pod_cgroups();
      return true;
    });
  }
  // Node.js runtime context: only for the processes named, only with the
  // kernel contexts propagation runs on.
  std::unique_ptr<NodeInjector> node_injector;
  if (!run.node_inject.empty()) {
    if (!propagation) {
      spdlog::warn("node runtime: --node-inject needs propagation (--propagation-cgroup, "
                   "kernel contexts); Node processes keep the thread model");
    } else {
      node_injector = std::make_unique<NodeInjector>(*loader, run.node_inject);
      dispatcher.set_node(node_injector.get());
    }
  }
  std::unique_ptr<NetProbeLoader> net_probe;
  if (run.net_probes) {
    try {
      net_probe = NetProbeLoader::Start(NetProbeOptions{}, *loader);
      dispatcher.set_network(&net_facts);
    } catch (const StartupError& e) {
      spdlog::warn("{}; spans will carry no RTT, TTL or retransmission facts", e.what());
    }
  }
  for (pid_t pid : lo.pids) processes.Get(pid);  // cache identity while alive
  // TLS plaintext: uprobes on the TLS library files the selected processes
  // map, attached and detached as they come and go.
  std::unique_ptr<TlsUprobes> tls_uprobes;
  std::unique_ptr<tls::TlsAttacher> tls_attacher;
  if (lo.tls) {
    tls_uprobes = std::make_unique<TlsUprobes>(*loader);
    tls_attacher = std::make_unique<tls::TlsAttacher>(tls_uprobes.get());
    for (pid_t pid : lo.pids) tls_attacher->AddProcess(pid, MonotonicNowNs());
    dispatcher.set_tls(tls_attacher.get());
  }

  // Go: which request a goroutine serves (issue 11), for the kernel's
  // contexts; other processes keep the thread model.
  std::unique_ptr<GoRuntime> go_runtime;
  if (lo.kernel_context) {
    go_runtime = std::make_unique<GoRuntime>(*loader);
    for (pid_t pid : lo.pids) go_runtime->Attach(pid);
    dispatcher.set_go(go_runtime.get());
  }

  // Function probes (--probe): INTERNAL spans of the calls, nested inside
  // the SERVER span the thread serves and around the requests it makes.
  std::unique_ptr<UprobeLoader> uprobe_loader;
  std::unique_ptr<uprobes::ProbeManager> probes;
  std::unique_ptr<InternalSpans> internal;
  if (!probe_specs.empty()) {
    UprobeLoaderOptions uo;
    uo.min_duration_ns = uint64_t{run.probe_min_duration_us} * 1000;
    try {
      uprobe_loader = UprobeLoader::Start(uo, *loader);
    } catch (const StartupError& e) {
      spdlog::warn("{}; no INTERNAL spans", e.what());
    }
  }
  if (uprobe_loader) {
    probes = std::make_unique<uprobes::ProbeManager>(probe_specs, uprobe_loader.get());
    InternalSpanOptions io;
    io.monotonic_to_unix_ns = stitch_options.span.monotonic_to_unix_ns;
    io.min_duration_ns = uint64_t{run.probe_min_duration_us} * 1000;
    io.sampler = stitch_options.sampler;
    UprobeLoader* ul = uprobe_loader.get();
    uprobes::ProbeManager* pm = probes.get();
    internal = std::make_unique<InternalSpans>(
        &processes, [pm](uint32_t id) { return pm->Function(id); },
        [&stitcher, &go_runtime](uint32_t pid, uint32_t tid, uint64_t context_id,
                                 uint64_t entry_ns) -> std::optional<SpanContextRecord> {
          // A goroutine's call: the request the kernel bound the goroutine
          // to. Goroutines share threads, so the thread's newest request can
          // be another goroutine's.
          if (go_runtime && context_id != tid) {
            if (auto id = go_runtime->RequestOf(static_cast<pid_t>(pid), context_id)) {
              SpanId span;
              memcpy(span.bytes.data(), &*id, 8);
              if (auto s = stitcher.OpenServerSpan(pid, span, entry_ns)) return s;
            }
          }
          return stitcher.ServingSpan(pid, tid);
        },
        [ul](uint32_t pid, uint64_t id) { return ul->ReadStack(static_cast<pid_t>(pid), id); },
        [&](Span span) { joiner.OnSpan(std::move(span), MonotonicNowNs()); }, io);
    stitcher.set_open_spans(internal.get());
    dispatcher.set_probes(probes.get(), internal.get());
    for (pid_t pid : lo.pids) dispatcher.MaybeProbe(pid);
    for (const std::string& spec : probes->Unmatched()) {
      spdlog::warn("probe {} matches no function in any traced process (yet): check the name "
                   "with `hoptrace check --pid PID --probe {}`",
                   spec, spec);
    }
  }

  SelfMetrics metrics;
  std::atomic<uint64_t> last_loop_ns{MonotonicNowNs()};  // for /healthz
  ShedController shed;
  // Test hook: a fixed keep ratio (1/1024) instead of the controller's, so
  // that tests can check what the kernel sheds without overloading the box.
  std::optional<uint32_t> fixed_keep;
  if (const char* k = std::getenv("HOPTRACE_SHED_KEEP_PER_1024")) {
    fixed_keep = static_cast<uint32_t>(std::strtoul(k, nullptr, 10));
    spdlog::warn("HOPTRACE_SHED_KEEP_PER_1024={}: following that share of new connections",
                 *fixed_keep);
    loader->SetKeepRatio(*fixed_keep);
  }
  auto publish = [&] {
    SelfMetricsSnapshot m;
    KernelCounters k = loader->ReadCounters();
    auto p = pipeline.stats();
    const ParserStats& h = tracker.parser_stats();
    m.kernel_events = reader.stats().events;
    m.kernel_events_lost = k.ringbuf_drops;
    // The network probes write into the same ring buffer.
    if (net_probe) m.kernel_events_lost += net_probe->ReadCounters().ringbuf_drops;
    if (uprobe_loader) m.kernel_events_lost += uprobe_loader->ReadCounters().ringbuf_drops;
    m.kernel_payload_truncated = k.truncated;
    m.shed = k.shed;
    m.shed_keep_per_1024 = fixed_keep ? *fixed_keep : shed.keep();
    m.events_malformed = reader.stats().malformed;
    m.connections_tracked = tracker.tracked_connections();
    m.requests_pending = tracker.pending_requests();
    m.http_orphan_responses = h.orphan_responses;
    m.http_resyncs = h.resyncs;
    m.invalid_traceparent = stitcher.stats().invalid_traceparent;
    m.spans_produced = p.submitted;
    m.spans_sampled_out = stitcher.stats().sampled_out;
    m.spans_dropped_queue_full = p.dropped_queue_full;
    m.spans_dropped_shutdown = p.dropped_shutdown;
    m.export_queued = p.queued;
    m.export_queue_capacity = p.max_queue;
    if (otlp != nullptr) m.exporters.push_back(CountersOf(otlp->stats()));
    if (pod_watcher) {
      const PodWatcherStats& w = pod_watcher->stats();
      m.k8s = true;
      m.k8s_pods = pods.size();
      m.k8s_pods_dropped = pods.dropped();
      m.k8s_lists = w.lists;
      m.k8s_watches = w.watches;
      m.k8s_relists_gone = w.relists_gone;
      m.k8s_api_errors = w.errors;
      m.k8s_watch_events = w.events;
      m.k8s_pods_selected = pod_scanner ? pod_scanner->selected() : 0;
    }
    metrics.Publish(std::move(m));
  };
  publish();
  std::unique_ptr<MetricsServer> metrics_server;
  if (!run.metrics_address.empty()) {
    try {
      metrics_server = std::make_unique<MetricsServer>(run.metrics_address,
                                                       [&metrics] { return metrics.Render(); });
    } catch (const std::exception& e) {
      throw StartupError(e.what());
    }
    RegisterHopRoutes(metrics_server.get(), &hop_table, MonotonicNowNs);
    // Probes for a kubelet: alive while the event loop turns; ready once the
    // programs are loaded and, in Kubernetes, the first pod list is in.
    metrics_server->Route("/healthz", [&last_loop_ns](std::string_view) {
      const uint64_t age = MonotonicNowNs() - last_loop_ns.load(std::memory_order_relaxed);
      MetricsServer::Reply r;
      r.content_type = "text/plain";
      if (age > 10'000'000'000ULL) {
        r.status = 503;
        r.body = "event loop stalled\n";
      } else {
        r.body = "ok\n";
      }
      return r;
    });
    metrics_server->Route("/readyz", [&pods, k8s_on = k8s.has_value()](std::string_view) {
      MetricsServer::Reply r;
      r.content_type = "text/plain";
      if (k8s_on && !pods.synced()) {
        r.status = 503;
        r.body = "waiting for the first list of pods\n";
      } else {
        r.body = "ok\n";
      }
      return r;
    });
    spdlog::info("metrics at http://{}/metrics, hops at /api/hops?trace=ID, /api/edges",
                 run.metrics_address);
  }

  spdlog::info("hoptrace ready: tracing {}{} pid(s), {} port(s){}; Ctrl-C to stop",
               lo.trace_all ? "all processes, " : "", lo.pids.size(), lo.ports.size(),
               run.exe_names.empty() ? "" : ", and new processes matching --exe");

  auto log_stats = [&](const char* when) {
    SelfMetricsSnapshot m = metrics.Get();
    uint64_t exported = m.exporters.empty() ? pipeline.stats().exported : m.exporters[0].spans_exported;
    spdlog::info(
        "stats ({}): events={} malformed={} kernel_lost={} truncated={} conns={} pending={} "
        "spans={} spans_exported={} spans_dropped={} sampled_out={} orphan_responses={} "
        "resyncs={} invalid_traceparent={} shed={} linked_locally={} linked_late={}",
        when, m.kernel_events, m.events_malformed, m.kernel_events_lost,
        m.kernel_payload_truncated, m.connections_tracked, m.requests_pending, m.spans_produced,
        exported, m.spans_dropped_queue_full + m.spans_dropped_shutdown, m.spans_sampled_out,
        m.http_orphan_responses, m.http_resyncs, m.invalid_traceparent, m.shed,
        stitcher.stats().server_spans_linked_locally, stitcher.stats().server_spans_linked_late);
  };

  constexpr int kSmallBatch = 256;                     // events: below it, wait for more
  constexpr auto kBatchWait = std::chrono::microseconds(1000);
  // ... except under the read guard while a client request waits for its
  // response: a pooled connection's next request is injected only once the
  // agent has seen the previous response (Rearm), and a client that writes
  // it within the wait would go without. With none waiting (a service that
  // calls out to no one, or between calls) every socket is armed.
  const bool guarded = propagation && propagation->read_guard();
  const auto started = std::chrono::steady_clock::now();
  auto last_stats = started, last_sweep = started, last_tick = started, last_shed = started;
  uint64_t last_lost = 0;
  while (!stop->load()) {
    last_loop_ns.store(MonotonicNowNs(), std::memory_order_relaxed);
    int n = loader->Poll(100);
    if (n < 0 && n != -EINTR) {
      spdlog::error("ring buffer poll failed: {}", strerror(-n));
      break;
    }
    if (n > 0 && n < kSmallBatch && !(guarded && rearm_tap.AwaitsResponses())) {
      // A request makes a few events. At a steady rate a consumer that
      // drains the ring and waits again is woken for nearly every request
      // (the kernel wakes it whenever it had caught up): a wake-up, an
      // epoll_wait and two context switches per request, and an irq_work
      // in the traced process's syscall. After a small batch, let the next
      // events gather instead: spans leave at most kBatchWait later, and
      // while the agent is behind the kernel wakes nobody.
      std::this_thread::sleep_for(kBatchWait);
    }
    const auto now = std::chrono::steady_clock::now();
    // Housekeeping (expiries, the propagation sweep, counters read from
    // the kernel: a dozen bpf(2) calls) at most every 20 ms: under load the
    // poll returns after every batch of events.
    if (now - last_tick < std::chrono::milliseconds(20)) continue;
    last_tick = now;
    const uint64_t mono = MonotonicNowNs();
    tracker.Tick(mono);
    stitcher.Tick(mono);
    if (tls_attacher) tls_attacher->Tick(mono);
    if (propagation) propagation->Sweep();
    if (internal) internal->Tick(mono);
    if (probes) probes->Rescan(/*young_only=*/true);  // new processes still loading libraries
    joiner.Tick(mono);
    net_facts.Tick(mono);
    publish();
    if (run.shed && !fixed_keep && now - last_shed >= std::chrono::milliseconds(200)) {
      last_shed = now;
      const uint64_t lost = metrics.Get().kernel_events_lost;
      const uint32_t before = shed.keep();
      const uint32_t keep = shed.Update(lost);
      if (keep != before) {
        if (!loader->SetKeepRatio(keep)) spdlog::debug("could not set the kernel's keep ratio");
        if (keep == ShedController::kKeepAll) {
          spdlog::warn("load is back to normal: following every request again");
        } else if (before == ShedController::kKeepAll) {
          spdlog::warn(
              "cannot keep up (the kernel lost {} events): following {:.1f}% of requests "
              "until it can",
              lost, keep * 100.0 / ShedController::kKeepAll);
        }
      }
    }
    if (now - last_sweep >= std::chrono::seconds(1)) {
      last_sweep = now;
      if (pod_scanner) {
        for (pid_t pid : pod_scanner->Scan()) {
          loader->SelectPid(pid);
          spdlog::info("tracing pid {} ({})", pid, processes.Get(pid)->service_name);
        }
        sync_pod_cgroups();
      }
      // Processes selected by port get no exit event: check they still live.
      for (uint32_t pid : tracker.Pids()) {
        if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
          tracker.OnProcessExit(pid, mono);
          processes.Forget(static_cast<pid_t>(pid));
        }
      }
      if (probes) probes->Rescan();  // libraries loaded since (dlopen), processes gone
      uint64_t lost = metrics.Get().kernel_events_lost;
      if (lost != last_lost) {
        spdlog::warn("kernel dropped {} events (ring buffer full): raise --ringbuf-mb",
                     lost - last_lost);
        last_lost = lost;
      }
    }
    if (run.stats_interval_s > 0 && now - last_stats >= std::chrono::seconds(run.stats_interval_s)) {
      last_stats = now;
      log_stats("periodic");
    }
    if (run.duration_s > 0 && now - started >= std::chrono::seconds(run.duration_s)) break;
  }
  // Drain what the kernel already produced, then stop capturing.
  loader->Poll(0);
  publish();
  NetProbeCounters net_counters;
  const bool net_probe_on = net_probe != nullptr;
  if (net_probe) net_counters = net_probe->ReadCounters();
  net_probe.reset();
  const KernelCounters kernel_counters = loader->ReadCounters();
  // Probes off before the programs they run go.
  dispatcher.set_tls(nullptr);
  const tls::TlsAttacherStats tls_stats =
      tls_attacher ? tls_attacher->stats() : tls::TlsAttacherStats{};
  tls_attacher.reset();
  tls_uprobes.reset();
  dispatcher.set_go(nullptr);
  const GoRuntimeStats go_stats = go_runtime ? go_runtime->stats() : GoRuntimeStats{};
  go_runtime.reset();  // its probes off before the capture's programs go
  dispatcher.set_python(nullptr);
  PythonRuntimeCounters py_counters;
  if (python) py_counters = python->ReadCounters();
  python.reset();
  UprobeCounters probe_counters;
  const size_t probe_links = uprobe_loader ? uprobe_loader->links() : 0;
  if (uprobe_loader) probe_counters = uprobe_loader->ReadCounters();
  stitcher.set_open_spans(nullptr);  // nothing may read the loader's maps from here on
  dispatcher.set_probes(nullptr, nullptr);
  probes.reset();
  uprobe_loader.reset();  // detach every function probe before the ring buffer goes
  dispatcher.set_node(nullptr);
  if (node_injector) node_injector->Shutdown();  // scripts out while the kernel still listens
  node_injector.reset();
  PropagationCounters prop_counters;
  if (propagation) prop_counters = propagation->ReadCounters();
  dispatcher.set_exec_hook(nullptr);
  propagation.reset();  // stop injecting (every cgroup detached) before the capture's maps go
  loader.reset();  // detach everything first: no new events
  if (pod_watcher) pod_watcher->Stop();
  tracker.CloseAll(MonotonicNowNs(), CloseReason::kShutdown);
  joiner.Flush(MonotonicNowNs());  // CLIENT spans still waiting for their SERVER span
  // Flush within OTEL_BSP_EXPORT_TIMEOUT, then report what became of every span.
  pipeline.Shutdown();
  {
    SelfMetricsSnapshot m = metrics.Get();
    auto p = pipeline.stats();
    m.spans_produced = p.submitted;
    m.spans_dropped_queue_full = p.dropped_queue_full;
    m.spans_dropped_shutdown = p.dropped_shutdown;
    if (otlp != nullptr) m.exporters = {CountersOf(otlp->stats())};
    metrics.Publish(std::move(m));
  }
  log_stats("final");
  if (go_stats.attached + go_stats.fallback > 0) {
    spdlog::info(
        "go (final): processes={} fallback={} detached={} goroutines_bound={} inherited={} "
        "handoffs={} syscalls_set={} syscalls_unbound={}",
        go_stats.attached, go_stats.fallback, go_stats.detached, go_stats.bound,
        go_stats.inherited, go_stats.handoffs, go_stats.set, go_stats.unbound);
  }
  if (propagate) {
    const auto& t = stitcher.stats();
    const auto& c = prop_counters;
    spdlog::info(
        "propagation (final): server_contexts={} remote={} invalid={} head_cut={} injected={} "
        "replaced={} not_linear={} disarmed={} rearmed={} rearm_skipped={} "
        "fionread_processes={} fionread_wakeups={} runtime_picked={} runtime_gone={} "
        "already_present={} no_context={} untracked={} inject_failed={} sockets={} "
        "sockets_busy={} sockets_failed={} not_http={} released={} server_spans_from_kernel={} "
        "client_spans_from_kernel={} relinked={} passthrough={} aliased={} kernel_unmatched={}",
        c.server_contexts, c.remote, c.invalid, c.head_cut, c.injected, c.replaced,
        c.not_linear, c.disarmed, c.rearmed, c.rearm_skipped, c.fionread_processes,
        c.fionread_wakeups, c.rt_picked, c.rt_gone, c.already_present,
        c.no_context, c.untracked, c.inject_failed, c.sockets_added, c.sockets_busy,
        c.sockets_failed, c.not_http, c.released, t.server_spans_from_kernel,
        t.client_spans_from_kernel, t.server_spans_relinked, t.client_spans_passthrough,
        t.kernel_traces_aliased, t.kernel_contexts_unmatched);
    if (py_counters.processes + py_counters.thread_model > 0) {
      const auto& y = py_counters;
      spdlog::info(
          "python contexts (final): processes={} thread_model={} copy_inherited={} "
          "copy_accepted={} copy_unbound={} syscall_set={} syscall_unbound={} "
          "tstate_walked={} tstate_missing={} lock_bound={} future_taken={} future_done={} "
          "lock_foreign={} syscall_handed={}",
          y.processes, y.thread_model, y.copy_inherited, y.copy_accepted, y.copy_unbound,
          y.syscall_set, y.syscall_unbound, y.tstate_walked, y.tstate_missing, y.lock_bound,
          y.future_taken, y.future_done, y.lock_foreign, y.syscall_handed);
    }
    spdlog::info(
        "tcp option (final): staged={} sent={} no_room={} unsent={} roots={} received={} "
        "used={} absent={} server_spans={}",
        c.opt_staged, c.opt_sent, c.opt_no_room, c.opt_unsent, c.opt_roots, c.opt_received,
        c.opt_used, c.opt_absent, t.server_spans_from_tcp_option);
    if (c.sockets_busy > 0) {
      spdlog::warn("propagation: {} socket(s) already had another program's sk_msg; their "
                   "requests were not injected",
                   c.sockets_busy);
    }
  }
  if (run.net_probes) {
    const auto& j = joiner.stats();
    spdlog::info(
        "network (final): probes={} segments={} tcp_events={} kernel_lost={} state_full={} "
        "retransmits={} resets={} hops_joined={} clients_unpaired={} entry_hops={} "
        "join_overflow={}",
        net_probe_on ? "on" : "off", net_counters.segments,
        net_facts.stats().events, net_counters.ringbuf_drops, net_counters.state_full,
        net_facts.stats().retransmits, net_facts.stats().resets, j.joined, j.clients_unpaired,
        j.entry_hops, j.overflow);
  }
  if (lo.tls) {
    const KernelCounters& k = kernel_counters;
    spdlog::info(
        "tls (final): attached={} detached={} attach_failed={} not_probeable={} "
        "maps_scans={} calls_by_syscall={} calls_by_session={} calls_by_thread={} "
        "calls_unbound={} go_calls={} go_no_fd={} data_events={}",
        tls_stats.attached, tls_stats.detached, tls_stats.attach_failed, tls_stats.not_probeable,
        tls_stats.scans, k.tls_by_syscall, k.tls_by_session, k.tls_by_thread, k.tls_unbound,
        k.gotls_calls, k.gotls_no_fd, k.data_events);
  }
  if (internal) {
    const auto& c = probe_counters;
    const auto& t = internal->stats();
    spdlog::info(
        "probes (final): probes_at_exit={} calls={} short={} abandoned={} too_deep={} "
        "unmatched_returns={} kernel_lost={} stack_full={} internal_spans={} "
        "with_server_parent={} client_parents={} open_expired={} py_calls_seen={} "
        "py_generators={} py_no_frame={} go_restarts={}",
        probe_links, c.calls, c.short_calls, c.abandoned, c.too_deep, c.unmatched,
        c.ringbuf_drops, c.stack_full, t.spans, t.with_server_parent, t.client_parents,
        t.open_expired, c.py_seen, c.py_generator, c.py_no_frame, c.go_restarts);
  }
  spdlog::info("hoptrace stopped; all programs detached");
  return 0;
}

}  // namespace hoptrace
