#include "agent/process/process_tree.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace hoptrace {
namespace {

// The parent pid from a /proc/<pid>/stat line: "pid (comm) state ppid ...".
// comm may hold spaces and parentheses, so parse after the last ')'.
bool ParentOf(const std::string& stat, pid_t* ppid) {
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  long parent = 0;
  if (!(rest >> state >> parent)) return false;
  *ppid = static_cast<pid_t>(parent);
  return true;
}

}  // namespace

std::vector<pid_t> WithDescendants(const std::vector<pid_t>& pids, const std::string& proc_root) {
  std::unordered_multimap<pid_t, pid_t> children;
  if (DIR* dir = opendir(proc_root.c_str())) {
    while (dirent* e = readdir(dir)) {
      char* end = nullptr;
      const long pid = strtol(e->d_name, &end, 10);
      if (*end != '\0' || pid <= 0) continue;
      std::ifstream f(proc_root + "/" + e->d_name + "/stat");
      std::string line;
      pid_t ppid = 0;
      if (std::getline(f, line) && ParentOf(line, &ppid)) {
        children.emplace(ppid, static_cast<pid_t>(pid));
      }
    }
    closedir(dir);
  }
  std::vector<pid_t> out(pids.begin(), pids.end());
  for (size_t i = 0; i < out.size(); ++i) {  // breadth-first; out grows as we go
    auto [first, last] = children.equal_range(out[i]);
    for (auto it = first; it != last; ++it) {
      if (std::find(out.begin(), out.end(), it->second) == out.end()) out.push_back(it->second);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace hoptrace
