// Loads bpf/uprobe_trace.bpf.c next to the capture object (sharing its ring
// buffer, so call events arrive in order with the data events) and attaches
// its programs where uprobes/ says: per process (a uprobe bound to a pid
// fires only in that process), at explicit file offsets. Destroying the
// loader detaches everything; nothing is pinned.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "uprobe_trace.h"
#include "uprobes/probe_manager.h"

struct uprobe_trace_bpf;
struct bpf_link;

namespace hoptrace {

class BpfLoader;

struct UprobeLoaderOptions {
  uint64_t min_duration_ns = 100'000;  // shorter calls are counted, not sent
  uint32_t max_sites = 65536;          // probed addresses, all processes together
  uint32_t max_stacks = 16384;         // threads / goroutines with a call open
};

struct UprobeCounters {
  uint64_t calls = 0, short_calls = 0, abandoned = 0, too_deep = 0, unmatched = 0,
           ringbuf_drops = 0, stack_full = 0;
  uint64_t py_seen = 0, py_generator = 0, py_no_frame = 0;  // Python calls (USDT)
  uint64_t go_restarts = 0;  // Go entries run again on a grown stack (one call)
};

class UprobeLoader : public uprobes::UprobeAttacher {
 public:
  // Open, share the capture's ring buffer, load, attach the thread-exit
  // tracepoint. Throws StartupError saying why.
  static std::unique_ptr<UprobeLoader> Start(const UprobeLoaderOptions& options,
                                             const BpfLoader& capture);
  ~UprobeLoader() override;
  UprobeLoader(const UprobeLoader&) = delete;
  UprobeLoader& operator=(const UprobeLoader&) = delete;

  size_t Attach(pid_t pid, const std::vector<uprobes::AttachSite>& sites,
                std::vector<std::string>* errors) override;
  void Detach(pid_t pid) override;
  bool SetPython(pid_t pid, const uprobes::PythonProcess& py, std::string* error) override;

  // The open calls of a thread right now (the kernel's hu_stacks entry).
  std::optional<hu_stack> ReadStack(pid_t pid, uint64_t id) const;
  UprobeCounters ReadCounters() const;
  size_t links() const;

 private:
  UprobeLoader() = default;
  uprobe_trace_bpf* skel_ = nullptr;
  std::map<pid_t, std::vector<bpf_link*>> links_;
  std::map<pid_t, std::vector<uint64_t>> addresses_;  // hu_sites keys per process
  std::map<pid_t, std::vector<hu_py_name_key>> py_names_;  // hu_py_names keys per process
};

}  // namespace hoptrace
