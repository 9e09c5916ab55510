#include "uprobes/probe_manager.h"

#include <time.h>

#include <spdlog/spdlog.h>

#include "uprobes/cpython/python_functions.h"
#include "uprobes/process_maps.h"

namespace hoptrace::uprobes {
namespace {

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

// Where C++ exceptions start and are caught: libstdc++'s ABI entry points
// (kept in that order: index = spec).
std::vector<ProbeSpec> ExceptionSpecs() {
  std::string error;
  return {*ParseProbeSpec("libstdc++.so*:__cxa_throw", &error),
          *ParseProbeSpec("libstdc++.so*:__cxa_begin_catch", &error)};
}

std::vector<ProbeSpec> Native(const std::vector<ProbeSpec>& specs) {
  std::vector<ProbeSpec> out;
  for (const ProbeSpec& s : specs) {
    if (!s.python()) out.push_back(s);
  }
  return out;
}

}  // namespace

ProbeManager::ProbeManager(std::vector<ProbeSpec> specs, UprobeAttacher* attacher)
    : resolver_(Native(specs)),
      exception_resolver_(ExceptionSpecs(), /*need_returns=*/false),
      attacher_(attacher) {
  matched_.assign(resolver_.specs().size(), 0);
  for (ProbeSpec& s : specs) {
    if (s.python()) py_specs_.push_back(std::move(s));
  }
  py_matched_.assign(py_specs_.size(), 0);
}

bool ProbeManager::Wants(pid_t pid, const ProcessNames& names) const {
  if (resolver_.Wants(pid, names)) return true;
  if (py_specs_.empty()) return false;
  const std::string exe = ExecutablePath(pid);
  for (const ProbeSpec& s : py_specs_) {
    if (!exe.empty() && SpecNamesProcess(s, pid, exe, names)) return true;
  }
  return false;
}

uint32_t ProbeManager::PythonFunctionId(const ProbeSpec& spec) {
  auto key = std::make_tuple("py:" + spec.py_file, spec.function);
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  FunctionInfo f;
  f.name = spec.function;
  f.symbol = spec.function;
  f.file = spec.py_file;
  f.python = true;
  functions_.push_back(std::move(f));
  const uint32_t id = static_cast<uint32_t>(functions_.size()) | kPythonFunctionBit;
  ids_[key] = id;
  return id;
}

void ProbeManager::AttachPython(pid_t pid, const ProcessNames& names, Proc& proc) {
  if (py_specs_.empty() || proc.python_tried) return;
  const std::string exe = ExecutablePath(pid);
  std::vector<size_t> mine;
  for (size_t i = 0; i < py_specs_.size(); ++i) {
    if (!exe.empty() && SpecNamesProcess(py_specs_[i], pid, exe, names)) mine.push_back(i);
  }
  if (mine.empty()) return;
  proc.python_tried = true;
  proc.python_pending = false;
  std::string why;
  auto probes = cpython::FindPythonProbes(pid, &why);
  if (!probes) {
    // At its exec a program has mapped itself and the dynamic loader only:
    // a libpython3.X.so comes a few milliseconds later.
    if (Young(proc, std::chrono::steady_clock::now())) {
      proc.python_tried = false;
      proc.python_pending = true;
      spdlog::debug("probe: pid {}: no CPython mapped yet ({}): looked for again", pid, why);
      return;
    }
    spdlog::warn("probe: pid {}: Python functions not probed: {}", pid, why);
    return;
  }
  PythonProcess py;
  py.runtime = probes->interpreter.runtime_address;
  py.offsets = probes->interpreter.offsets;
  py.entry_file_reg = probes->entry.file_reg;
  py.entry_name_reg = probes->entry.name_reg;
  py.return_file_reg = probes->exit.file_reg;
  py.return_name_reg = probes->exit.name_reg;
  std::string list;
  for (size_t i : mine) {
    py.wants.push_back(PythonWant{PythonFunctionId(py_specs_[i]), py_specs_[i].function,
                                  py_specs_[i].py_file});
    list += (list.empty() ? "" : ", ") + py_specs_[i].py_file + ":" + py_specs_[i].function;
  }
  std::string error;
  if (!attacher_->SetPython(pid, py, &error)) {
    spdlog::warn("probe: pid {}: Python functions not probed: {}", pid, error);
    return;
  }
  const std::string host = HostPath(pid, probes->interpreter.path);
  std::vector<AttachSite> sites;
  for (const auto& [site, kind] : {std::make_pair(probes->entry, SiteKind::kPyEntry),
                                   std::make_pair(probes->exit, SiteKind::kPyReturn)}) {
    if (!proc.addresses.insert(site.address).second) continue;
    AttachSite a{host, site.file_offset, site.address, 0, kind, false};
    a.ref_ctr_offset = site.semaphore_offset;
    sites.push_back(a);
  }
  if (proc.addresses.insert(probes->line.address).second) {
    AttachSite a{host, probes->line.file_offset, probes->line.address, 0,
                 SiteKind::kPyLineHolder, false};
    a.ref_ctr_offset = probes->line.semaphore_offset;
    sites.push_back(a);
  }
  std::vector<std::string> errors;
  const size_t n = attacher_->Attach(pid, sites, &errors);
  sites_attached_ += n;
  for (const std::string& e : errors) spdlog::warn("probe: pid {}: {}", pid, e);
  if (n == 0) return;
  for (size_t i : mine) ++py_matched_[i];
  python_pids_.insert(pid);
  spdlog::info("probe: pid {}: {} Python function(s) ({}), {} probe(s) attached in {} "
               "(CPython {} USDT python:function__entry/return)",
               pid, mine.size(), list, n, probes->interpreter.path.substr(
                   probes->interpreter.path.rfind('/') + 1), probes->interpreter.version());
  if (!python_cost_said_) {
    python_cost_said_ = true;
    spdlog::warn("probe: Python function probes trap on EVERY Python call of a probed process "
                 "(two uprobe breakpoints, CPython computing the probes' arguments) and slow "
                 "every bytecode instruction (CPython 3.11 runs its tracing dispatch to report "
                 "function entries), probed or not: microseconds per call; see README "
                 "\"What Python probes cost\"");
  }
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
  id &= ~kPythonFunctionBit;
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
  if (first) {
    proc.first_seen = std::chrono::steady_clock::now();
    proc.resolved_ns = MonotonicNs();
    proc.exe = ExecutablePath(pid);
  }
  proc.names = names;
  proc.files = MappedFiles(pid);
  AttachPython(pid, names, proc);
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
  python_pids_.erase(pid);
}

bool ProbeManager::OnExec(pid_t pid, uint64_t exec_ns) {
  auto it = procs_.find(pid);
  if (it == procs_.end() || it->second.resolved_ns > exec_ns) return false;
  spdlog::debug("probe: pid {}: exec'd: the probes of the program it ran before go", pid);
  OnExit(pid);
  return true;
}

void ProbeManager::Rescan(bool young_only) {
  std::vector<pid_t> gone, changed, grown_up;
  const auto now = std::chrono::steady_clock::now();
  for (auto& [pid, proc] : procs_) {
    if (young_only && !Young(proc, now)) continue;
    // It exec'd since (it runs another program): OnExec, at its event, is
    // for that; resolving now would attach in the new program with the old
    // one's names and again at the event.
    if (const std::string exe = ExecutablePath(pid); !exe.empty() && exe != proc.exe) continue;
    std::set<std::string> files = MappedFiles(pid);
    if (files.empty()) {
      gone.push_back(pid);
    } else if (files != proc.files) {
      changed.push_back(pid);
    } else if (proc.python_pending && !Young(proc, now)) {
      grown_up.push_back(pid);  // named by a Python spec, and still no CPython: say so
    }
  }
  for (pid_t pid : gone) OnExit(pid);
  for (pid_t pid : changed) OnProcess(pid, procs_[pid].names);
  for (pid_t pid : grown_up) {
    Proc& proc = procs_[pid];
    AttachPython(pid, proc.names, proc);
  }
}

std::vector<std::string> ProbeManager::Unmatched() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < matched_.size(); ++i) {
    if (matched_[i] == 0) out.push_back(resolver_.specs()[i].text);
  }
  for (size_t i = 0; i < py_matched_.size(); ++i) {
    if (py_matched_[i] == 0) out.push_back(py_specs_[i].text);
  }
  return out;
}

}  // namespace hoptrace::uprobes
