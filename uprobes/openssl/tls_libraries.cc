#include "uprobes/openssl/tls_libraries.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "uprobes/openssl/openssl_probes.h"

namespace hoptrace::tls {
namespace {

bool InProbeSet(std::string_view name) {
  return std::any_of(kOpenSslProbes.begin(), kOpenSslProbes.end(),
                     [&](const TlsProbe& p) { return p.symbol == name; });
}

// Defined functions of the probe set in one symbol table section.
void CollectFrom(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, std::vector<std::string>* out) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (data == nullptr || shdr.sh_entsize == 0) return;
  const size_t count = shdr.sh_size / shdr.sh_entsize;
  for (size_t i = 0; i < count; ++i) {
    GElf_Sym sym;
    if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) continue;
    if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_value == 0) {
      continue;
    }
    const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (name == nullptr || !InProbeSet(name)) continue;
    if (std::find(out->begin(), out->end(), name) == out->end()) out->emplace_back(name);
  }
}

std::vector<std::string> ReadTlsFunctions(const std::string& path, std::string* error) {
  std::vector<std::string> out;
  if (elf_version(EV_CURRENT) == EV_NONE) {
    *error = "libelf is unusable";
    return out;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = std::string("cannot open: ") + strerror(errno);
    return out;
  }
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  if (elf == nullptr || elf_kind(elf) != ELF_K_ELF) {
    *error = "not an ELF file";
  } else {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr;
      if (gelf_getshdr(scn, &shdr) == nullptr) continue;
      // .dynsym only: OpenSSL inside an executable is exported for addons
      // (Node.js), and a big binary's .symtab costs a second to read.
      if (shdr.sh_type == SHT_DYNSYM) CollectFrom(elf, scn, shdr, &out);
    }
  }
  if (elf) elf_end(elf);
  close(fd);
  return out;
}

struct CacheEntry {
  std::vector<std::string> symbols;
  std::string error;
};

}  // namespace

bool TlsLibrary::probeable() const {
  return error.empty() &&
         std::all_of(kOpenSslRequired.begin(), kOpenSslRequired.end(), [&](std::string_view s) {
           return std::find(symbols.begin(), symbols.end(), s) != symbols.end();
         });
}

std::vector<MappedFile> ParseMappedFiles(const std::string& maps_text) {
  std::vector<MappedFile> out;
  std::istringstream in(maps_text);
  std::string line;
  while (std::getline(in, line)) {
    // address perms offset dev inode [path]
    std::istringstream fields(line);
    std::string addr, perms, offset, dev;
    uint64_t inode = 0;
    if (!(fields >> addr >> perms >> offset >> dev >> inode) || inode == 0) continue;
    std::string path;
    std::getline(fields, path);
    path.erase(0, path.find_first_not_of(' '));
    if (path.empty() || path.front() != '/') continue;
    if (std::none_of(out.begin(), out.end(), [&](const MappedFile& m) { return m.path == path; })) {
      out.push_back(MappedFile{path, inode});
    }
  }
  return out;
}

std::string LibsslKind(const std::string& path) {
  const std::string base = path.substr(path.rfind('/') + 1);
  if (base.rfind("libssl.so", 0) != 0) return "";
  // "libssl.so.3 (deleted)": the file was replaced under a running process;
  // the old inode is what it runs, but no path reaches it.
  return base.substr(0, base.find(' '));
}

std::vector<std::string> DefinedTlsFunctions(const std::string& open_path, std::string* error) {
  struct stat st {};
  if (stat(open_path.c_str(), &st) != 0) {
    *error = std::string("cannot stat: ") + strerror(errno);
    return {};
  }
  using Key = std::tuple<uint64_t, uint64_t, int64_t, int64_t>;
  static std::mutex mu;
  static std::map<Key, CacheEntry> cache;  // bounded below
  const Key key{st.st_dev, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 1024) cache.clear();
    CacheEntry e;
    e.symbols = ReadTlsFunctions(open_path, &e.error);
    it = cache.emplace(key, std::move(e)).first;
  }
  *error = it->second.error;
  return it->second.symbols;
}

std::vector<TlsLibrary> FindTlsLibraries(pid_t pid) {
  std::vector<TlsLibrary> out;
  const std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream maps(proc + "/maps");
  if (!maps) return out;
  std::stringstream text;
  text << maps.rdbuf();
  char exe[4096] = {};
  ssize_t n = readlink((proc + "/exe").c_str(), exe, sizeof(exe) - 1);
  const std::string exe_path = n > 0 ? std::string(exe, n) : "";

  for (const MappedFile& m : ParseMappedFiles(text.str())) {
    TlsLibrary lib;
    lib.kind = LibsslKind(m.path);
    if (lib.kind.empty() && m.path == exe_path) lib.kind = "executable";
    if (lib.kind.empty()) continue;
    lib.path = m.path;
    // Through the process's root: a container's files are not the host's.
    lib.open_path = proc + "/root" + m.path;
    struct stat st {};
    if (stat(lib.open_path.c_str(), &st) != 0) continue;  // gone, or "(deleted)"
    lib.dev = st.st_dev;
    lib.inode = st.st_ino;
    lib.symbols = DefinedTlsFunctions(lib.open_path, &lib.error);
    // An executable without OpenSSL inside is not a TLS library.
    if (lib.kind == "executable" && lib.symbols.empty()) continue;
    out.push_back(std::move(lib));
  }
  return out;
}

}  // namespace hoptrace::tls
