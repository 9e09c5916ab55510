// `hoptrace check --pid N --probe PROGRAM:FUNCTION`: what each probe spec
// matches in the process's files, and whether each match can be probed.
// Reads ELF files and /proc only: nothing is loaded into the kernel.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <string>
#include <vector>

namespace hoptrace {

// Returns the exit code: 0 when every spec matched a probeable function in
// some process, 1 when one did not, 2 when a spec is malformed.
int PrintProbeMatches(const std::vector<pid_t>& pids, const std::vector<std::string>& specs,
                      FILE* out);

}  // namespace hoptrace
