// The executable file mappings of a running process (/proc/PID/maps): its
// program and the shared libraries it has loaded, opened through
// /proc/PID/root so that a process in another mount namespace (a container)
// is read as it sees its files.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hoptrace::uprobes {

struct Mapping {
  uint64_t start = 0, end = 0;  // virtual addresses in the process
  uint64_t file_offset = 0;     // offset of `start` in the file
  uint64_t dev = 0, inode = 0;  // identity of the file (as the kernel names it)
  std::string path;             // as the process sees it ("/usr/lib/.../libc.so.6")
};

// Executable, file-backed mappings; empty if the process is gone.
std::vector<Mapping> ExecutableMappings(pid_t pid);
// Parses the text of a maps file (for tests).
std::vector<Mapping> ParseMaps(const std::string& text);

// The path through which the agent opens a file the process maps.
std::string HostPath(pid_t pid, const std::string& path);

// The process's executable as it sees it (readlink /proc/PID/exe); empty if gone.
std::string ExecutablePath(pid_t pid);

// The address in the process of an offset in the file it maps at path, or 0
// if no mapping holds it.
uint64_t AddressOf(const std::vector<Mapping>& maps, const std::string& path, uint64_t file_offset);

}  // namespace hoptrace::uprobes
