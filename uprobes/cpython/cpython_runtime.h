// CPython in a running process, for the Python runtime context
// (bpf/runtime_python.bpf.h): the file that holds the interpreter (the
// executable, static libpython, or libpython3.X.so), its version (the
// exported Py_Version, 3.11+), where _PyRuntime is in the process, and the
// structure offsets of that version. Found by dynamic symbols only: Debian's
// python3.11 is stripped but exports _PyRuntime, Py_Version and
// PyContext_CopyCurrent.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hoptrace::uprobes::cpython {

// Offsets (bytes, x86_64) of the fields the kernel side reads: the current
// thread state, the main interpreter's thread list and a thread state's
// link, native thread id and current Context.
struct Offsets {
  uint32_t rt_tstate_current;    // _PyRuntime.gilstate.tstate_current
  uint32_t rt_interp_main;       // _PyRuntime.interpreters.main
  uint32_t interp_threads_head;  // PyInterpreterState.threads.head
  uint32_t ts_next;              // PyThreadState.next
  uint32_t ts_native_tid;        // PyThreadState.native_thread_id
  uint32_t ts_context;           // PyThreadState.context
  // Python function probes (bpf/uprobe_python.bpf.h): the frame being run,
  // its code's flags (generators), and the exception being raised.
  uint32_t ts_cframe;       // PyThreadState.cframe
  uint32_t cframe_current;  // _PyCFrame.current_frame
  uint32_t frame_code;      // _PyInterpreterFrame.f_code
  uint32_t code_flags;      // PyCodeObject.co_flags
  uint32_t ts_curexc_type;  // PyThreadState.curexc_type
  uint32_t type_name;       // PyTypeObject.tp_name
  // Futures handed to a pool (bpf/runtime_python.bpf.h, ht_py_lock_take):
  // the names of the functions running.
  uint32_t frame_previous;  // _PyInterpreterFrame.previous
  uint32_t code_name;       // PyCodeObject.co_name
  uint32_t ascii_length;    // PyASCIIObject.length
  uint32_t ascii_data;      // sizeof(PyASCIIObject): a compact ASCII str's characters
  uint32_t code_firstlineno;  // PyCodeObject.co_firstlineno (spans' code.line.number)
};

// The one table: per CPython 3.minor. nullopt for a version not in it.
std::optional<Offsets> OffsetsFor(int major, int minor);

// The function whose return binds a copied Context (a uretprobe: CPython's C
// code neither throws nor moves its stack).
inline constexpr std::string_view kCopyCurrentSymbol = "PyContext_CopyCurrent";
// A Future's lock is made (uretprobe) and taken (uprobe at entry): see
// "Futures handed to a thread pool" in bpf/runtime_python.bpf.h.
inline constexpr std::string_view kLockNewSymbol = "PyThread_allocate_lock";
inline constexpr std::string_view kLockTakeSymbol = "PyThread_acquire_lock_timed";

struct Interpreter {
  std::string path;       // as the process maps it
  std::string open_path;  // through /proc/PID/root, for the agent
  int major = 0, minor = 0, micro = 0;
  uint64_t copy_current_offset = 0;  // file offset of PyContext_CopyCurrent
  uint64_t lock_new_offset = 0;      // ... of PyThread_allocate_lock, 0 if not exported
  uint64_t lock_take_offset = 0;     // ... of PyThread_acquire_lock_timed, 0 if not exported
  uint64_t runtime_address = 0;      // _PyRuntime in the process
  Offsets offsets{};
  std::string version() const;
};

// The CPython that process pid runs; nullopt and *why when it runs none, or
// one without the symbols, or a version not in the table.
std::optional<Interpreter> FindInterpreter(pid_t pid, std::string* why);

}  // namespace hoptrace::uprobes::cpython
