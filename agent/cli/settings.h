// Where every setting of `hoptrace run` comes from, in increasing precedence:
//   1. defaults,
//   2. the config file (--config, YAML),
//   3. the environment (OTEL_* variables, with the meaning the OpenTelemetry
//      specification gives them),
//   4. command-line flags.
// OpenTelemetry settings keep their OTEL_* names on every layer: the file's
// `otlp.endpoint` and the flag --otlp-endpoint both set what
// OTEL_EXPORTER_OTLP_ENDPOINT would, and are parsed by the same code.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/k8s/kube_client.h"
#include "agent/k8s/pod_selector.h"

namespace hoptrace {

using Getenv = std::function<std::optional<std::string>(std::string_view)>;

// The process environment (empty values count as unset, as the spec says).
std::optional<std::string> ProcessGetenv(std::string_view name);

// Where the pods of this node come from (the config's `kubernetes` section).
struct KubernetesSettings {
  // "auto": on inside a pod (KUBERNETES_SERVICE_HOST is set) or with an
  // api_server given; "on": required (start-up fails without it); "off".
  std::string mode = "auto";
  std::string node_name;   // empty: the NODE_NAME environment variable (downward API)
  std::string api_server;  // empty: in-cluster (KUBERNETES_SERVICE_HOST/_PORT)
  std::string token_file;  // empty: the service account's token (in-cluster only)
  std::string ca_file;     // empty: the service account's ca.crt (in-cluster only)
  uint32_t max_pods = 4096;
};

// hoptrace's own settings: what to trace and where spans go.
struct RunSettings {
  std::vector<pid_t> pids;
  std::vector<std::string> exe_names;
  std::vector<uint16_t> ports;
  bool all = false;
  std::vector<std::string> outputs;  // "tree", "jsonl", "otlp"; empty: see ResolveOutputs
  std::string output_file;
  uint32_t payload_bytes = 4096;
  uint32_t ringbuf_mb = 8;
  bool redact_query = true;
  std::string metrics_address;  // "host:port"; empty: no endpoint
  std::string log_level = "info";
  int stats_interval_s = 0;  // log counters every N s (0: only at exit)
  int duration_s = 0;        // stop by itself after N s (0: never)
  // Black-box context propagation: traceparent injection into the requests of
  // selected processes in this cgroup v2 directory (empty: none, read-only).
  std::string propagation_cgroup;
  // Where injection is attached (the propagation section's scope):
  //   "cgroup": the one directory propagation_cgroup names (nothing without one);
  //   "pods":   each selected container's own cgroup (the discovery section's
  //             selection), attached when its first selected process is found and
  //             detached when its last one is gone; never a cgroup of anything else.
  std::string propagation_scope = "cgroup";
  // Scope "pods": the cgroup v2 hierarchy's root as this agent sees it, under which
  // the paths of /proc/<pid>/cgroup are (in the chart: the host's, mounted at
  // /host/sys/fs/cgroup). Empty: where cgroup v2 is mounted in the agent's view.
  std::string propagation_cgroup_root;
  // Node.js processes to load the JavaScript agent into (runtime context,
  // agent/cli/node_inject.h): opt-in, per process. Needs propagation.
  std::vector<pid_t> node_inject;
  bool propagation = true;  // false: read-only tracing even with a cgroup
  std::string fionread_guard = "auto";  // auto, on, off, detect: see FionreadGuard
  // Under overload the kernel follows only a share of requests
  // (agent/kernel/shed_controller.h) rather than losing events at random.
  bool shed = true;
  bool net_probes = true;    // TCP facts (RTT, retransmits, TTL) of traced connections
  bool tls = true;           // TLS plaintext through uprobes on OpenSSL (capture.tls)
  // OTLP exports in flight at once (the Collector's sending_queue.num_consumers): each is a
  // worker of the span pipeline with its own exporter.
  uint32_t export_consumers = 4;
  // Functions to time as INTERNAL spans: "PROGRAM:FUNCTION" (uprobes/probe_spec.h).
  std::vector<std::string> probes;
  uint32_t probe_min_duration_us = 100;  // shorter calls are counted, not exported
  KubernetesSettings kubernetes;
  // Selection by pod (the `discovery` section, --k8s-* flags), beside
  // pids/exe/ports: every process of a selected container.
  PodSelection discovery;
};

class Settings {
 public:
  explicit Settings(Getenv env = ProcessGetenv) : env_(std::move(env)) {}

  // Reads a YAML config file. Returns an error message (naming the file and
  // the key) or nullopt.
  std::optional<std::string> LoadFile(const std::string& path);
  // A command-line value for an OTEL_* variable.
  void SetFlag(std::string name, std::string value) { flags_[std::move(name)] = std::move(value); }

  // The value of an OTEL_* variable after all layers.
  std::optional<std::string> Get(std::string_view name) const;
  // As a Getenv, for parsers written against the environment.
  Getenv AsGetenv() const {
    return [this](std::string_view n) { return Get(n); };
  }

  // The API server and node to watch after all layers (file, then the
  // environment: NODE_NAME, KUBERNETES_SERVICE_HOST/_PORT). Nullopt with
  // *error empty: not in Kubernetes (or switched off); with *error set: a
  // start-up error to report.
  struct KubernetesTarget {
    KubeEndpoint endpoint;
    std::string node_name;
  };
  std::optional<KubernetesTarget> Kubernetes(std::string* error,
                                             std::string* warning = nullptr) const;

  RunSettings& run() { return run_; }
  const RunSettings& run() const { return run_; }

 private:
  Getenv env_;
  std::map<std::string, std::string, std::less<>> file_;
  std::map<std::string, std::string, std::less<>> flags_;
  RunSettings run_;
};

// The --k8s-* selection flags as one selector (every flag given must match);
// labels are "key=value". Returns an error for a malformed label.
std::optional<std::string> PodSelectorFromFlags(std::vector<std::string> namespaces,
                                                const std::vector<std::string>& labels,
                                                std::vector<std::string> workloads,
                                                std::vector<std::string> containers,
                                                PodSelector* out);

// OTEL_RESOURCE_ATTRIBUTES: "k=v,k2=v2", values percent-decoded. Returns an
// error for a malformed list (the spec: discard it all).
std::optional<std::string> ParseResourceAttributes(
    std::string_view value, std::vector<std::pair<std::string, std::string>>* out);

}  // namespace hoptrace
