#include "uprobes/process_maps.h"

#include <sys/sysmacros.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace hoptrace::uprobes {

std::vector<Mapping> ParseMaps(const std::string& text) {
  std::vector<Mapping> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    // 7f1c2a000000-7f1c2a1b5000 r-xp 00028000 08:01 1835023   /usr/lib/x86_64-linux-gnu/libc.so.6
    uint64_t start, end, offset, inode;
    unsigned major, minor;
    char perms[5] = {};
    int path_at = 0;
    if (sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n", &start,
               &end, perms, &offset, &major, &minor, &inode, &path_at) < 7) {
      continue;
    }
    if (perms[2] != 'x' || inode == 0 || path_at <= 0) continue;
    std::string path = line.substr(static_cast<size_t>(path_at));
    if (path.empty() || path[0] != '/') continue;
    if (path.ends_with(" (deleted)")) continue;  // replaced on disk: nothing to open
    out.push_back({start, end, offset, makedev(major, minor), inode, std::move(path)});
  }
  return out;
}

std::vector<Mapping> ExecutableMappings(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
  if (!f) return {};
  std::stringstream text;
  text << f.rdbuf();
  return ParseMaps(text.str());
}

std::string HostPath(pid_t pid, const std::string& path) {
  return "/proc/" + std::to_string(pid) + "/root" + path;
}

std::string ExecutablePath(pid_t pid) {
  char buf[4096];
  ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string p(buf, static_cast<size_t>(n));
  if (p.ends_with(" (deleted)")) p.resize(p.size() - 10);
  return p;
}

uint64_t AddressOf(const std::vector<Mapping>& maps, const std::string& path, uint64_t file_offset) {
  for (const Mapping& m : maps) {
    if (m.path != path) continue;
    if (file_offset >= m.file_offset && file_offset < m.file_offset + (m.end - m.start)) {
      return m.start + (file_offset - m.file_offset);
    }
  }
  return 0;
}

}  // namespace hoptrace::uprobes
