// The Python runtime context (bpf/runtime_python.bpf.h) for the processes
// the agent follows: for each one that runs a CPython of the offset table
// (uprobes/cpython), the capture object's ht_py_ctx_copied uretprobe on its
// PyContext_CopyCurrent, attached to that process only, and its entry in
// ht_py_procs; with them, the probes that follow Futures handed to a thread
// pool (PyThread_allocate_lock, PyThread_acquire_lock_timed). A process
// without a known CPython keeps the thread model (counted).
// Destroying this detaches everything; it must go before the BpfLoader.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "agent/kernel/bpf_loader.h"
#include "uprobes/cpython/cpython_runtime.h"

struct bpf_link;

namespace hoptrace {

struct PythonRuntimeCounters {
  uint64_t processes = 0;     // followed with contexts
  uint64_t thread_model = 0;  // selected, no usable CPython: thread model
  uint64_t copy_inherited = 0, copy_accepted = 0, copy_unbound = 0;
  uint64_t syscall_set = 0, syscall_unbound = 0;
  uint64_t tstate_walked = 0, tstate_missing = 0;
  uint64_t lock_bound = 0, future_taken = 0, future_done = 0, lock_foreign = 0;
  uint64_t syscall_handed = 0;
};

class PythonRuntime {
 public:
  explicit PythonRuntime(const BpfLoader& loader);
  ~PythonRuntime();
  PythonRuntime(const PythonRuntime&) = delete;
  PythonRuntime& operator=(const PythonRuntime&) = delete;

  // Follows pid's Contexts when it runs a known CPython; false (and the
  // thread model) otherwise. *model says which, for logs and `check`.
  bool Follow(pid_t pid, std::string* model);
  // The process exited or exec'd: detach and forget it.
  void Forget(pid_t pid);
  bool Follows(pid_t pid) const { return links_.count(pid) != 0; }
  PythonRuntimeCounters ReadCounters() const;

 private:
  // The uprobes' links of one process; Futures' probes are optional.
  struct Links {
    bpf_link* copy = nullptr;
    bpf_link* lock_new = nullptr;
    bpf_link* lock_take = nullptr;
  };
  // Attaches the Futures' probes; "" or why not.
  std::string AttachFutures(pid_t pid, const uprobes::cpython::Interpreter& in, Links* l);
  // ht_py_present: how many processes ht_py_procs holds (bpf/runtime_python.bpf.h).
  void PublishCount(size_t n) const;

  const BpfLoader& loader_;
  std::map<pid_t, Links> links_;
  uint64_t thread_model_ = 0;
};

// The model that serves pid's Python requests, in one line for `hoptrace
// check --pid`: "python contexts (CPython 3.11.2, /usr/bin/python3.11)" or
// "thread model (why)". Empty if pid runs no Python.
std::string PythonModelOf(pid_t pid);

}  // namespace hoptrace
