#include "uprobes/openssl/tls_libraries.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "uprobes/elf_file.h"
#include "uprobes/go/go_tls_sites.h"
#include "uprobes/openssl/openssl_probes.h"
#include "uprobes/process_maps.h"

namespace hoptrace::tls {
namespace {

// The probe set's functions the file exports.
std::vector<std::string> ReadTlsFunctions(const std::string& path, std::string* error) {
  std::vector<std::string> out;
  std::array<std::string_view, kOpenSslProbes.size()> names;
  std::transform(kOpenSslProbes.begin(), kOpenSslProbes.end(), names.begin(),
                 [](const TlsProbe& p) { return p.symbol; });
  std::optional<uprobes::ElfFile> elf =
      uprobes::ElfFile::Open(path, error, uprobes::SymbolTables::kDynamicOnly, names);
  if (!elf) return out;
  // In the probe set's order, each once.
  for (const TlsProbe& p : kOpenSslProbes) {
    const bool defined = std::any_of(elf->functions().begin(), elf->functions().end(),
                                     [&](const uprobes::ElfSymbol& fn) { return fn.name == p.symbol; });
    if (defined) out.emplace_back(p.symbol);
  }
  return out;
}

struct CacheEntry {
  std::vector<std::string> symbols;
  std::string error;
};

}  // namespace

bool TlsLibrary::probeable() const {
  if (kind == kGoTlsKind) return error.empty() && symbols.size() == 2;
  return error.empty() &&
         std::all_of(kOpenSslRequired.begin(), kOpenSslRequired.end(), [&](std::string_view s) {
           return std::find(symbols.begin(), symbols.end(), s) != symbols.end();
         });
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

bool GoTlsOf(TlsLibrary* lib) {
  uprobes::GoTlsSites sites;
  std::string why;
  switch (uprobes::FindGoTlsSites(lib->open_path, &sites, &why)) {
    case uprobes::GoTls::kNotGo:
    case uprobes::GoTls::kNoTls:
      return false;
    case uprobes::GoTls::kProbeable:
      lib->kind = kGoTlsKind;
      lib->symbols = {uprobes::kGoTlsWrite, uprobes::kGoTlsRead};
      lib->error.clear();
      return true;
    case uprobes::GoTls::kRefused:
      lib->kind = kGoTlsKind;
      lib->error = why;
      return true;
  }
  return false;
}

std::vector<TlsLibrary> FindTlsLibraries(pid_t pid) {
  std::vector<TlsLibrary> out;
  const std::string exe_path = uprobes::ExecutablePath(pid);
  std::vector<std::string> seen;
  for (const uprobes::Mapping& m : uprobes::ExecutableMappings(pid)) {
    if (std::find(seen.begin(), seen.end(), m.path) != seen.end()) continue;
    seen.push_back(m.path);
    TlsLibrary lib;
    lib.kind = LibsslKind(m.path);
    if (lib.kind.empty() && m.path == exe_path) lib.kind = "executable";
    if (lib.kind.empty()) continue;
    lib.path = m.path;
    // Through the process's root: a container's files are not the host's.
    lib.open_path = uprobes::HostPath(pid, m.path);
    struct stat st {};
    if (stat(lib.open_path.c_str(), &st) != 0) continue;  // gone meanwhile
    lib.dev = st.st_dev;
    lib.inode = st.st_ino;
    lib.symbols = DefinedTlsFunctions(lib.open_path, &lib.error);
    if (lib.kind == "executable" && lib.symbols.empty() && !GoTlsOf(&lib)) continue;
    // An executable without OpenSSL inside is not a TLS library.
    if (lib.kind == "executable" && lib.symbols.empty()) continue;
    out.push_back(std::move(lib));
  }
  return out;
}

}  // namespace hoptrace::tls
