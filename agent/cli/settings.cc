#include "agent/cli/settings.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "agent/text_util.h"

namespace hoptrace {
namespace {

// YAML keys that stand for OTEL_* variables, per section.
struct OtelKey {
  std::string_view section, key, var;
};
constexpr OtelKey kOtelKeys[] = {
    {"otlp", "endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"},
    {"otlp", "traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
    {"otlp", "protocol", "OTEL_EXPORTER_OTLP_PROTOCOL"},
    {"otlp", "timeout_ms", "OTEL_EXPORTER_OTLP_TIMEOUT"},
    {"otlp", "compression", "OTEL_EXPORTER_OTLP_COMPRESSION"},
    {"otlp", "insecure", "OTEL_EXPORTER_OTLP_INSECURE"},
    {"otlp", "certificate", "OTEL_EXPORTER_OTLP_CERTIFICATE"},
    {"otlp", "client_key", "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
    {"otlp", "client_certificate", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
    {"sampler", "name", "OTEL_TRACES_SAMPLER"},
    {"sampler", "arg", "OTEL_TRACES_SAMPLER_ARG"},
    {"batch", "schedule_delay_ms", "OTEL_BSP_SCHEDULE_DELAY"},
    {"batch", "export_timeout_ms", "OTEL_BSP_EXPORT_TIMEOUT"},
    {"batch", "max_queue_size", "OTEL_BSP_MAX_QUEUE_SIZE"},
    {"batch", "max_export_batch_size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"},
};

// Percent-encodes what would break a "k=v,k2=v2" list.
std::string EncodeListValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == ',' || c == '=' || c == '%' || c == ' ' || static_cast<unsigned char>(c) < 0x20) {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// A YAML map of strings as a "k=v,..." list (headers, resource attributes).
std::string MapToList(const YAML::Node& map) {
  std::string out;
  for (const auto& kv : map) {
    if (!out.empty()) out += ',';
    out += kv.first.as<std::string>() + "=" + EncodeListValue(kv.second.as<std::string>());
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <typename T>
std::vector<T> SeqOrOne(const YAML::Node& n) {
  std::vector<T> out;
  if (n.IsSequence()) {
    for (const auto& e : n) out.push_back(e.as<T>());
  } else {
    out.push_back(n.as<T>());
  }
  return out;
}

class FileReader {
 public:
  FileReader(const YAML::Node& root, RunSettings* run,
             std::map<std::string, std::string, std::less<>>* otel)
      : root_(root), run_(run), otel_(otel) {}

  // Throws std::runtime_error naming the offending key.
  void Read() {
    if (!root_.IsMap()) throw std::runtime_error("the top level must be a map");
    for (const auto& kv : root_) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "select") {
        Select(v);
      } else if (key == "output") {
        run_->outputs = SeqOrOne<std::string>(v);
      } else if (key == "output_file") {
        run_->output_file = v.as<std::string>();
      } else if (key == "capture") {
        Capture(v);
      } else if (key == "metrics") {
        Expect(v, "metrics", {"address"});
        if (v["address"]) run_->metrics_address = v["address"].as<std::string>();
      } else if (key == "log_level") {
        run_->log_level = v.as<std::string>();
      } else if (key == "resource") {
        Expect(v, "resource", {"attributes"});
        if (v["attributes"]) (*otel_)["OTEL_RESOURCE_ATTRIBUTES"] = MapToList(v["attributes"]);
      } else if (key == "propagation") {
        Expect(v, "propagation", {"cgroup", "enabled", "fionread_guard", "scope", "cgroup_root"});
        if (v["cgroup"]) run_->propagation_cgroup = v["cgroup"].as<std::string>();
        if (v["scope"]) run_->propagation_scope = v["scope"].as<std::string>();
        if (v["cgroup_root"]) run_->propagation_cgroup_root = v["cgroup_root"].as<std::string>();
        if (v["enabled"]) run_->propagation = v["enabled"].as<bool>();
        if (v["fionread_guard"]) run_->fionread_guard = v["fionread_guard"].as<std::string>();
      } else if (key == "probes") {
        Probes(v);
      } else if (key == "kubernetes") {
        Kubernetes(v);
      } else if (key == "discovery") {
        Expect(v, "discovery", {"include", "exclude"});
        if (v["include"]) run_->discovery.include = Selectors(v["include"], "discovery.include");
        if (v["exclude"]) run_->discovery.exclude = Selectors(v["exclude"], "discovery.exclude");
      } else if (key == "otlp" || key == "sampler" || key == "batch") {
        Otel(key, v);
      } else {
        throw std::runtime_error("unknown key \"" + key + "\"");
      }
    }
  }

 private:
  static void Expect(const YAML::Node& n, const std::string& section,
                     std::initializer_list<std::string_view> keys) {
    if (!n.IsMap()) throw std::runtime_error("\"" + section + "\" must be a map");
    for (const auto& kv : n) {
      const std::string k = kv.first.as<std::string>();
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
        throw std::runtime_error("unknown key \"" + section + "." + k + "\"");
      }
    }
  }

  void Select(const YAML::Node& v) {
    Expect(v, "select", {"pids", "exe", "ports", "all"});
    if (v["pids"]) run_->pids = SeqOrOne<pid_t>(v["pids"]);
    if (v["exe"]) run_->exe_names = SeqOrOne<std::string>(v["exe"]);
    if (v["ports"]) run_->ports = SeqOrOne<uint16_t>(v["ports"]);
    if (v["all"]) run_->all = v["all"].as<bool>();
  }

  // probes: {functions: ["shop:Shop::validate", ...], min_duration_us: 100}
  void Probes(const YAML::Node& v) {
    Expect(v, "probes", {"functions", "min_duration_us"});
    if (v["functions"]) run_->probes = SeqOrOne<std::string>(v["functions"]);
    if (v["min_duration_us"]) run_->probe_min_duration_us = v["min_duration_us"].as<uint32_t>();
  }

  void Kubernetes(const YAML::Node& v) {
    Expect(v, "kubernetes",
           {"enabled", "node_name", "api_server", "token_file", "ca_file", "max_pods"});
    KubernetesSettings& k = run_->kubernetes;
    if (v["enabled"]) {
      k.mode = v["enabled"].as<std::string>();
      // YAML's booleans in any spelling, and "auto".
      if (k.mode != "auto") k.mode = v["enabled"].as<bool>() ? "on" : "off";
    }
    if (v["node_name"]) k.node_name = v["node_name"].as<std::string>();
    if (v["api_server"]) k.api_server = v["api_server"].as<std::string>();
    if (v["token_file"]) k.token_file = v["token_file"].as<std::string>();
    if (v["ca_file"]) k.ca_file = v["ca_file"].as<std::string>();
    if (v["max_pods"]) {
      k.max_pods = v["max_pods"].as<uint32_t>();
      if (k.max_pods < 1) throw std::runtime_error("\"kubernetes.max_pods\" must be at least 1");
    }
  }

  // A list of selectors, each a map of namespace / pod_labels / workload /
  // container (a string or a list of strings; labels a map).
  static std::vector<PodSelector> Selectors(const YAML::Node& list, const std::string& where) {
    if (!list.IsSequence()) throw std::runtime_error("\"" + where + "\" must be a list");
    std::vector<PodSelector> out;
    for (const auto& item : list) {
      Expect(item, where + "[]", {"namespace", "pod_labels", "workload", "container"});
      PodSelector s;
      if (item["namespace"]) s.namespaces = SeqOrOne<std::string>(item["namespace"]);
      if (item["workload"]) s.workloads = SeqOrOne<std::string>(item["workload"]);
      if (item["container"]) s.containers = SeqOrOne<std::string>(item["container"]);
      if (item["pod_labels"]) {
        if (!item["pod_labels"].IsMap()) {
          throw std::runtime_error("\"" + where + "[].pod_labels\" must be a map");
        }
        for (const auto& kv : item["pod_labels"]) {
          s.labels[kv.first.as<std::string>()] = kv.second.as<std::string>();
        }
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  void Capture(const YAML::Node& v) {
    Expect(v, "capture",
           {"payload_bytes", "ringbuf_mb", "redact_query", "shed_under_load", "tls"});
    if (v["payload_bytes"]) run_->payload_bytes = v["payload_bytes"].as<uint32_t>();
    if (v["ringbuf_mb"]) run_->ringbuf_mb = v["ringbuf_mb"].as<uint32_t>();
    if (v["redact_query"]) run_->redact_query = v["redact_query"].as<bool>();
    if (v["shed_under_load"]) run_->shed = v["shed_under_load"].as<bool>();
    if (v["tls"]) run_->tls = v["tls"].as<bool>();
  }

  void Otel(const std::string& section, const YAML::Node& v) {
    if (!v.IsMap()) throw std::runtime_error("\"" + section + "\" must be a map");
    for (const auto& kv : v) {
      const std::string k = kv.first.as<std::string>();
      if (section == "otlp" && k == "headers") {
        (*otel_)["OTEL_EXPORTER_OTLP_HEADERS"] = MapToList(kv.second);
        continue;
      }
      if (section == "batch" && k == "consumers") {  // hoptrace's own, not an OTEL_* variable
        run_->export_consumers = kv.second.as<uint32_t>();
        if (run_->export_consumers < 1 || run_->export_consumers > 64) {
          throw std::runtime_error("\"batch.consumers\" must be 1..64");
        }
        continue;
      }
      auto it = std::find_if(std::begin(kOtelKeys), std::end(kOtelKeys), [&](const OtelKey& o) {
        return o.section == section && o.key == k;
      });
      if (it == std::end(kOtelKeys)) {
        throw std::runtime_error("unknown key \"" + section + "." + k + "\"");
      }
      (*otel_)[std::string(it->var)] = kv.second.as<std::string>();
    }
  }

  const YAML::Node& root_;
  RunSettings* run_;
  std::map<std::string, std::string, std::less<>>* otel_;
};

}  // namespace

std::optional<std::string> ProcessGetenv(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::optional<std::string> Settings::LoadFile(const std::string& path) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (root.IsNull()) return std::nullopt;  // an empty file sets nothing
    FileReader(root, &run_, &file_).Read();
  } catch (const YAML::BadFile&) {
    return "cannot read config file " + path;
  } catch (const YAML::Exception& e) {
    return "config file " + path + ": " + e.what();
  } catch (const std::exception& e) {
    return "config file " + path + ": " + e.what();
  }
  return std::nullopt;
}

std::optional<std::string> Settings::Get(std::string_view name) const {
  if (auto it = flags_.find(name); it != flags_.end()) return it->second;
  if (auto v = env_(name)) return v;
  if (auto it = file_.find(name); it != file_.end()) return it->second;
  return std::nullopt;
}

std::optional<Settings::KubernetesTarget> Settings::Kubernetes(std::string* error,
                                                               std::string* warning) const {
  error->clear();
  const KubernetesSettings& k = run_.kubernetes;
  if (k.mode != "auto" && k.mode != "on" && k.mode != "off") {
    *error = "kubernetes.enabled must be auto, true or false, got \"" + k.mode + "\"";
    return std::nullopt;
  }
  if (k.mode == "off") return std::nullopt;
  KubernetesTarget t;
  if (!k.api_server.empty()) {
    t.endpoint = KubeEndpoint{k.api_server, k.token_file, k.ca_file};
  } else if (auto in_cluster = InClusterEndpoint(env_)) {
    t.endpoint = *in_cluster;
    if (!k.token_file.empty()) t.endpoint.token_file = k.token_file;
    if (!k.ca_file.empty()) t.endpoint.ca_file = k.ca_file;
  } else {
    if (k.mode == "on") {
      *error = "kubernetes is on but there is no API server: set kubernetes.api_server, or run "
               "in a pod (KUBERNETES_SERVICE_HOST)";
    }
    return std::nullopt;
  }
  t.node_name = !k.node_name.empty() ? k.node_name : env_("NODE_NAME").value_or("");
  // A node's name is a DNS subdomain; it goes into the watch's field selector as it is.
  if (t.node_name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") !=
      std::string::npos) {
    *error = "the node name \"" + t.node_name + "\" is not a Kubernetes node name";
    return std::nullopt;
  }
  if (t.node_name.empty()) {
    // Without it the agent would watch every pod of the cluster.
    const std::string why =
        "the Kubernetes API is there but not the node's name: set NODE_NAME (the chart sets it "
        "from spec.nodeName) or kubernetes.node_name";
    if (k.mode == "on") {
      *error = why;
    } else if (warning != nullptr) {
      *warning = why + "; pod metadata is off";
    }
    return std::nullopt;
  }
  return t;
}

std::optional<std::string> PodSelectorFromFlags(std::vector<std::string> namespaces,
                                                const std::vector<std::string>& labels,
                                                std::vector<std::string> workloads,
                                                std::vector<std::string> containers,
                                                PodSelector* out) {
  PodSelector s;
  s.namespaces = std::move(namespaces);
  s.workloads = std::move(workloads);
  s.containers = std::move(containers);
  for (const auto& l : labels) {
    const size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      return "--k8s-label must be KEY=VALUE, got \"" + l + "\"";
    }
    s.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  *out = std::move(s);
  return std::nullopt;
}

std::optional<std::string> ParseResourceAttributes(
    std::string_view value, std::vector<std::pair<std::string, std::string>>* out) {
  std::vector<std::pair<std::string, std::string>> attrs;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    std::string_view item = Trim(value.substr(pos, comma == std::string_view::npos ? comma : comma - pos));
    pos = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || Trim(item.substr(0, eq)).empty()) {
      return "OTEL_RESOURCE_ATTRIBUTES: \"" + std::string(item) + "\" is not key=value";
    }
    std::string decoded;
    std::string_view raw = Trim(item.substr(eq + 1));
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '%') {
        const int hi = i + 2 < raw.size() ? HexDigit(raw[i + 1]) : -1;
        const int lo = i + 2 < raw.size() ? HexDigit(raw[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          return "OTEL_RESOURCE_ATTRIBUTES: bad percent-encoding in \"" + std::string(item) + "\"";
        }
        decoded += static_cast<char>(hi * 16 + lo);
        i += 2;
      } else {
        decoded += raw[i];
      }
    }
    attrs.emplace_back(std::string(Trim(item.substr(0, eq))), std::move(decoded));
  }
  *out = std::move(attrs);
  return std::nullopt;
}

}  // namespace hoptrace
