#include "agent/kernel/tls_uprobes.h"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "uprobes/openssl/openssl_probes.h"

namespace hoptrace {
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
  for (auto& [file, links] : links_) {
    for (bpf_link* l : links) bpf_link__destroy(l);
  }
}

bool TlsUprobes::Attach(const tls::TlsLibrary& lib, pid_t pid, std::string* error) {
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

void TlsUprobes::Detach(const tls::TlsLibrary& lib, pid_t pid) {
  auto it = links_.find({lib.dev, lib.inode, pid});
  if (it == links_.end()) return;
  for (bpf_link* l : it->second) bpf_link__destroy(l);
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
