#include "agent/kernel/tls_uprobes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "agent/kernel/link_teardown.h"

#include "tls_go.h"
#include "uprobes/go/go_tls_sites.h"
#include "uprobes/openssl/openssl_probes.h"
#include "uprobes/process_maps.h"

namespace hoptrace {

// The kernel's layout (bpf/tls_go.h): AttachGo writes ht_gotls_proc values,
// ForgetGo walks ht_gotls_calls keys.
static_assert(sizeof(ht_gotls_proc) == 24 && offsetof(ht_gotls_proc, conn_off) == 8 &&
              offsetof(ht_gotls_proc, sysfd_off) == 16);
static_assert(sizeof(ht_gotls_key) == 16 && offsetof(ht_gotls_key, g) == 8);

namespace {

bpf_link* AttachOne(bpf_program* prog, pid_t pid, const std::string& path,
                    const std::string& symbol, bool retprobe, std::string* error) {
  bpf_uprobe_opts opts{};
  opts.sz = sizeof(opts);
  opts.func_name = symbol.c_str();
  opts.retprobe = retprobe;
  // The kernel filters a uprobe with a target process by its mm: no
  // breakpoint in any other process that maps the file.
  bpf_link* link = bpf_program__attach_uprobe_opts(prog, pid, path.c_str(), 0, &opts);
  if (link == nullptr) {
    *error = (retprobe ? "uretprobe on " : "uprobe on ") + symbol + ": " + strerror(errno);
  }
  return link;
}

}  // namespace

TlsUprobes::TlsUprobes(const BpfLoader& loader) : loader_(loader) {}

TlsUprobes::~TlsUprobes() {
  std::vector<bpf_link*> all;
  for (auto& [file, links] : links_) all.insert(all.end(), links.begin(), links.end());
  DestroyLinks(all);
}

bool TlsUprobes::Attach(const tls::TlsLibrary& lib, pid_t pid, std::string* error) {
  if (lib.kind == tls::kGoTlsKind) return AttachGo(lib, pid, error);
  bpf_program* ret_prog = loader_.Program(std::string(tls::kOpenSslReturnProgram).c_str());
  if (ret_prog == nullptr) {
    *error = "the TLS programs are not loaded";
    return false;
  }
  std::vector<bpf_link*> links;
  std::vector<std::string> attached;
  for (const tls::TlsProbe& probe : tls::kOpenSslProbes) {
    const std::string symbol(probe.symbol);
    if (std::find(lib.symbols.begin(), lib.symbols.end(), symbol) == lib.symbols.end()) continue;
    bpf_program* entry = loader_.Program(std::string(probe.entry_program).c_str());
    std::string why;
    // Return first: an entry without its return would leave a call in
    // flight; a return without its entry finds none and does nothing.
    bpf_link* ret = entry ? AttachOne(ret_prog, pid, lib.open_path, symbol, true, &why) : nullptr;
    bpf_link* in = ret ? AttachOne(entry, pid, lib.open_path, symbol, false, &why) : nullptr;
    if (in == nullptr) {
      if (ret) bpf_link__destroy(ret);
      spdlog::debug("tls: {} in {} (pid {}): {}", symbol, lib.path, pid, why);
      if (error->empty()) *error = why;
      continue;
    }
    links.push_back(ret);
    links.push_back(in);
    attached.push_back(symbol);
  }
  if (links.empty()) {
    spdlog::warn("tls: cannot probe {} ({}) in pid {}: {}; its TLS traffic is not traced",
                 lib.path, lib.kind, pid, *error);
    return false;
  }
  std::string names;
  for (const auto& s : attached) names += (names.empty() ? "" : ", ") + s;
  spdlog::info("tls: probing {} ({}) in pid {}: {}", lib.path, lib.kind, pid, names);
  auto& slot = links_[{lib.dev, lib.inode, pid}];
  slot.insert(slot.end(), links.begin(), links.end());
  return true;
}

bool TlsUprobes::AttachGo(const tls::TlsLibrary& lib, pid_t pid, std::string* error) {
  bpf_program* write = loader_.Program("ht_gotls_write");
  bpf_program* read = loader_.Program("ht_gotls_read");
  bpf_program* write_ret = loader_.Program("ht_gotls_write_ret");
  bpf_program* read_ret = loader_.Program("ht_gotls_read_ret");
  const int procs = loader_.MapFd("ht_gotls_procs");
  if (!write || !read || !write_ret || !read_ret || procs < 0) {
    *error = "the Go TLS programs are not loaded";
    return false;
  }
  // The executable as this process sees it: the file of the first process
  // that mapped it may be gone with its mount namespace.
  const std::string exe = "/proc/" + std::to_string(pid) + "/exe";
  uprobes::GoTlsSites sites;
  if (uprobes::FindGoTlsSites(exe, &sites, error) != uprobes::GoTls::kProbeable) {
    if (error->empty()) *error = "no crypto/tls in " + exe;
    spdlog::warn("tls: cannot probe Go crypto/tls of {} in pid {}: {}", lib.path, pid, *error);
    return false;
  }
  // The itab's address in the process: the load bias from where Write is.
  const uint64_t write_at =
      uprobes::AddressOf(uprobes::ExecutableMappings(pid), lib.path, sites.write_entry);
  if (write_at == 0) {
    *error = "crypto/tls.(*Conn).Write is not mapped";
    return false;
  }
  ht_gotls_proc proc{};
  proc.tcpconn_itab = sites.tcpconn_itab_vaddr + (write_at - sites.write_vaddr);
  proc.conn_off = sites.conn_off;
  proc.netfd_off = sites.netfd_off;
  proc.sysfd_off = sites.sysfd_off;
  std::vector<bpf_link*> links;
  auto attach = [&](bpf_program* prog, uint64_t offset) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = false);
    bpf_link* l = bpf_program__attach_uprobe_opts(prog, pid, exe.c_str(), offset, &opts);
    if (l == nullptr) {
      *error = "uprobe at " + exe + "+" + std::to_string(offset) + ": " + strerror(errno);
      return false;
    }
    links.push_back(l);
    return true;
  };
  // Returns before entries (an entry without its return leaves a call in
  // flight), and the process marked only once all are in.
  bool ok = true;
  for (uint64_t off : sites.write_returns) ok = ok && attach(write_ret, off);
  for (uint64_t off : sites.read_returns) ok = ok && attach(read_ret, off);
  ok = ok && attach(write, sites.write_entry) && attach(read, sites.read_entry);
  const uint32_t key = static_cast<uint32_t>(pid);
  if (ok && bpf_map_update_elem(procs, &key, &proc, BPF_ANY) != 0) {
    ok = false;
    *error = std::string("ht_gotls_procs: ") + strerror(errno);
  }
  if (!ok) {
    for (bpf_link* l : links) bpf_link__destroy(l);
    spdlog::warn("tls: cannot probe Go crypto/tls of {} in pid {}: {}", lib.path, pid, *error);
    return false;
  }
  spdlog::info("tls: probing {} ({}) in pid {}: {}, {} ({} probes)", lib.path, lib.kind, pid,
               uprobes::kGoTlsWrite, uprobes::kGoTlsRead, links.size());
  auto& slot = links_[{lib.dev, lib.inode, pid}];
  slot.insert(slot.end(), links.begin(), links.end());
  return true;
}

void TlsUprobes::ForgetGo(pid_t pid) {
  const uint32_t tgid = static_cast<uint32_t>(pid);
  const int procs = loader_.MapFd("ht_gotls_procs");
  if (procs < 0 || bpf_map_delete_elem(procs, &tgid) != 0) return;  // not a Go process
  // Its calls in flight (a goroutine parked in Read when the process went).
  const int calls = loader_.MapFd("ht_gotls_calls");
  std::vector<ht_gotls_key> doomed;
  ht_gotls_key key{}, next{};
  ht_gotls_key* prev = nullptr;
  while (calls >= 0 && bpf_map_get_next_key(calls, prev, &next) == 0) {
    if (next.tgid == tgid) doomed.push_back(next);
    key = next;
    prev = &key;
  }
  for (const ht_gotls_key& k : doomed) bpf_map_delete_elem(calls, &k);
}

void TlsUprobes::Detach(const tls::TlsLibrary& lib, pid_t pid) {
  auto it = links_.find({lib.dev, lib.inode, pid});
  if (it == links_.end()) return;
  // Unmark first: the entry programs stop taking calls of this process.
  if (lib.kind == tls::kGoTlsKind) ForgetGo(pid);
  DestroyLinks(it->second);
  links_.erase(it);
  spdlog::info("tls: probes removed from pid {} (gone, or not traced any more): {}", pid,
               lib.path);
}

size_t TlsUprobes::links() const {
  size_t n = 0;
  for (const auto& [file, links] : links_) n += links.size();
  return n;
}

}  // namespace hoptrace
