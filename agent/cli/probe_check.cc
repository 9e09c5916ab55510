#include "agent/cli/probe_check.h"

#include <spdlog/spdlog.h>

#include "agent/cli/probe_specs.h"
#include "agent/process/process_registry.h"
#include "uprobes/cpython/python_functions.h"
#include "uprobes/probe_resolver.h"
#include "uprobes/process_maps.h"

namespace hoptrace {

int PrintProbeMatches(const std::vector<pid_t>& pids, const std::vector<std::string>& texts,
                      FILE* out) {
  std::vector<uprobes::ProbeSpec> specs;
  if (auto err = ParseProbeSpecs(texts, &specs)) {
    spdlog::error("{}", *err);
    return 2;
  }
  std::vector<uprobes::ProbeSpec> native, python;
  std::vector<size_t> native_index, python_index;
  for (size_t i = 0; i < specs.size(); ++i) {
    (specs[i].python() ? python : native).push_back(specs[i]);
    (specs[i].python() ? python_index : native_index).push_back(i);
  }
  uprobes::ProbeResolver resolver(native);
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
      ++matched[native_index[p.spec]];
    }
    for (const auto& problem : r.problems) std::fprintf(out, "  not probed: %s\n", problem.c_str());
    // Python functions: the interpreter's USDT probes, if it has them. Which
    // files and functions the process will run is only seen when it calls
    // them (the kernel compares names at each call).
    std::vector<size_t> mine;
    const std::string exe = uprobes::ExecutablePath(pid);
    for (size_t j = 0; j < python.size(); ++j) {
      if (uprobes::SpecNamesProcess(python[j], pid, exe, NamesOf(*info))) mine.push_back(j);
    }
    if (mine.empty()) continue;
    std::string why;
    auto py = uprobes::cpython::FindPythonProbes(pid, &why);
    if (!py) {
      std::fprintf(out, "  not probed: Python functions: %s\n", why.c_str());
      continue;
    }
    for (size_t j : mine) {
      std::fprintf(out,
                   "  %-40s %s+0x%llx  USDT python:function__entry/return, semaphore 0x%llx  "
                   "python %s  [%s]\n",
                   (python[j].py_file + ":" + python[j].function).c_str(),
                   py->interpreter.path.c_str(),
                   static_cast<unsigned long long>(py->entry.file_offset),
                   static_cast<unsigned long long>(py->entry.semaphore_address),
                   py->interpreter.version().c_str(), python[j].text.c_str());
      ++matched[python_index[j]];
    }
    std::fprintf(out,
                 "  note: a Python function probe traps on EVERY Python call of the process "
                 "(probed or not: microseconds each) and runs every bytecode instruction "
                 "through CPython's slower tracing dispatch; names are compared in the kernel "
                 "at each call\n");
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
