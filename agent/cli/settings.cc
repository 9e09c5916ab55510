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
        Expect(v, "propagation", {"cgroup", "enabled", "fionread_guard"});
        if (v["cgroup"]) run_->propagation_cgroup = v["cgroup"].as<std::string>();
        if (v["enabled"]) run_->propagation = v["enabled"].as<bool>();
        if (v["fionread_guard"]) run_->fionread_guard = v["fionread_guard"].as<std::string>();
      } else if (key == "probes") {
        Probes(v);
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

  void Capture(const YAML::Node& v) {
    Expect(v, "capture", {"payload_bytes", "ringbuf_mb", "redact_query", "shed_under_load"});
    if (v["payload_bytes"]) run_->payload_bytes = v["payload_bytes"].as<uint32_t>();
    if (v["ringbuf_mb"]) run_->ringbuf_mb = v["ringbuf_mb"].as<uint32_t>();
    if (v["redact_query"]) run_->redact_query = v["redact_query"].as<bool>();
    if (v["shed_under_load"]) run_->shed = v["shed_under_load"].as<bool>();
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
