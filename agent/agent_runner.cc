#include "agent/agent_runner.h"

#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include <spdlog/spdlog.h>

#include "agent/conn_tracker.h"
#include "agent/event_reader.h"
#include "agent/process_registry.h"
#include "agent/span_pipeline.h"
#include "agent/trace_stitcher.h"
#include "exporters/console/jsonl_exporter.h"
#include "exporters/console/tree_exporter.h"

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

bool MatchesName(ProcessRegistry& processes, pid_t pid, const std::vector<std::string>& names) {
  auto info = processes.Get(pid);
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) {
    return n == info->executable_name || n == info->comm || n == info->service_name;
  });
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

std::unique_ptr<SpanSink> MakeSink(const AgentOptions& o) {
  if (o.output == AgentOptions::Output::kJsonl) {
    if (o.output_file.empty()) return std::make_unique<JsonlExporter>(stdout);
    return std::make_unique<JsonlExporter>(std::filesystem::path(o.output_file));
  }
  if (o.output_file.empty()) return std::make_unique<TreeExporter>(stdout);
  return std::make_unique<TreeExporter>(std::filesystem::path(o.output_file), TreeExporter::Options{});
}

// Routes decoded events: connection events to the tracker, process events
// to selection (exec) and clean-up (exit).
class Dispatcher : public EventHandler {
 public:
  Dispatcher(ConnTracker* tracker, ProcessRegistry* processes, const std::vector<std::string>& names)
      : tracker_(tracker), processes_(processes), names_(names) {}
  void set_loader(BpfLoader* loader) { loader_ = loader; }

  void OnConnOpen(const ConnEvent& ev) override { tracker_->OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_->OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_->OnConnClose(ev); }
  void OnProcExec(const ProcEvent& ev) override {
    const pid_t pid = static_cast<pid_t>(ev.hdr->pid);
    processes_->Forget(pid);  // exec changed who it is
    if (loader_ && MatchesName(*processes_, pid, names_)) {
      loader_->SelectPid(pid);
      spdlog::info("tracing pid {} ({})", pid, processes_->Get(pid)->service_name);
    } else {
      processes_->Forget(pid);
    }
  }
  void OnProcExit(const ProcEvent& ev) override {
    tracker_->OnProcessExit(ev.hdr->pid, ev.hdr->ts_exit_ns);
    processes_->Forget(static_cast<pid_t>(ev.hdr->pid));
  }

 private:
  ConnTracker* tracker_;
  ProcessRegistry* processes_;
  const std::vector<std::string>& names_;
  BpfLoader* loader_ = nullptr;
};

}  // namespace

int RunAgent(const AgentOptions& options, const std::atomic<bool>* stop) {
  // A reader of our stdout going away must not kill the agent.
  signal(SIGPIPE, SIG_IGN);

  ProcessRegistry processes(HostName());
  std::vector<std::unique_ptr<SpanSink>> sinks;
  try {
    sinks.push_back(MakeSink(options));
  } catch (const std::exception& e) {
    throw StartupError(e.what());
  }
  SpanPipeline pipeline(std::move(sinks));

  TraceStitcherOptions stitch_options;
  stitch_options.span.redact_query = options.redact_query;
  stitch_options.span.monotonic_to_unix_ns = MonotonicToUnixOffsetNs();
  TraceStitcher stitcher(&processes, [&](Span span) { pipeline.Submit(std::move(span)); },
                         stitch_options);
  ConnTracker tracker(&stitcher);
  Dispatcher dispatcher(&tracker, &processes, options.exe_names);
  EventReader reader(&dispatcher);

  LoaderOptions lo = options.loader;
  if (!options.exe_names.empty()) {
    lo.exec_events = true;
    for (pid_t pid : ScanProcesses(processes, options.exe_names)) lo.pids.push_back(pid);
  }
  if (!lo.trace_all && lo.pids.empty() && lo.ports.empty() && options.exe_names.empty()) {
    throw StartupError("nothing selected: pass --pid, --exe, --port or --all");
  }
  auto loader = BpfLoader::Start(lo, [&](std::span<const uint8_t> rec) { reader.Dispatch(rec); });
  dispatcher.set_loader(loader.get());
  for (pid_t pid : lo.pids) processes.Get(pid);  // cache identity while alive

  spdlog::info("hoptrace ready: tracing {}{} pid(s), {} port(s){}; Ctrl-C to stop",
               lo.trace_all ? "all processes, " : "", lo.pids.size(), lo.ports.size(),
               options.exe_names.empty() ? "" : ", and new processes matching --exe");

  auto log_stats = [&](const char* when) {
    KernelCounters k = loader->ReadCounters();
    auto p = pipeline.stats();
    auto s = tracker.stitcher_stats();
    spdlog::info(
        "stats ({}): events={} malformed={} kernel_lost={} truncated={} conns={} pending={} "
        "spans={} spans_exported={} spans_dropped={} orphan_responses={} resyncs={} "
        "invalid_traceparent={}",
        when, reader.stats().events, reader.stats().malformed, k.ringbuf_drops, k.truncated,
        tracker.tracked_connections(), tracker.pending_requests(), stitcher.stats().spans,
        p.exported, p.dropped_queue_full, s.orphan_responses, s.resyncs,
        stitcher.stats().invalid_traceparent);
  };

  const auto started = std::chrono::steady_clock::now();
  auto last_stats = started, last_sweep = started;
  uint64_t last_lost = 0;
  while (!stop->load()) {
    int n = loader->Poll(100);
    if (n < 0 && n != -EINTR) {
      spdlog::error("ring buffer poll failed: {}", strerror(-n));
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    const uint64_t mono = MonotonicNowNs();
    tracker.Tick(mono);
    stitcher.Tick(mono);
    if (now - last_sweep >= std::chrono::seconds(1)) {
      last_sweep = now;
      // Processes selected by port get no exit event: check they still live.
      for (uint32_t pid : tracker.Pids()) {
        if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
          tracker.OnProcessExit(pid, mono);
          processes.Forget(static_cast<pid_t>(pid));
        }
      }
      uint64_t lost = loader->ReadCounters().ringbuf_drops;
      if (lost != last_lost) {
        spdlog::warn("kernel dropped {} events (ring buffer full): raise --ringbuf-mb",
                     lost - last_lost);
        last_lost = lost;
      }
    }
    if (options.stats_interval.count() > 0 && now - last_stats >= options.stats_interval) {
      last_stats = now;
      log_stats("periodic");
    }
    if (options.duration && now - started >= *options.duration) break;
  }
  // Drain what the kernel already produced, then report before tearing down.
  loader->Poll(0);
  log_stats("final");
  loader.reset();  // detach everything first: no new events
  tracker.CloseAll(MonotonicNowNs(), CloseReason::kShutdown);
  pipeline.Shutdown();
  spdlog::info("hoptrace stopped; all programs detached");
  return 0;
}

}  // namespace hoptrace
