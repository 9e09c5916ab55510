#include "agent/k8s/cgroup_namespace.h"

#include <dirent.h>

#include <fstream>
#include <string>
#include <vector>

namespace hoptrace {

std::string NormalizeCgroupPath(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (std::string_view p : parts) {
    out += '/';
    out += p;
  }
  return out.empty() ? "/" : out;
}

namespace {

bool HoldsPid(const std::string& dir, pid_t pid) {
  std::ifstream procs(dir + "/cgroup.procs");
  pid_t p = 0;
  while (procs >> p) {
    if (p == pid) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> FindNamespaceRoot(const std::string& host_root, pid_t self,
                                             std::string_view own_path, size_t max_dirs) {
  // Breadth first: the agent's cgroup is a few levels down.
  std::vector<std::string> queue{""};
  size_t seen = 0;
  std::string own_host;
  for (size_t i = 0; i < queue.size() && seen < max_dirs; ++i) {
    const std::string rel = queue[i];
    ++seen;
    if (HoldsPid(host_root + rel, self)) {
      own_host = rel.empty() ? "/" : rel;
      break;
    }
    DIR* dir = opendir((host_root + rel).c_str());
    if (dir == nullptr) continue;
    while (dirent* e = readdir(dir)) {
      if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
      queue.push_back(rel + "/" + e->d_name);
    }
    closedir(dir);
  }
  if (own_host.empty()) return std::nullopt;
  // own_host ends with own_path (the agent's place inside its namespace).
  const std::string own = NormalizeCgroupPath(own_path);
  if (own == "/") return own_host;
  if (own_host.size() < own.size() ||
      own_host.compare(own_host.size() - own.size(), own.size(), own) != 0) {
    return std::nullopt;
  }
  const std::string root = own_host.substr(0, own_host.size() - own.size());
  return root.empty() ? "/" : root;
}

}  // namespace hoptrace
