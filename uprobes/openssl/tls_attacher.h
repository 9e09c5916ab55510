// Which TLS library files carry our uprobes, in which processes, as selected
// processes come and go: a file's probes are attached for each selected
// process that maps it, when the process is seen, and detached when it exits
// or execs. Attachments are per process (the kernel's uprobe filter is the
// process's mm): a process that is not selected but maps the same libssl
// (any other HTTPS client on the node) gets no breakpoint and pays nothing.
//
// Processes are found at start-up, at exec and fork (the capture's identity
// events) and at their first traced connection; a library loaded later
// (dlopen, or the dynamic loader still at work when the exec event arrives)
// is found by rescans of processes that have none yet, soon after they
// start and then every few seconds.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "uprobes/openssl/tls_libraries.h"

namespace hoptrace::tls {

// Where the attachments are made (agent/kernel/tls_uprobes.h; a fake in tests).
class UprobeTarget {
 public:
  virtual ~UprobeTarget() = default;
  // Attaches the probe set to the functions lib defines, in process pid
  // only. False and *error when nothing could be attached.
  virtual bool Attach(const TlsLibrary& lib, pid_t pid, std::string* error) = 0;
  virtual void Detach(const TlsLibrary& lib, pid_t pid) = 0;
};

struct TlsAttacherStats {
  uint64_t attached = 0;        // (file, process) attachments made, ever
  uint64_t detached = 0;
  uint64_t attach_failed = 0;   // attachments that could not be made
  uint64_t not_probeable = 0;   // files without the functions we need
  uint64_t scans = 0;           // /proc/PID/maps reads
};

class TlsAttacher {
 public:
  using Finder = std::function<std::vector<TlsLibrary>(pid_t)>;
  explicit TlsAttacher(UprobeTarget* target, Finder finder = FindTlsLibraries);

  // A selected process: attach what it maps. now_ns: CLOCK_MONOTONIC.
  // new_image: it exec'd, so the files it mapped before are not its own
  // any more (they are released after the new ones are taken, so that a
  // file both images use stays attached); else only new files are added.
  void AddProcess(pid_t pid, uint64_t now_ns, bool new_image = false);
  // A child forked by a selected process maps what its parent maps: no scan,
  // the parent's files are attached for it too.
  void AddChild(pid_t parent, pid_t child, uint64_t now_ns);
  // The process is gone (or execs into another program: AddProcess again).
  void RemoveProcess(pid_t pid);
  // Rescans processes without a TLS library whose time has come.
  void Tick(uint64_t now_ns);

  size_t attached_files() const { return files_.size(); }
  size_t attachments() const;  // (file, process) pairs attached now
  size_t processes() const { return procs_.size(); }
  const TlsAttacherStats& stats() const { return stats_; }

 private:
  struct File {
    TlsLibrary lib;
    std::set<pid_t> users;
  };
  struct Proc {
    std::vector<uint64_t> files;  // keys of files_
    uint64_t next_scan_ns = 0;    // 0: no more scans
    int scans = 0;
  };
  static uint64_t KeyOf(const TlsLibrary& lib) { return lib.dev << 40 ^ lib.inode; }

  void Scan(pid_t pid, Proc* proc, uint64_t now_ns);
  void Release(pid_t pid, const std::vector<uint64_t>& files);
  void Use(pid_t pid, Proc* proc, const TlsLibrary& lib);
  void ScheduleNext(Proc* proc, uint64_t now_ns);

  UprobeTarget* target_;
  Finder finder_;
  std::map<uint64_t, File> files_;
  std::map<pid_t, Proc> procs_;
  // Files whose first attachment failed or that lack the functions: not
  // retried (a file that fails once fails for every process).
  std::set<uint64_t> failed_;
  TlsAttacherStats stats_;
};

}  // namespace hoptrace::tls
