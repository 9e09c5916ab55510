// Keeps the probes of every traced process attached: resolves the user's
// specs in a process when it is first traced (at start, or at its exec),
// again when it maps new executable files (dlopen; checked by Rescan, a
// read of /proc/PID/maps per probed process, at most once a second), and
// lets them go when it exits. The attaching itself is the loader's
// (agent/kernel/uprobe_loader.h), behind UprobeAttacher: this code never
// touches libbpf.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "uprobes/cpython/cpython_runtime.h"
#include "uprobes/probe_resolver.h"

namespace hoptrace::uprobes {

// = enum hu_site_kind
enum class SiteKind : uint16_t {
  kEntry = 1, kReturn = 2, kThrow = 3, kCatch = 4, kPyEntry = 5, kPyReturn = 6,
  kPyLineHolder = 7  // holds python:line's semaphore (cpython/python_functions.h); never hit
};

// = HU_FUNCTION_PY: the bit a Python function's id carries.
inline constexpr uint32_t kPythonFunctionBit = 0x80000000u;

struct AttachSite {
  std::string host_path;  // the file, as the agent opens it
  uint64_t file_offset = 0;
  uint64_t address = 0;  // in the process
  uint32_t function_id = 0;
  SiteKind kind = SiteKind::kEntry;
  bool go = false;
  uint64_t ref_ctr_offset = 0;  // USDT: the semaphore the kernel counts attached probes in
};

// A Python function wanted in a process: its id, co_name and file suffix.
struct PythonWant {
  uint32_t function_id = 0;  // with kPythonFunctionBit
  std::string name;
  std::string file;  // as the spec gives it ("app.py")
};

// What the kernel needs to filter a process's Python calls.
struct PythonProcess {
  uint64_t runtime = 0;  // _PyRuntime
  cpython::Offsets offsets{};
  int entry_file_reg = 0, entry_name_reg = 0, return_file_reg = 0, return_name_reg = 0;
  std::vector<PythonWant> wants;
};

class UprobeAttacher {
 public:
  virtual ~UprobeAttacher() = default;
  // Attaches every site in process pid; returns how many attached and says
  // why others did not in *errors.
  virtual size_t Attach(pid_t pid, const std::vector<AttachSite>& sites,
                        std::vector<std::string>* errors) = 0;
  // Removes every probe of the process and what the kernel kept for it.
  virtual void Detach(pid_t pid) = 0;
  // Tells the kernel which Python functions to time in process pid (before
  // its USDT sites are attached). false and *error if it cannot.
  virtual bool SetPython(pid_t /*pid*/, const PythonProcess& /*py*/, std::string* error) {
    *error = "Python functions are not supported here";
    return false;
  }
};

// What a function id stands for (spans' code.function.name and where).
struct FunctionInfo {
  std::string name;    // display name: "Shop::validate", "main.handleLogin"
  std::string symbol;  // the ELF symbol
  std::string file;    // the file holding it, as the process names it
  bool go = false;
  std::string source_file{};  // DWARF: code.file.path, empty if unknown
  int source_line = 0;      // code.line.number, 0 if unknown
  bool python = false;      // a Python function: name is co_name, file the spec's suffix
};

class ProbeManager {
 public:
  ProbeManager(std::vector<ProbeSpec> specs, UprobeAttacher* attacher);

  // Does a spec name this process (its program or a file it maps)?
  bool Wants(pid_t pid, const ProcessNames& names) const;
  // Does a spec name a shared library ("libshop.so*")? Then every traced
  // process is followed (OnProcess), in case it loads it later.
  bool NamesLibraries() const;
  // Resolves and attaches what is new in the process. Returns the probes
  // that matched there (also the ones attached before).
  ResolveResult OnProcess(pid_t pid, const ProcessNames& names);
  void OnExit(pid_t pid);
  // The process exec'd at exec_ns (CLOCK_MONOTONIC, the kernel's event
  // time). What was resolved before that is its old program's: forgotten
  // as at exit (OnProcess resolves the new one). What was resolved after
  // it is the new program's already (the agent reads /proc later than the
  // kernel reports: a launcher's exec event can be read when /proc shows
  // the program it exec'd into): kept, not attached twice. true if it was
  // forgotten.
  bool OnExec(pid_t pid, uint64_t exec_ns);
  bool Knows(pid_t pid) const { return procs_.count(pid) != 0; }
  // Processes whose mapped files changed since they were resolved (dlopen)
  // are resolved again. young_only: only processes first seen less than
  // kYoung ago, which are still mapping their libraries (at exec, only the
  // program and the dynamic loader are there): call that often (every
  // 20 ms), the full rescan about once a second.
  void Rescan(bool young_only = false);
  static constexpr std::chrono::milliseconds kYoung{2000};

  const FunctionInfo* Function(uint32_t id) const;
  // Specs that matched nothing in any process so far, for one warning each.
  std::vector<std::string> Unmatched() const;
  // Python functions are attached in these processes (a uprobe on every
  // Python call there: what that costs is said once in the log).
  const std::set<pid_t>& python_processes() const { return python_pids_; }
  size_t processes() const { return procs_.size(); }
  size_t sites_attached() const { return sites_attached_; }

 private:
  struct Proc {
    std::chrono::steady_clock::time_point first_seen;
    uint64_t resolved_ns = 0;  // CLOCK_MONOTONIC before its first /proc reads
    std::string exe;           // the program it was resolved in
    ProcessNames names;
    std::set<std::string> files;  // the mapped files it was resolved with
    std::set<uint64_t> addresses;  // attached
    bool python_tried = false;     // Python specs looked at (once per process image)
    // A Python spec names it but no CPython is mapped yet: looked for again
    // while it is young and maps files, said if still none after.
    bool python_pending = false;
  };
  bool Young(const Proc& proc, std::chrono::steady_clock::time_point now) const {
    return now - proc.first_seen <= kYoung;
  }
  uint32_t FunctionId(const ProcessProbe& p);
  uint32_t PythonFunctionId(const ProbeSpec& spec);
  void AttachPython(pid_t pid, const ProcessNames& names, Proc& proc);
  std::set<std::string> MappedFiles(pid_t pid) const;

  ProbeResolver resolver_;
  ProbeResolver exception_resolver_;  // __cxa_throw, __cxa_begin_catch: where C++ probes are
  UprobeAttacher* attacher_;
  std::map<pid_t, Proc> procs_;
  std::map<std::tuple<std::string, std::string>, uint32_t> ids_;  // (file, symbol)
  std::vector<FunctionInfo> functions_;                            // index = id - 1
  std::vector<size_t> matched_;                                    // per spec, ever
  std::vector<ProbeSpec> py_specs_;                                // PROGRAM:FILE.py:FUNCTION
  std::vector<size_t> py_matched_;                                 // processes, per Python spec
  std::set<pid_t> python_pids_;
  bool python_cost_said_ = false;
  size_t sites_attached_ = 0;
};

}  // namespace hoptrace::uprobes
