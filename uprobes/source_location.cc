#include "uprobes/source_location.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <gelf.h>
#include <libelf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace hoptrace::uprobes {
namespace {

// Where a subprogram DIE says its function is defined; nullopt for
// declarations. dwarf_decl_file/line follow DW_AT_specification and
// DW_AT_abstract_origin: a C++ method defined out of its class, a function
// with an inlined copy.
std::optional<SourceLocation> Declared(Dwarf_Die* fn) {
  const char* file = dwarf_decl_file(fn);
  int line = 0;
  if (file == nullptr || dwarf_decl_line(fn, &line) != 0 || line <= 0) return std::nullopt;
  return SourceLocation{file, line};
}

// The addresses where a subprogram's code pieces start: its entry, and a
// part the compiler moved away (GCC's .cold), each a range of DW_AT_ranges;
// or low_pc. Empty for declarations and inlined-only copies.
std::vector<uint64_t> Starts(Dwarf_Die* fn) {
  std::vector<uint64_t> out;
  Dwarf_Addr base = 0, start = 0, end = 0;
  ptrdiff_t off = 0;
  while ((off = dwarf_ranges(fn, off, &base, &start, &end)) > 0) out.push_back(start);
  Dwarf_Addr low = 0;
  if (out.empty() && dwarf_lowpc(fn, &low) == 0) out.push_back(low);
  return out;
}

struct Collect {
  Dwarf_Die* cu;
  std::map<uint64_t, SourceLocation>* out;
};

// A relative file name joined to its CU's compilation directory and
// normalised ("../../../tests/x.cc" from build/tests/y -> /repo/tests/x.cc).
std::string Absolute(Dwarf_Die* cu, const std::string& file) {
  if (file.empty() || file[0] == '/') return file;
  Dwarf_Attribute attr;
  const char* dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr));
  if (dir == nullptr || *dir != '/') return file;
  return std::filesystem::path(std::string(dir) + "/" + file).lexically_normal().string();
}

int CollectFunction(Dwarf_Die* fn, void* arg) {
  auto* c = static_cast<Collect*>(arg);
  const std::vector<uint64_t> starts = Starts(fn);
  if (starts.empty()) return DWARF_CB_OK;
  if (auto loc = Declared(fn)) {
    loc->file = Absolute(c->cu, loc->file);
    for (uint64_t a : starts) c->out->emplace(a, *loc);
  }
  return DWARF_CB_OK;
}

// The file's GNU build-id as hex ("" if none).
std::string BuildId(Elf* elf) {
  const void* id = nullptr;
  const ssize_t n = elf ? dwelf_elf_gnu_build_id(elf, &id) : -1;
  std::string hex;
  for (ssize_t i = 0; i < n; ++i) {
    char b[3];
    snprintf(b, sizeof(b), "%02x", static_cast<const unsigned char*>(id)[i]);
    hex += b;
  }
  return hex;
}

// Where a stripped file's DWARF may be, as GDB looks (Debian's -dbgsym
// packages, `objcopy --only-keep-debug` + `--add-gnu-debuglink`): by
// build-id under /usr/lib/debug/.build-id/, then by its .gnu_debuglink name
// next to it, in .debug/ beside it, and under /usr/lib/debug/<its dir>.
// root: the process's root ("/proc/PID/root") the path is opened through.
std::vector<std::string> DebugFiles(const std::string& path, int fd, std::string* build_id) {
  std::vector<std::string> out;
  elf_version(EV_CURRENT);
  Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
  if (!elf) return out;
  std::string root;
  if (path.rfind("/proc/", 0) == 0) {
    const size_t at = path.find("/root/");
    if (at != std::string::npos) root = path.substr(0, at + 5);
  }
  *build_id = BuildId(elf);
  if (build_id->size() > 2) {
    out.push_back(root + "/usr/lib/debug/.build-id/" + build_id->substr(0, 2) + "/" +
                  build_id->substr(2) + ".debug");
  }
  GElf_Word crc = 0;
  if (const char* link = dwelf_elf_gnu_debuglink(elf, &crc)) {
    const std::string in_root = path.substr(root.size());
    const std::string dir = in_root.substr(0, in_root.rfind('/'));
    out.push_back(root + dir + "/" + link);
    out.push_back(root + dir + "/.debug/" + link);
    out.push_back(root + "/usr/lib/debug" + dir + "/" + link);
  }
  elf_end(elf);
  return out;
}

}  // namespace

std::unique_ptr<SourceIndex> SourceIndex::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  // DWARF_C_READ: libdw decompresses .zdebug_* and SHF_COMPRESSED sections
  // itself (Go compresses its DWARF).
  Dwarf* dbg = dwarf_begin(fd, DWARF_C_READ);
  if (dbg != nullptr) return std::unique_ptr<SourceIndex>(new SourceIndex(fd, dbg));
  std::string build_id;
  const std::vector<std::string> candidates = DebugFiles(path, fd, &build_id);
  close(fd);
  for (const std::string& c : candidates) {
    const int dfd = open(c.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd < 0) continue;
    // A debug file of another build would name wrong lines: its build-id
    // must be the binary's when the binary has one.
    Elf* elf = elf_begin(dfd, ELF_C_READ_MMAP, nullptr);
    const bool same = build_id.empty() || BuildId(elf) == build_id;
    if (elf) elf_end(elf);
    Dwarf* d = same ? dwarf_begin(dfd, DWARF_C_READ) : nullptr;
    if (d != nullptr) return std::unique_ptr<SourceIndex>(new SourceIndex(dfd, d));
    close(dfd);
  }
  return nullptr;
}

SourceIndex::~SourceIndex() {
  dwarf_end(dbg_);
  close(fd_);
}

std::optional<SourceLocation> SourceIndex::Function(uint64_t address) {
  Dwarf_Die cu;
  if (!all_ && dwarf_addrdie(dbg_, address, &cu) != nullptr) {
    // The scopes holding the address, innermost first: the function itself
    // is the subprogram among them that starts there (C++ puts it inside
    // namespace and class scopes, which a walk of the CU's children misses).
    Dwarf_Die* scopes = nullptr;
    const int n = dwarf_getscopes(&cu, address, &scopes);
    std::optional<SourceLocation> found;
    for (int i = 0; i < n && !found; ++i) {
      if (dwarf_tag(&scopes[i]) != DW_TAG_subprogram) continue;
      const std::vector<uint64_t> starts = Starts(&scopes[i]);
      if (std::find(starts.begin(), starts.end(), address) == starts.end()) continue;
      found = Declared(&scopes[i]);
      if (found) found->file = Absolute(&cu, found->file);
    }
    free(scopes);
    if (found) return found;
  }
  if (!all_) {
    all_.emplace();
    Dwarf_Off off = 0, next = 0;
    size_t header = 0;
    while (dwarf_nextcu(dbg_, off, &next, &header, nullptr, nullptr, nullptr) == 0) {
      if (dwarf_offdie(dbg_, off + header, &cu) != nullptr) {
        Collect c{&cu, &*all_};
        dwarf_getfuncs(&cu, CollectFunction, &c, 0);
      }
      off = next;
    }
  }
  auto it = all_->find(address);
  if (it == all_->end()) return std::nullopt;
  return it->second;
}

}  // namespace hoptrace::uprobes
