// Turns probe specs into what the loader attaches in one process: for each
// matching function, the file to attach to, the entry's file offset and
// address, and the offsets and addresses of its return instructions.
//
// The program and every executable file it maps (shared libraries, also ones
// dlopen'ed later: call Resolve again) are searched. ELF files are read once
// per version: the cache is keyed by device, inode and mtime, so a binary
// replaced on disk is read again and a hundred processes of one binary cost
// one read.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "uprobes/elf_file.h"
#include "uprobes/source_location.h"
#include "uprobes/probe_spec.h"
#include "uprobes/return_sites.h"

namespace hoptrace::uprobes {

// One function to time in one process.
struct ProcessProbe {
  size_t spec = 0;        // index into the resolver's specs
  std::string function;   // display name (code.function.name)
  std::string symbol;     // the ELF symbol
  std::string file;       // the file as the process names it
  std::string host_path;  // the same file as the agent opens it (through /proc/PID/root)
  bool go = false;        // a Go function: goroutine stacks, no uretprobes anyway
  std::string source_file;  // DWARF: where it is defined (code.file.path); empty if unknown
  int source_line = 0;      // code.line.number; 0 if unknown
  uint64_t entry_offset = 0;  // file offsets: where uprobes attach
  std::vector<uint64_t> return_offsets;
  uint64_t entry_address = 0;  // the same places in the process's address space
  std::vector<uint64_t> return_addresses;
};

struct ResolveResult {
  std::vector<ProcessProbe> probes;
  std::vector<size_t> matches_per_spec;  // functions found per spec (0: warn)
  std::vector<std::string> problems;     // functions found but not probeable, and why
};

// Who a process is, for matching PROGRAM by name.
struct ProcessNames {
  std::vector<std::string> names;  // executable name, comm, service name
};

// Does the spec's PROGRAM name process pid (exe: its executable's path, as
// /proc/PID/exe gives it, every symlink resolved)? A path names it when it
// is that path or the same file through a symlink (/usr/bin/python3 is
// /usr/bin/python3.11), looked up in the process's root.
bool SpecNamesProcess(const ProbeSpec& spec, pid_t pid, const std::string& exe,
                      const ProcessNames& names);

class ProbeResolver {
 public:
  static constexpr size_t kMaxProbesPerSpec = 256;  // a glob cannot attach thousands
  static constexpr size_t kMaxCachedFiles = 128;

  // need_returns: functions are timed, so each needs its return
  // instructions; false for entry-only probes (__cxa_throw never returns).
  explicit ProbeResolver(std::vector<ProbeSpec> specs, bool need_returns = true)
      : specs_(std::move(specs)), need_returns_(need_returns) {}
  const std::vector<ProbeSpec>& specs() const { return specs_; }

  // Does any spec name this process (by path or name) or a file it maps?
  bool Wants(pid_t pid, const ProcessNames& names) const;
  ResolveResult Resolve(pid_t pid, const ProcessNames& names);

 private:
  struct CachedFile {
    std::shared_ptr<const ElfFile> elf;
    std::map<uint64_t, std::optional<ReturnSites>> returns;  // by function address
    std::map<uint64_t, std::string> return_errors;
    std::map<uint64_t, std::optional<SourceLocation>> sources;  // by function address
    std::unique_ptr<SourceIndex> dwarf;  // opened at the first lookup
  };
  // nullptr (and *error) if the file cannot be read as ELF.
  CachedFile* Load(const std::string& host_path, std::string* error);
  // The function's return instructions, disassembled once; nullptr when it
  // cannot be probed (why: cached->return_errors).
  const ReturnSites* ReturnsOf(CachedFile* cached, const ElfSymbol& fn);

  std::vector<ProbeSpec> specs_;
  bool need_returns_;
  std::map<std::tuple<uint64_t, uint64_t, int64_t>, CachedFile> cache_;  // dev, inode, mtime
};

}  // namespace hoptrace::uprobes
