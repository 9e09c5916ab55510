#include "uprobes/go/go_tls_sites.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "uprobes/elf_file.h"
#include "uprobes/return_sites.h"

namespace hoptrace::uprobes {
namespace {

// An ABIInternal function's stack check reads g from R14 (see
// go_runtime_sites.h): `cmp rsp, [r14+0x10]` (49 3b 66 10), or for a frame
// bigger than the guard's slack `lea r12, [rsp-N]` (4c 8d 64 24 disp8, or
// 4c 8d a4 24 disp32) then `cmp r12, [r14+0x10]` (4d 3b 66 10).
constexpr uint8_t kR14StackCheck[] = {0x49, 0x3b, 0x66, 0x10};
constexpr uint8_t kR14StackCheckR12[] = {0x4d, 0x3b, 0x66, 0x10};

bool StartsWithR14Check(const std::vector<uint8_t>& b) {
  auto at = [&](size_t off, const uint8_t(&want)[4]) {
    return b.size() >= off + 4 && std::memcmp(b.data() + off, want, 4) == 0;
  };
  if (at(0, kR14StackCheck)) return true;
  if (b.size() >= 5 && b[0] == 0x4c && b[1] == 0x8d && b[2] == 0x64 && b[3] == 0x24) {
    return at(5, kR14StackCheckR12);
  }
  if (b.size() >= 8 && b[0] == 0x4c && b[1] == 0x8d && b[2] == 0xa4 && b[3] == 0x24) {
    return at(8, kR14StackCheckR12);
  }
  return false;
}

struct Entry {
  GoTls verdict = GoTls::kNotGo;
  GoTlsSites sites;
  std::string why;
};

// Entry and return sites of fn; false and *why when it cannot be probed.
bool SitesOf(const ElfFile& elf, const ElfSymbol& fn, uint64_t* entry,
             std::vector<uint64_t>* returns, std::string* why) {
  auto body = elf.ReadFunction(fn);
  if (!body) {
    *why = "cannot read " + fn.name;
    return false;
  }
  if (!StartsWithR14Check(*body)) {
    *why = fn.name + " does not start with the R14 stack check (not amd64 ABIInternal, Go < 1.17?)";
    return false;
  }
  std::string err;
  auto sites = FindReturnSites(*body, fn.address, &err);
  if (!sites || sites->rets.empty()) {
    *why = fn.name + ": no return instructions found" + (err.empty() ? "" : ": " + err);
    return false;
  }
  // A tail call would return (n, err) from another function: its RET is
  // not in the body, and the call would never end.
  if (!sites->tail_jumps.empty()) {
    *why = fn.name + " has tail calls";
    return false;
  }
  *entry = fn.file_offset;
  for (uint64_t off : sites->rets) returns->push_back(fn.file_offset + off);
  return true;
}

Entry Read(const std::string& path) {
  Entry e;
  auto elf = ElfFile::Open(path, &e.why);
  if (!elf) {
    e.verdict = GoTls::kRefused;
    return e;
  }
  if (!elf->is_go()) return e;
  const ElfSymbol *write = nullptr, *read = nullptr;
  bool any_go_symbol = false;
  for (const ElfSymbol& fn : elf->functions()) {
    if (fn.name == kGoTlsWrite) write = &fn;
    if (fn.name == kGoTlsRead) read = &fn;
    if (fn.name == "runtime.main") any_go_symbol = true;
  }
  if (!any_go_symbol) {
    e.verdict = GoTls::kRefused;
    e.why = "stripped Go binary (no .symtab): its crypto/tls is not probed (the functions are "
            "named only in .gopclntab, which hoptrace does not read)";
    return e;
  }
  if (write == nullptr || read == nullptr) {
    e.verdict = GoTls::kNoTls;
    return e;
  }
  e.verdict = GoTls::kRefused;
  for (const ElfSymbol& o : elf->objects()) {
    if (o.name == kGoTcpConnItab) e.sites.tcpconn_itab_vaddr = o.address;
  }
  if (e.sites.tcpconn_itab_vaddr == 0) {
    e.why = std::string("no ") + kGoTcpConnItab + ": its TLS connections are not on TCP sockets";
    return e;
  }
  if (!SitesOf(*elf, *write, &e.sites.write_entry, &e.sites.write_returns, &e.why) ||
      !SitesOf(*elf, *read, &e.sites.read_entry, &e.sites.read_returns, &e.why)) {
    return e;
  }
  e.sites.write_vaddr = write->address;
  e.verdict = GoTls::kProbeable;
  return e;
}

}  // namespace

GoTls FindGoTlsSites(const std::string& path, GoTlsSites* sites, std::string* why) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    *why = std::string("cannot stat ") + path + ": " + strerror(errno);
    return GoTls::kRefused;
  }
  using Key = std::tuple<uint64_t, uint64_t, int64_t, int64_t>;
  static std::mutex mu;
  static std::map<Key, Entry> cache;  // bounded below
  const Key key{st.st_dev, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 256) cache.clear();
    it = cache.emplace(key, Read(path)).first;
  }
  *sites = it->second.sites;
  *why = it->second.why;
  return it->second.verdict;
}

}  // namespace hoptrace::uprobes
