#include "uprobes/probe_manager.h"

#include <spdlog/spdlog.h>

#include "uprobes/process_maps.h"

namespace hoptrace::uprobes {
namespace {

// Where C++ exceptions start and are caught: libstdc++'s ABI entry points
// (kept in that order: index = spec).
std::vector<ProbeSpec> ExceptionSpecs() {
  std::string error;
  return {*ParseProbeSpec("libstdc++.so*:__cxa_throw", &error),
          *ParseProbeSpec("libstdc++.so*:__cxa_begin_catch", &error)};
}

}  // namespace

ProbeManager::ProbeManager(std::vector<ProbeSpec> specs, UprobeAttacher* attacher)
    : resolver_(std::move(specs)),
      exception_resolver_(ExceptionSpecs(), /*need_returns=*/false),
      attacher_(attacher) {
  matched_.assign(resolver_.specs().size(), 0);
}

uint32_t ProbeManager::FunctionId(const ProcessProbe& p) {
  auto key = std::make_tuple(p.file, p.symbol);
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  functions_.push_back(FunctionInfo{p.function, p.symbol, p.file, p.go, p.source_file, p.source_line});
  const uint32_t id = static_cast<uint32_t>(functions_.size());
  ids_[key] = id;
  return id;
}

bool ProbeManager::NamesLibraries() const {
  for (const ProbeSpec& s : resolver_.specs()) {
    if (s.program.find(".so") != std::string::npos) return true;
  }
  return false;
}

const FunctionInfo* ProbeManager::Function(uint32_t id) const {
  return id >= 1 && id <= functions_.size() ? &functions_[id - 1] : nullptr;
}

std::set<std::string> ProbeManager::MappedFiles(pid_t pid) const {
  std::set<std::string> files;
  for (const Mapping& m : ExecutableMappings(pid)) files.insert(m.path);
  return files;
}

ResolveResult ProbeManager::OnProcess(pid_t pid, const ProcessNames& names) {
  const bool first = procs_.count(pid) == 0;
  Proc& proc = procs_[pid];
  if (first) proc.first_seen = std::chrono::steady_clock::now();
  proc.names = names;
  proc.files = MappedFiles(pid);
  ResolveResult r = resolver_.Resolve(pid, names);
  for (size_t i = 0; i < r.matches_per_spec.size(); ++i) matched_[i] += r.matches_per_spec[i];
  for (const std::string& p : r.problems) spdlog::warn("probe: pid {}: {}", pid, p);

  std::vector<AttachSite> sites;
  bool native = false;
  auto add = [&](const std::string& host, uint64_t off, uint64_t addr, uint32_t id, SiteKind kind,
                 bool go) {
    if (addr == 0 || !proc.addresses.insert(addr).second) return;  // attached before
    sites.push_back(AttachSite{host, off, addr, id, kind, go});
  };
  for (const ProcessProbe& p : r.probes) {
    const uint32_t id = FunctionId(p);
    native |= !p.go;
    add(p.host_path, p.entry_offset, p.entry_address, id, SiteKind::kEntry, p.go);
    for (size_t i = 0; i < p.return_offsets.size(); ++i) {
      add(p.host_path, p.return_offsets[i], p.return_addresses[i], id, SiteKind::kReturn, p.go);
    }
  }
  if (native) {
    // Exceptions thrown through probed C++ frames: their type and time,
    // and where they are caught.
    for (const ProcessProbe& t : exception_resolver_.Resolve(pid, names).probes) {
      add(t.host_path, t.entry_offset, t.entry_address, 0,
          t.spec == 0 ? SiteKind::kThrow : SiteKind::kCatch, false);
    }
  }
  if (!sites.empty()) {
    std::vector<std::string> errors;
    const size_t n = attacher_->Attach(pid, sites, &errors);
    sites_attached_ += n;
    for (const std::string& e : errors) spdlog::warn("probe: pid {}: {}", pid, e);
    std::set<std::string> where;
    for (const AttachSite& s : sites) where.insert(s.host_path.substr(s.host_path.rfind('/') + 1));
    std::string files;
    for (const std::string& f : where) files += (files.empty() ? "" : ", ") + f;
    spdlog::info("probe: pid {}: {} function(s), {} probe(s) attached in {}", pid, r.probes.size(),
                 n, files);
  }
  return r;
}

void ProbeManager::OnExit(pid_t pid) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return;
  attacher_->Detach(pid);
  procs_.erase(it);
}

void ProbeManager::Rescan(bool young_only) {
  std::vector<pid_t> gone, changed;
  const auto now = std::chrono::steady_clock::now();
  for (auto& [pid, proc] : procs_) {
    if (young_only && now - proc.first_seen > kYoung) continue;
    std::set<std::string> files = MappedFiles(pid);
    if (files.empty()) {
      gone.push_back(pid);
    } else if (files != proc.files) {
      changed.push_back(pid);
    }
  }
  for (pid_t pid : gone) OnExit(pid);
  for (pid_t pid : changed) OnProcess(pid, procs_[pid].names);
}

std::vector<std::string> ProbeManager::Unmatched() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < matched_.size(); ++i) {
    if (matched_[i] == 0) out.push_back(resolver_.specs()[i].text);
  }
  return out;
}

}  // namespace hoptrace::uprobes
