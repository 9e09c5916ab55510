// Children that a selected process already had when the agent started: the
// kernel program follows forks from then on, but nginx's or gunicorn's
// workers are usually older than the agent.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace hoptrace {

// pids plus every live descendant of them, read from <proc_root>/*/stat.
// Sorted, without duplicates.
std::vector<pid_t> WithDescendants(const std::vector<pid_t>& pids,
                                   const std::string& proc_root = "/proc");

}  // namespace hoptrace
