#include "uprobes/cpython/cpython_runtime.h"

#include <set>
#include <vector>

#include "uprobes/elf_file.h"
#include "uprobes/process_maps.h"

namespace hoptrace::uprobes::cpython {

std::optional<Offsets> OffsetsFor(int major, int minor) {
  // Measured against Debian 12's /usr/bin/python3.11 (3.11.2) and checked
  // on every run by tests/integration/test_python_runtime.py
  // (ChecksTheOffsetTableAgainstTheRealInterpreter), which reads the same
  // fields through ctypes. 3.11: Include/internal/pycore_runtime.h,
  // Include/cpython/pystate.h. 3.12 moved the current thread state to a
  // thread-local (_Py_tss_tstate): not supported yet.
  if (major == 3 && minor == 11) {
    return Offsets{.rt_tstate_current = 576,
                   .rt_interp_main = 48,
                   .interp_threads_head = 16,
                   .ts_next = 8,
                   .ts_native_tid = 160,
                   .ts_context = 224,
                   .ts_cframe = 56,
                   .cframe_current = 8,
                   .frame_code = 32,
                   .code_flags = 48,
                   .ts_curexc_type = 96,
                   .type_name = 24,
                   .frame_previous = 48,
                   .code_name = 120,
                   .ascii_length = 16,
                   .ascii_data = 48,
                   .code_firstlineno = 72};
  }
  return std::nullopt;
}

std::string Interpreter::version() const {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(micro);
}

namespace {

const ElfSymbol* Named(const std::vector<ElfSymbol>& syms, std::string_view name) {
  for (const ElfSymbol& s : syms) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace

std::optional<Interpreter> FindInterpreter(pid_t pid, std::string* why) {
  const std::vector<Mapping> maps = ExecutableMappings(pid);
  if (maps.empty()) {
    *why = "process gone";
    return std::nullopt;
  }
  std::set<std::string> seen;
  std::string exe = ExecutablePath(pid);
  std::vector<std::string> candidates;
  if (!exe.empty()) candidates.push_back(exe);
  for (const Mapping& m : maps) {
    const std::string base = m.path.substr(m.path.rfind('/') + 1);
    if (base.rfind("libpython3", 0) == 0) candidates.push_back(m.path);
  }
  *why = "no CPython (no PyContext_CopyCurrent and _PyRuntime symbols)";
  for (const std::string& path : candidates) {
    if (!seen.insert(path).second) continue;
    std::string err;
    const std::string open_path = HostPath(pid, path);
    // Exported symbols are all it needs (a big libpython's .symtab is slow to read).
    auto elf = ElfFile::Open(open_path, &err, SymbolTables::kDynamicOnly);
    if (!elf) continue;
    const ElfSymbol* copy = Named(elf->functions(), kCopyCurrentSymbol);
    const ElfSymbol* runtime = Named(elf->objects(), "_PyRuntime");
    if (!copy || !runtime) continue;
    Interpreter in;
    in.path = path;
    in.open_path = open_path;
    const ElfSymbol* version = Named(elf->objects(), "Py_Version");
    auto bytes = version ? elf->ReadFunction(*version) : std::nullopt;
    if (!bytes || bytes->size() < 4) {
      *why = path + ": CPython older than 3.11 (no Py_Version): not supported";
      return std::nullopt;
    }
    uint32_t hex = 0;
    for (int i = 3; i >= 0; --i) hex = (hex << 8) | (*bytes)[i];  // little-endian
    in.major = static_cast<int>((hex >> 24) & 0xff);
    in.minor = static_cast<int>((hex >> 16) & 0xff);
    in.micro = static_cast<int>((hex >> 8) & 0xff);
    auto offsets = OffsetsFor(in.major, in.minor);
    if (!offsets) {
      *why = path + ": CPython " + in.version() + " has no offsets in the table";
      return std::nullopt;
    }
    in.offsets = *offsets;
    // Load bias from where the process maps the function's code: 0 for a
    // non-PIE executable, the base for a PIE or a library.
    const uint64_t at = AddressOf(maps, path, copy->file_offset);
    if (at == 0) {
      *why = path + ": PyContext_CopyCurrent not mapped";
      return std::nullopt;
    }
    in.copy_current_offset = copy->file_offset;
    if (const ElfSymbol* s = Named(elf->functions(), kLockNewSymbol)) {
      in.lock_new_offset = s->file_offset;
    }
    if (const ElfSymbol* s = Named(elf->functions(), kLockTakeSymbol)) {
      in.lock_take_offset = s->file_offset;
    }
    in.runtime_address = runtime->address + (at - copy->address);
    why->clear();
    return in;
  }
  return std::nullopt;
}

}  // namespace hoptrace::uprobes::cpython
