#include "agent/cli/probe_specs.h"

namespace hoptrace {

std::optional<std::string> ParseProbeSpecs(const std::vector<std::string>& texts,
                                           std::vector<uprobes::ProbeSpec>* out) {
  out->clear();
  for (const std::string& t : texts) {
    std::string error;
    auto spec = uprobes::ParseProbeSpec(t, &error);
    if (!spec) return error;
    out->push_back(std::move(*spec));
  }
  return std::nullopt;
}

uprobes::ProcessNames NamesOf(const ProcessInfo& info) {
  return uprobes::ProcessNames{{info.executable_name, info.comm, info.service_name}};
}

std::vector<std::string> ExeNamesOf(const std::vector<uprobes::ProbeSpec>& specs) {
  std::vector<std::string> names;
  for (const auto& s : specs) {
    std::string name = s.program;
    if (s.program_is_path()) name = name.substr(name.rfind('/') + 1);
    // A glob or a library names no program to select.
    if (name.find('*') != std::string::npos || name.find(".so") != std::string::npos) continue;
    names.push_back(name);
  }
  return names;
}

}  // namespace hoptrace
