// From settings to uprobes/: the probe specs of `run` and `check`, and the
// names a process is known by for matching their PROGRAM part.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "agent/process/process_registry.h"
#include "uprobes/probe_resolver.h"

namespace hoptrace {

// nullopt, or a message naming the spec that is malformed.
std::optional<std::string> ParseProbeSpecs(const std::vector<std::string>& texts,
                                           std::vector<uprobes::ProbeSpec>* out);

// The names --exe matches a process by, for a PROGRAM that is a name.
uprobes::ProcessNames NamesOf(const ProcessInfo& info);

// The --exe names that select the processes the specs name: a PROGRAM
// name, or the file name of a PROGRAM path.
std::vector<std::string> ExeNamesOf(const std::vector<uprobes::ProbeSpec>& specs);

}  // namespace hoptrace
