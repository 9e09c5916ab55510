#include "agent/cli/probe_check.h"

#include <spdlog/spdlog.h>

#include "agent/cli/probe_specs.h"
#include "agent/process/process_registry.h"
#include "uprobes/probe_resolver.h"

namespace hoptrace {

int PrintProbeMatches(const std::vector<pid_t>& pids, const std::vector<std::string>& texts,
                      FILE* out) {
  std::vector<uprobes::ProbeSpec> specs;
  if (auto err = ParseProbeSpecs(texts, &specs)) {
    spdlog::error("{}", *err);
    return 2;
  }
  uprobes::ProbeResolver resolver(specs);
  ProcessRegistry processes("check");
  std::vector<size_t> matched(specs.size(), 0);
  for (pid_t pid : pids) {
    auto info = processes.Get(pid);
    const uprobes::ResolveResult r = resolver.Resolve(pid, NamesOf(*info));
    std::fprintf(out, "pid %d (%s): %zu function(s)\n", pid, info->service_name.c_str(),
                 r.probes.size());
    for (const auto& p : r.probes) {
      std::fprintf(out, "  %-40s %s+0x%llx  %zu return site(s)%s  [%s]\n", p.function.c_str(),
                   p.file.c_str(), static_cast<unsigned long long>(p.entry_offset),
                   p.return_offsets.size(), p.go ? "  go" : "", specs[p.spec].text.c_str());
      ++matched[p.spec];
    }
    for (const auto& problem : r.problems) std::fprintf(out, "  not probed: %s\n", problem.c_str());
  }
  int rc = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (matched[i] == 0) {
      std::fprintf(out, "warning: %s matched no function in the given process(es)\n",
                   specs[i].text.c_str());
      rc = 1;
    }
  }
  return rc;
}

}  // namespace hoptrace
