// hoptrace: zero-code HTTP tracing from the socket layer.
//
//   hoptrace run   --pid/--exe/--port/--all [--output tree|jsonl|otlp ...] ...
//   hoptrace check
//   hoptrace hops  --agent HOST:PORT [TRACE_ID | --edges | --live] | --from FILE ...
#include <signal.h>

#include <atomic>
#include <cstdio>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/cli/agent_runner.h"
#include "agent/cli/node_inject.h"
#include "agent/cli/probe_check.h"
#include "agent/kernel/python_runtime.h"
#include "agent/hops/hops_command.h"
#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/go_runtime.h"
#include "agent/kernel/preflight.h"
#include "agent/kernel/wakeup_model.h"
#include "agent/cli/settings.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

void SetUpLogging(const std::string& level) {
  // Logs go to stderr: stdout carries spans.
  auto logger = spdlog::stderr_color_mt("hoptrace");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

// Flags that stand for OTEL_* variables; they win over the environment.
struct OtelFlag {
  const char* flag;
  const char* var;
  const char* help;
};
constexpr OtelFlag kOtelFlags[] = {
    {"--otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT",
     "collector endpoint (grpc: http://host:4317; http/protobuf: base URL, /v1/traces is added)"},
    {"--otlp-traces-endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
     "full traces URL, used as given"},
    {"--otlp-protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc (default) or http/protobuf"},
    {"--otlp-timeout-ms", "OTEL_EXPORTER_OTLP_TIMEOUT", "deadline of one export attempt"},
    {"--otlp-compression", "OTEL_EXPORTER_OTLP_COMPRESSION", "gzip or none"},
    {"--otlp-ca-file", "OTEL_EXPORTER_OTLP_CERTIFICATE", "PEM CA bundle for TLS"},
    {"--sampler", "OTEL_TRACES_SAMPLER",
     "always_on, always_off, traceidratio, parentbased_always_on (default), "
     "parentbased_always_off, parentbased_traceidratio"},
    {"--sampler-arg", "OTEL_TRACES_SAMPLER_ARG", "ratio for the traceidratio samplers"},
    {"--resource-attributes", "OTEL_RESOURCE_ATTRIBUTES", "k=v,... added to every resource"},
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hoptrace: zero-code distributed tracing from the socket layer"};
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.set_version_flag("--version", std::string("hoptrace ") + HOPTRACE_VERSION);

  hoptrace::Settings settings;
  hoptrace::RunSettings cli;  // values given on the command line
  auto* run = app.add_subcommand("run", "trace HTTP of the selected processes");
  std::string config_file;
  run->add_option("--config", config_file, "YAML config file (see README)");
  auto* o_pid = run->add_option("--pid", cli.pids, "trace this process and its children (repeatable)");
  auto* o_exe = run->add_option("--exe", cli.exe_names,
                                "trace processes whose executable, comm or service name is NAME, "
                                "including ones started later (repeatable)");
  auto* o_port = run->add_option("--port", cli.ports,
                                 "trace TCP connections to or from this port (repeatable)");
  auto* o_all = run->add_flag("--all", cli.all, "trace every process on the host");
  auto* o_output = run->add_option("--output", cli.outputs,
                                   "tree (default), jsonl, otlp, none; repeat for several")
                       ->check(CLI::IsMember({"tree", "jsonl", "otlp", "none"}));
  auto* o_file = run->add_option("--output-file", cli.output_file,
                                 "write tree/jsonl output here instead of stdout");
  auto* o_payload = run->add_option("--payload-bytes", cli.payload_bytes,
                                    "bytes captured per read/write (headers must fit)")
                        ->check(CLI::Range(256, 8192));
  auto* o_ringbuf = run->add_option("--ringbuf-mb", cli.ringbuf_mb, "kernel->agent ring buffer")
                        ->check(CLI::Range(1, 1024));
  bool no_redact = false;
  run->add_flag("--no-redact-query", no_redact, "export query strings unredacted");
  auto* o_metrics = run->add_option("--metrics-address", cli.metrics_address,
                                    "serve Prometheus metrics at http://HOST:PORT/metrics");
  run->add_option("--stats-interval", cli.stats_interval_s, "log counters every N seconds");
  run->add_option("--duration", cli.duration_s, "stop after N seconds (0: until Ctrl-C)");
  bool no_net_probes = false;
  bool no_tls = false;
  run->add_flag("--no-tls", no_tls,
                "no uprobes on TLS libraries (OpenSSL): HTTPS is not traced");
  run->add_flag("--no-net-probes", no_net_probes,
                "no TCP facts (RTT, retransmissions, resets, IP hops) on spans");
  auto* o_prop_cgroup = run->add_option(
      "--propagation-cgroup", cli.propagation_cgroup,
      "inject traceparent into the HTTP/1.x requests of selected processes in this cgroup v2 "
      "directory");
  std::string prop_scope, prop_cgroup_root;
  auto* o_prop_scope = run->add_option(
      "--propagation-scope", prop_scope,
      "cgroup (default): inject in the --propagation-cgroup directory; pods: in the cgroup of "
      "each container the discovery section selects, while it has a selected process");
  auto* o_prop_root = run->add_option(
      "--propagation-cgroup-root", prop_cgroup_root,
      "scope pods: where the cgroup v2 hierarchy of the traced processes is mounted here "
      "(default: the cgroup2 mount the agent sees)");
  auto* o_node_inject = run->add_option(
      "--node-inject", cli.node_inject,
      "load hoptrace's JavaScript agent into Node.js process N through its inspector (SIGUSR1), "
      "so its outgoing requests get the right parent; needs --propagation-cgroup (repeatable)");
  bool no_shed = false;
  run->add_flag("--no-shed", no_shed,
                "under overload, lose events where they fall instead of following fewer "
                "requests");
  bool no_propagation = false;
  run->add_flag("--no-propagation", no_propagation,
                "never change bytes on the wire: read-only tracing");
  std::string fionread_guard;
  auto* o_guard = run->add_option(
      "--fionread-guard", fionread_guard,
      "auto|on|off|detect: keep sockets in the propagation sockhash only while they have "
      "nothing to read (auto: on kernels whose sockhash misreports FIONREAD; detect: only "
      "for processes seen asking FIONREAD)")
      ->check(CLI::IsMember({"auto", "on", "off", "detect"}));
  auto* o_consumers =
      run->add_option("--export-consumers", cli.export_consumers,
                      "OTLP exports in flight at once (default 4)")
          ->check(CLI::Range(1, 64));
  auto* o_probe = run->add_option(
      "--probe", cli.probes,
      "time calls of FUNCTION in PROGRAM as INTERNAL spans: PROGRAM:FUNCTION, PROGRAM a path "
      "or a name as --exe, FUNCTION a symbol or C++ name, * globs (repeatable)");
  auto* o_probe_min = run->add_option("--probe-min-duration-us", cli.probe_min_duration_us,
                                      "shorter probed calls are counted, not exported (default 100)");
  // Kubernetes: pod metadata and selection by pod.
  std::vector<std::string> k8s_namespaces, k8s_labels, k8s_workloads, k8s_containers,
      k8s_exclude_namespaces;
  run->add_option("--k8s-namespace", k8s_namespaces,
                  "trace the pods of this namespace (glob; repeatable; with other --k8s-* "
                  "flags, every one must match)");
  run->add_option("--k8s-label", k8s_labels, "trace pods with this label KEY=VALUE (repeatable)");
  run->add_option("--k8s-workload", k8s_workloads,
                  "trace the pods of this Deployment/StatefulSet/DaemonSet/Job (repeatable)");
  run->add_option("--k8s-container", k8s_containers,
                  "trace only containers of this name (repeatable)");
  run->add_option("--k8s-exclude-namespace", k8s_exclude_namespaces,
                  "never trace pods of this namespace (repeatable)");
  std::string node_name, k8s_api, k8s_token_file, k8s_ca_file;
  auto* o_node = run->add_option("--node-name", node_name,
                                 "this node's name (default: $NODE_NAME)");
  auto* o_k8s_api = run->add_option("--k8s-api", k8s_api,
                                    "Kubernetes API server URL (default: in-cluster)");
  auto* o_k8s_token = run->add_option("--k8s-token-file", k8s_token_file,
                                      "bearer token file for --k8s-api");
  auto* o_k8s_ca = run->add_option("--k8s-ca-file", k8s_ca_file, "CA file for --k8s-api");
  bool no_k8s = false;
  run->add_flag("--no-k8s", no_k8s, "no Kubernetes metadata even inside a pod");
  std::vector<std::string> otlp_headers;
  run->add_option("--otlp-header", otlp_headers, "KEY=VALUE sent with every export (repeatable)");
  bool otlp_insecure = false;
  run->add_flag("--otlp-insecure", otlp_insecure, "gRPC without TLS for scheme-less endpoints");
  std::map<std::string, std::string> otel_values;
  for (const auto& f : kOtelFlags) run->add_option(f.flag, otel_values[f.var], f.help);

  auto* check = app.add_subcommand("check", "say which kernel features work here");
  bool check_verbose = false, check_matrix = false;
  check->add_flag("--verbose", check_verbose,
                  "also print the verifier's processed instructions per program");
  check->add_flag("--config-matrix", check_matrix,
                  "load every program in every configuration `run` offers (selection x "
                  "propagation x read guard x payload size); fail if one does not load or "
                  "uses more than 25% of the verifier's budget");
  std::vector<pid_t> check_pids;
  std::vector<std::string> check_probes;
  check->add_option("--pid", check_pids,
                    "also say which TLS libraries process N maps and whether each can be probed; "
                    "with --probe: the process to look in (repeatable)");
  check->add_option("--probe", check_probes,
                    "PROGRAM:FUNCTION: list the functions it matches in --pid's files");
  hoptrace::HopsOptions hops_options;
  auto* hops = app.add_subcommand("hops", "the hops of a trace, or per-edge latency, traceroute-style");
  hops->add_option("trace", hops_options.trace_id, "trace id (32 hex digits); none: recent traces");
  hops->add_option("--agent", hops_options.agent,
                   "HOST:PORT of a running `hoptrace run --metrics-address`");
  hops->add_option("--from", hops_options.from_file,
                   "read spans from this file (JSON lines of `hoptrace run --output jsonl`)");
  hops->add_flag("--edges", hops_options.edges, "per-edge table (caller -> callee), once");
  hops->add_flag("--live", hops_options.live, "per-edge table, refreshing until Ctrl-C");
  hops->add_option("--interval", hops_options.interval_s, "seconds between --live refreshes")
      ->check(CLI::Range(0.1, 3600.0));
  hops->add_option("--count", hops_options.count, "--live: stop after N tables");
  hops->add_flag("--json", hops_options.json, "print the JSON instead of a table");

  run->fallthrough();  // --log-level after the subcommand too
  check->fallthrough();
  hops->fallthrough();

  CLI11_PARSE(app, argc, argv);

  if (check->parsed()) {
    SetUpLogging(log_level.empty() ? (check_matrix ? "error" : "warn") : log_level);
    if (!check_probes.empty()) {
      if (check_pids.empty()) {
        spdlog::error("check: --probe needs --pid, the process to look in");
        return 2;
      }
      return hoptrace::PrintProbeMatches(check_pids, check_probes, stdout);
    }
    if (check_matrix) {
      try {
        return hoptrace::RunConfigMatrix(hoptrace::MatrixOptions{}, stdout) ? 0 : 1;
      } catch (const hoptrace::StartupError& e) {
        spdlog::error("{}", e.what());
        return 2;
      }
    }
    std::vector<hoptrace::ObjectCosts> costs;
    auto items = hoptrace::RunPreflight(check_verbose ? &costs : nullptr);
    for (int pid : check_pids) {
      auto tls = hoptrace::TlsLibraryItems(pid);
      items.insert(items.end(), tls.begin(), tls.end());
      items.push_back(hoptrace::GoRuntimeItem(pid));
      // Which model says what request a Python process's outgoing one serves.
      if (auto model = hoptrace::PythonModelOf(pid); !model.empty()) {
        items.push_back({"Python in pid " + std::to_string(pid),
                         hoptrace::PreflightItem::Status::kInfo, model,
                         "parents of outgoing requests (runtime context)", false});
      }
      items.push_back(hoptrace::WakeupModelItem(pid));
    }
    const bool ok = hoptrace::PrintPreflight(items, stdout);
    for (int pid : check_pids) std::printf("%s\n", hoptrace::NodeModelLine(pid).c_str());
    if (check_verbose) {
      std::printf("\nverifier: processed instructions per program (budget %lld, 25%% of 1M)\n",
                  static_cast<long long>(hoptrace::kVerifierBudget));
      for (const auto& c : costs) hoptrace::PrintObjectCosts(c, hoptrace::kVerifierBudget, stdout);
    }
    return ok ? 0 : 1;
  }

  if (hops->parsed()) {
    SetUpLogging(log_level.empty() ? "warn" : log_level);
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    return hoptrace::RunHops(hops_options, &g_stop);
  }

  // Layers: config file, then environment (inside Settings), then flags.
  std::string file_error;
  if (!config_file.empty()) {
    if (auto err = settings.LoadFile(config_file)) file_error = *err;
  }
  hoptrace::RunSettings& r = settings.run();
  if (o_pid->count()) r.pids = cli.pids;
  if (o_exe->count()) r.exe_names = cli.exe_names;
  if (o_port->count()) r.ports = cli.ports;
  if (o_all->count()) r.all = true;
  if (o_output->count()) r.outputs = cli.outputs;
  if (o_file->count()) r.output_file = cli.output_file;
  if (o_payload->count()) r.payload_bytes = cli.payload_bytes;
  if (o_ringbuf->count()) r.ringbuf_mb = cli.ringbuf_mb;
  if (no_redact) r.redact_query = false;
  if (o_prop_cgroup->count()) r.propagation_cgroup = cli.propagation_cgroup;
  if (no_propagation) r.propagation = false;
  if (o_prop_scope->count()) r.propagation_scope = prop_scope;
  if (o_prop_root->count()) r.propagation_cgroup_root = prop_cgroup_root;
  if (o_node_inject->count()) r.node_inject = cli.node_inject;
  if (no_shed) r.shed = false;
  if (o_guard->count()) r.fionread_guard = fionread_guard;
  if (no_net_probes) r.net_probes = false;
  if (no_tls) r.tls = false;
  if (o_consumers->count()) r.export_consumers = cli.export_consumers;
  if (o_metrics->count()) r.metrics_address = cli.metrics_address;
  if (o_probe->count()) r.probes = cli.probes;
  if (o_probe_min->count()) r.probe_min_duration_us = cli.probe_min_duration_us;
  if (!log_level.empty()) r.log_level = log_level;
  if (o_node->count()) r.kubernetes.node_name = node_name;
  if (o_k8s_api->count()) r.kubernetes.api_server = k8s_api;
  if (o_k8s_token->count()) r.kubernetes.token_file = k8s_token_file;
  if (o_k8s_ca->count()) r.kubernetes.ca_file = k8s_ca_file;
  if (no_k8s) r.kubernetes.mode = "off";
  if (!k8s_namespaces.empty() || !k8s_labels.empty() || !k8s_workloads.empty() ||
      !k8s_containers.empty()) {
    hoptrace::PodSelector include;
    if (auto err = hoptrace::PodSelectorFromFlags(k8s_namespaces, k8s_labels, k8s_workloads,
                                                  k8s_containers, &include)) {
      std::fprintf(stderr, "%s\n", err->c_str());
      return 2;
    }
    r.discovery.include = {include};
  }
  for (const auto& ns : k8s_exclude_namespaces) {
    hoptrace::PodSelector exclude;
    exclude.namespaces = {ns};
    r.discovery.exclude.push_back(exclude);
  }
  r.stats_interval_s = cli.stats_interval_s;
  r.duration_s = cli.duration_s;
  for (const auto& [var, value] : otel_values) {
    if (!value.empty()) settings.SetFlag(var, value);
  }
  if (!otlp_headers.empty()) {
    std::string joined;
    for (const auto& h : otlp_headers) joined += (joined.empty() ? "" : ",") + h;
    settings.SetFlag("OTEL_EXPORTER_OTLP_HEADERS", joined);
  }
  if (otlp_insecure) settings.SetFlag("OTEL_EXPORTER_OTLP_INSECURE", "true");

  SetUpLogging(r.log_level);
  if (!file_error.empty()) {
    spdlog::error("{}", file_error);
    return 2;
  }

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  try {
    return hoptrace::RunAgent(settings, &g_stop);
  } catch (const hoptrace::StartupError& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
}
