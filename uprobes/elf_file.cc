#include "uprobes/elf_file.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace hoptrace::uprobes {
namespace {

// Closes the descriptor and the libelf handle together.
struct ElfHandle {
  int fd = -1;
  Elf* elf = nullptr;
  ~ElfHandle() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }
};

struct Segment {
  uint64_t vaddr, memsz, offset, filesz;
  bool exec;
};

}  // namespace

std::string Demangle(const std::string& s) {
  if (s.size() < 2 || s[0] != '_' || s[1] != 'Z') return "";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(s.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : "";
}

std::optional<ElfFile> ElfFile::Open(const std::string& path, std::string* error,
                                     SymbolTables tables,
                                     std::span<const std::string_view> only_names) {
  // A symbol's name up to its "@VERSION" suffix is one of only_names (or
  // there is no such list).
  auto wanted = [only_names](const char* raw) {
    if (only_names.empty()) return true;
    const std::string_view name(raw, strcspn(raw, "@"));
    return std::find(only_names.begin(), only_names.end(), name) != only_names.end();
  };
  if (elf_version(EV_CURRENT) == EV_NONE) {
    *error = "libelf is too old";
    return std::nullopt;
  }
  ElfHandle h;
  h.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (h.fd < 0) {
    *error = "cannot open " + path + ": " + strerror(errno);
    return std::nullopt;
  }
  h.elf = elf_begin(h.fd, ELF_C_READ_MMAP, nullptr);
  if (!h.elf || elf_kind(h.elf) != ELF_K_ELF) {
    *error = path + " is not an ELF file";
    return std::nullopt;
  }
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(h.elf, &shstrndx) != 0) {
    *error = path + ": no section names";
    return std::nullopt;
  }

  // Program headers map addresses to file offsets, PIE or not: a function at
  // vaddr lives at vaddr - p_vaddr + p_offset of the loadable segment holding it.
  std::vector<Segment> segments;
  size_t nphdr = 0;
  elf_getphdrnum(h.elf, &nphdr);
  for (size_t i = 0; i < nphdr; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(h.elf, i, &ph) || ph.p_type != PT_LOAD) continue;
    segments.push_back({ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz, (ph.p_flags & PF_X) != 0});
  }

  ElfFile file;
  file.path_ = path;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(h.elf, scn)) != nullptr) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char* sname = elf_strptr(h.elf, shstrndx, sh.sh_name);
    if (sname) {
      if (!strcmp(sname, ".go.buildinfo") || !strcmp(sname, ".gopclntab")) file.is_go_ = true;
      if (!strcmp(sname, ".debug_info")) file.has_debug_info_ = true;
      if (!strcmp(sname, ".gnu_debuglink") || !strcmp(sname, ".note.gnu.build-id")) {
        file.names_debug_file_ = true;
      }
    }
    if (sh.sh_type != SHT_DYNSYM &&
        (sh.sh_type != SHT_SYMTAB || tables == SymbolTables::kDynamicOnly)) {
      continue;
    }
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || sh.sh_entsize == 0) continue;
    const size_t count = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
      // Defined functions only (an undefined dynsym entry is an import). IFUNC
      // resolvers are left out: probing one times the resolver, not the function.
      if (GELF_ST_TYPE(sym.st_info) == STT_OBJECT && sym.st_shndx != SHN_UNDEF &&
          sym.st_value != 0) {
        // Data a runtime probe reads (CPython's _PyRuntime, Py_Version).
        const char* oname = elf_strptr(h.elf, sh.sh_link, sym.st_name);
        if (!oname || !*oname || !wanted(oname)) continue;
        ElfSymbol o;
        o.name = oname;
        if (size_t at = o.name.find('@'); at != std::string::npos) o.name.resize(at);
        o.address = sym.st_value;
        o.size = sym.st_size;
        for (const Segment& seg : segments) {
          if (o.address >= seg.vaddr && o.address < seg.vaddr + seg.filesz) {
            o.file_offset = o.address - seg.vaddr + seg.offset;
            break;
          }
        }
        file.objects_.push_back(std::move(o));
        continue;
      }
      if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_value == 0) {
        continue;
      }
      const char* raw = elf_strptr(h.elf, sh.sh_link, sym.st_name);
      if (!raw || !*raw || !wanted(raw)) continue;
      ElfSymbol s;
      std::string name(raw);
      if (size_t at = name.find('@'); at != std::string::npos) {
        s.version = name.substr(name.find_first_not_of('@', at));
        name.resize(at);
      }
      s.name = std::move(name);
      s.address = sym.st_value;
      s.size = sym.st_size;
      bool mapped = false;
      for (const Segment& seg : segments) {
        if (seg.exec && s.address >= seg.vaddr && s.address < seg.vaddr + seg.filesz) {
          s.file_offset = s.address - seg.vaddr + seg.offset;
          mapped = true;
          break;
        }
      }
      if (!mapped) continue;
      s.demangled = Demangle(s.name);
      file.functions_.push_back(std::move(s));
    }
  }
  // .symtab and .dynsym name many functions twice: keep one per address and name.
  std::sort(file.functions_.begin(), file.functions_.end(), [](const ElfSymbol& a, const ElfSymbol& b) {
    return a.address != b.address ? a.address < b.address : a.name < b.name;
  });
  file.functions_.erase(std::unique(file.functions_.begin(), file.functions_.end(),
                                    [](const ElfSymbol& a, const ElfSymbol& b) {
                                      return a.address == b.address && a.name == b.name;
                                    }),
                        file.functions_.end());
  return file;
}

std::optional<std::vector<uint8_t>> ElfFile::ReadFunction(const ElfSymbol& fn) const {
  if (fn.size == 0 || fn.size > (16u << 20)) return std::nullopt;
  int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::vector<uint8_t> bytes(fn.size);
  ssize_t n = pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(fn.file_offset));
  close(fd);
  if (n != static_cast<ssize_t>(bytes.size())) return std::nullopt;
  return bytes;
}

}  // namespace hoptrace::uprobes
