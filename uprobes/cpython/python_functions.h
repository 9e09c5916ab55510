// Python functions as probes (`--probe PROGRAM:FILE.py:FUNCTION`): where
// the CPython a process runs reports every Python call, i.e. its USDT
// probes python:function__entry and python:function__return (Debian's
// python3.11 has them; a CPython built without --with-dtrace has none), the
// probes' semaphores, the registers their filename and funcname arguments
// are in, and the structure offsets bpf/uprobe_python.bpf.h reads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "uprobes/cpython/cpython_runtime.h"

namespace hoptrace::uprobes::cpython {

struct UsdtSite {
  uint64_t file_offset = 0;     // where the uprobe attaches
  uint64_t address = 0;         // the same place in the process
  uint64_t semaphore_offset = 0;  // ref_ctr_offset (file offset of the semaphore)
  uint64_t semaphore_address = 0;  // in the process: tests and `check` read it
  int file_reg = -1, name_reg = -1;  // pt_regs offsets of arguments 1 and 2
};

// CPython 3.11 reports function__entry only from its tracing dispatch
// (ceval.c: `opcode |= cframe.use_tracing OR_DTRACE_LINE`, then DO_TRACING
// calls DTRACE_FUNCTION_ENTRY at RESUME), which runs while a profiler is set
// or python:line's semaphore is non-zero. hoptrace raises that semaphore the
// way the kernel raises the others: a uprobe whose ref_ctr_offset is it,
// placed on a function that never runs in a healthy process
// (Py_FatalError), so no line is ever trapped. What this costs every
// bytecode instruction: README "What Python probes cost".
struct LineSemaphoreHolder {
  uint64_t file_offset = 0, address = 0;  // Py_FatalError's entry
  uint64_t semaphore_offset = 0;           // python:line's semaphore
  uint64_t semaphore_address = 0;
};

struct PythonProbes {
  Interpreter interpreter;
  UsdtSite entry, exit;
  LineSemaphoreHolder line;
};

// The function probes of the CPython process pid runs; nullopt and *why
// when it runs none, one without USDT probes, or a version not in the table.
std::optional<PythonProbes> FindPythonProbes(pid_t pid, std::string* why);

}  // namespace hoptrace::uprobes::cpython
