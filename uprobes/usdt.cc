#include "uprobes/usdt.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

namespace hoptrace::uprobes {
namespace {

struct ElfHandle {
  int fd = -1;
  Elf* elf = nullptr;
  ~ElfHandle() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }
};

// struct pt_regs of x86_64 (arch/x86/include/asm/ptrace.h), what a uprobe
// program's context is. Sub-registers read the same slot.
int RegOffset(std::string reg) {
  static const std::map<std::string, int> offsets = {
      {"r15", 0},  {"r14", 8},   {"r13", 16},  {"r12", 24},  {"rbp", 32},  {"rbx", 40},
      {"r11", 48}, {"r10", 56},  {"r9", 64},   {"r8", 72},   {"rax", 80},  {"rcx", 88},
      {"rdx", 96}, {"rsi", 104}, {"rdi", 112}, {"rip", 128}, {"rsp", 152},
  };
  static const std::map<std::string, std::string> aliases = {
      {"eax", "rax"}, {"ax", "rax"}, {"al", "rax"}, {"ebx", "rbx"}, {"bx", "rbx"}, {"bl", "rbx"},
      {"ecx", "rcx"}, {"cx", "rcx"}, {"cl", "rcx"}, {"edx", "rdx"}, {"dx", "rdx"}, {"dl", "rdx"},
      {"esi", "rsi"}, {"si", "rsi"}, {"edi", "rdi"}, {"di", "rdi"}, {"ebp", "rbp"}, {"bp", "rbp"},
      {"esp", "rsp"}, {"sp", "rsp"},
  };
  if (auto a = aliases.find(reg); a != aliases.end()) reg = a->second;
  // r8d, r12w, r9b: the 64-bit register's slot.
  if (reg.size() > 2 && reg[0] == 'r' && (reg.back() == 'd' || reg.back() == 'w' || reg.back() == 'b') &&
      offsets.count(reg.substr(0, reg.size() - 1))) {
    reg.pop_back();
  }
  auto it = offsets.find(reg);
  return it == offsets.end() ? -1 : it->second;
}

// The file offset of vaddr: inside a loadable segment's file bytes.
std::optional<uint64_t> FileOffsetOf(Elf* elf, uint64_t vaddr) {
  size_t n = 0;
  elf_getphdrnum(elf, &n);
  for (size_t i = 0; i < n; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, i, &ph) || ph.p_type != PT_LOAD) continue;
    if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz) {
      return vaddr - ph.p_vaddr + ph.p_offset;
    }
  }
  return std::nullopt;
}

}  // namespace

UsdtArg ParseUsdtArg(const std::string& spec) {
  UsdtArg a;
  const size_t at = spec.find('@');
  if (at == std::string::npos) {
    a.text = spec;
    return a;
  }
  a.size = std::atoi(spec.substr(0, at).c_str());
  a.text = spec.substr(at + 1);
  if (a.text.size() > 1 && a.text[0] == '%') a.reg_offset = RegOffset(a.text.substr(1));
  return a;
}

std::vector<UsdtProbe> ReadUsdtProbes(const std::string& path, std::string* error) {
  std::vector<UsdtProbe> out;
  if (elf_version(EV_CURRENT) == EV_NONE) {
    *error = "libelf is too old";
    return out;
  }
  ElfHandle h;
  h.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (h.fd < 0) {
    *error = "cannot open " + path + ": " + strerror(errno);
    return out;
  }
  h.elf = elf_begin(h.fd, ELF_C_READ_MMAP, nullptr);
  size_t shstrndx = 0;
  if (!h.elf || elf_kind(h.elf) != ELF_K_ELF || elf_getshdrstrndx(h.elf, &shstrndx) != 0) {
    *error = path + " is not an ELF file";
    return out;
  }
  Elf_Scn* notes = nullptr;
  uint64_t base_addr = 0;  // where .stapsdt.base really is (prelink may move it)
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(h.elf, scn)) != nullptr;) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char* name = elf_strptr(h.elf, shstrndx, sh.sh_name);
    if (!name) continue;
    if (sh.sh_type == SHT_NOTE && std::strcmp(name, ".note.stapsdt") == 0) notes = scn;
    if (std::strcmp(name, ".stapsdt.base") == 0) base_addr = sh.sh_addr;
  }
  if (!notes) {
    *error = path + " has no USDT probes (no .note.stapsdt)";
    return out;
  }
  Elf_Data* data = elf_getdata(notes, nullptr);
  GElf_Nhdr nh;
  size_t off = 0, name_off = 0, desc_off = 0;
  while (data && (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
    // NT_STAPSDT = 3, owner "stapsdt"; desc: pc, base, semaphore (8 bytes
    // each on a 64-bit ELF), then provider, name and arguments as strings.
    const char* owner = static_cast<const char*>(data->d_buf) + name_off;
    if (nh.n_type != 3 || nh.n_namesz != 8 || std::strcmp(owner, "stapsdt") != 0 ||
        nh.n_descsz < 3 * 8 + 3) {
      continue;
    }
    const auto* desc = static_cast<const unsigned char*>(data->d_buf) + desc_off;
    uint64_t pc, base, sema;
    std::memcpy(&pc, desc, 8);
    std::memcpy(&base, desc + 8, 8);
    std::memcpy(&sema, desc + 16, 8);
    const char* strs = reinterpret_cast<const char*>(desc + 24);
    const char* end = reinterpret_cast<const char*>(desc + nh.n_descsz);
    UsdtProbe p;
    p.provider = std::string(strs, strnlen(strs, end - strs));
    strs += p.provider.size() + 1;
    if (strs >= end) continue;
    p.name = std::string(strs, strnlen(strs, end - strs));
    strs += p.name.size() + 1;
    const std::string args = strs < end ? std::string(strs, strnlen(strs, end - strs)) : "";
    // Addresses in the note are as linked; .stapsdt.base tells how far
    // the file's layout moved them since.
    const int64_t adjust = base_addr ? static_cast<int64_t>(base_addr - base) : 0;
    p.address = pc + adjust;
    auto fo = FileOffsetOf(h.elf, p.address);
    if (!fo) continue;
    p.file_offset = *fo;
    if (sema) {
      p.semaphore_address = sema + adjust;
      auto so = FileOffsetOf(h.elf, p.semaphore_address);
      if (!so) continue;  // a semaphore outside the file's bytes (.bss): not attachable
      p.semaphore_offset = *so;
    }
    std::istringstream in(args);
    for (std::string a; in >> a;) p.args.push_back(ParseUsdtArg(a));
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace hoptrace::uprobes
