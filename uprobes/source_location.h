// Where a function is defined in the source (DWARF): the file and line that
// spans carry as code.file.path and code.line.number. Read with libdw from
// the binary's own debug information (C/C++ built with -g, Go binaries,
// which keep DWARF unless built with -ldflags=-w); nothing when the file has
// none (stripped, -g0) — the span then carries the function's name only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

typedef struct Dwarf Dwarf;

namespace hoptrace::uprobes {

struct SourceLocation {
  std::string file;  // as the compiler recorded it: absolute, or joined to the CU's directory
  int line = 0;
};

// One ELF file's DWARF, open while functions are looked up in it.
class SourceIndex {
 public:
  // nullptr when the file cannot be read or has no DWARF.
  static std::unique_ptr<SourceIndex> Open(const std::string& path);
  ~SourceIndex();
  SourceIndex(const SourceIndex&) = delete;
  SourceIndex& operator=(const SourceIndex&) = delete;

  // The definition of the function whose code starts at `address` (its ELF
  // symbol's value: an address in the file's own layout); nullopt when the
  // DWARF does not name one.
  std::optional<SourceLocation> Function(uint64_t address);

 private:
  SourceIndex(int fd, Dwarf* dbg) : fd_(fd), dbg_(dbg) {}
  int fd_;
  Dwarf* dbg_;
  // Every function of every CU, built at the first address no CU's ranges
  // hold (producers without .debug_aranges: Go): one pass, not one per call.
  std::optional<std::map<uint64_t, SourceLocation>> all_;
};

}  // namespace hoptrace::uprobes
