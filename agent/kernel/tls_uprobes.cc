#include "agent/kernel/tls_uprobes.h"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "uprobes/openssl/openssl_probes.h"

namespace hoptrace {
namespace {

bpf_link* AttachOne(bpf_program* prog, const std::string& path, const std::string& symbol,
                    bool retprobe, std::string* error) {
  bpf_uprobe_opts opts{};
  opts.sz = sizeof(opts);
  opts.func_name = symbol.c_str();
  opts.retprobe = retprobe;
  // pid -1: every process that maps the file; the program selects.
  bpf_link* link = bpf_program__attach_uprobe_opts(prog, -1, path.c_str(), 0, &opts);
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

bool TlsUprobes::Attach(const tls::TlsLibrary& lib, std::string* error) {
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
    bpf_link* ret = entry ? AttachOne(ret_prog, lib.open_path, symbol, true, &why) : nullptr;
    bpf_link* in = ret ? AttachOne(entry, lib.open_path, symbol, false, &why) : nullptr;
    if (in == nullptr) {
      if (ret) bpf_link__destroy(ret);
      spdlog::debug("tls: {} in {}: {}", symbol, lib.path, why);
      if (error->empty()) *error = why;
      continue;
    }
    links.push_back(ret);
    links.push_back(in);
    attached.push_back(symbol);
  }
  if (links.empty()) {
    spdlog::warn("tls: cannot probe {} ({}): {}; its TLS traffic is not traced", lib.path,
                 lib.kind, *error);
    return false;
  }
  std::string names;
  for (const auto& s : attached) names += (names.empty() ? "" : ", ") + s;
  spdlog::info("tls: probing {} ({}): {}", lib.path, lib.kind, names);
  auto& slot = links_[{lib.dev, lib.inode}];
  slot.insert(slot.end(), links.begin(), links.end());
  return true;
}

void TlsUprobes::Detach(const tls::TlsLibrary& lib) {
  auto it = links_.find({lib.dev, lib.inode});
  if (it == links_.end()) return;
  for (bpf_link* l : it->second) bpf_link__destroy(l);
  links_.erase(it);
  spdlog::info("tls: no traced process uses {} any more: probes removed", lib.path);
}

size_t TlsUprobes::links() const {
  size_t n = 0;
  for (const auto& [file, links] : links_) n += links.size();
  return n;
}

}  // namespace hoptrace
