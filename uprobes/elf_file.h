// One ELF file's function symbols, read with libelf: .symtab and .dynsym
// (a stripped binary keeps only the latter), with the file offsets a uprobe
// is attached at. Read once per file version (ElfCache keys them by device,
// inode and mtime), so a hundred processes of one binary cost one read.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hoptrace::uprobes {

struct ElfSymbol {
  std::string name;       // as in the string table, without a "@VERSION" suffix
  std::string version;    // "GLIBC_2.2.5" from "memcpy@@GLIBC_2.2.5"; usually empty
  std::string demangled;  // C++ (Itanium ABI) demangled name; empty if not mangled
  uint64_t address = 0;   // st_value: virtual address in the file's own layout
  uint64_t size = 0;      // st_size: bytes of the function body (0: unknown)
  uint64_t file_offset = 0;  // where those bytes are in the file: what uprobes take
};

// Which symbol tables Open reads: both, or the exported functions only
// (.dynsym: what a library or an executable exports, e.g. OpenSSL inside
// node; a big binary's .symtab costs a second to read).
enum class SymbolTables { kAll, kDynamicOnly };

class ElfFile {
 public:
  // Reads the file's function symbols. nullopt and *error when it is not a
  // readable ELF file.
  // only_names: keep just the symbols of these names (unversioned), the
  // others cost a name comparison, not a copy and a demangling (node
  // exports some 67 000 functions; the TLS check asks for four).
  static std::optional<ElfFile> Open(const std::string& path, std::string* error,
                                     SymbolTables tables = SymbolTables::kAll,
                                     std::span<const std::string_view> only_names = {});

  const std::string& path() const { return path_; }
  const std::vector<ElfSymbol>& functions() const { return functions_; }
  // Defined data symbols (STT_OBJECT); file_offset 0 when not in the file (.bss).
  const std::vector<ElfSymbol>& objects() const { return objects_; }
  // A Go binary (.go.buildinfo or .gopclntab present): its functions need
  // return-instruction probes, and its stacks move.
  bool is_go() const { return is_go_; }
  bool has_debug_info() const { return has_debug_info_; }
  // A build-id or .gnu_debuglink: its DWARF may be in a separate file
  // (SourceIndex::Open looks).
  bool names_debug_file() const { return names_debug_file_; }
  // The bytes of a function body (for disassembly), read from the file.
  std::optional<std::vector<uint8_t>> ReadFunction(const ElfSymbol& fn) const;

 private:
  std::string path_;
  std::vector<ElfSymbol> functions_;
  std::vector<ElfSymbol> objects_;
  bool is_go_ = false;
  bool has_debug_info_ = false;
  bool names_debug_file_ = false;
};

// "_ZN4Shop8validateEi" -> "Shop::validate(int)"; empty if s is not a
// mangled C++ name.
std::string Demangle(const std::string& s);

}  // namespace hoptrace::uprobes
