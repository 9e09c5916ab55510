// Cgroup paths across cgroup namespaces. /proc/<pid>/cgroup writes a path
// relative to the reader's cgroup namespace: an agent in a container of its
// own (containerd's default on cgroup v2) reads a host process's path as
// "/../../kubepods.slice/...", which names no directory under its view of the
// host's hierarchy (the chart mounts it at /host/sys/fs/cgroup). Knowing where
// its own namespace's root is in that hierarchy turns such paths into host
// paths.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace hoptrace {

// "a/b/../c" -> "/a/c"; ".." above the root stays at the root (as the kernel
// resolves it). Always absolute, no trailing slash ("/" for the root).
std::string NormalizeCgroupPath(std::string_view path);

// Where the agent's cgroup namespace root is in the hierarchy mounted at
// host_root (the host's root cgroup): found by the directory whose
// cgroup.procs holds `self`, less the agent's own path in its namespace
// (own_path, the "0::" line of /proc/self/cgroup). Walks at most max_dirs
// directories. Nullopt when not found.
std::optional<std::string> FindNamespaceRoot(const std::string& host_root, pid_t self,
                                             std::string_view own_path,
                                             size_t max_dirs = 20000);

}  // namespace hoptrace
