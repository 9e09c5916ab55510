#include "uprobes/probe_resolver.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "uprobes/process_maps.h"

namespace hoptrace::uprobes {
namespace {

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

bool NamesProcess(const ProbeSpec& spec, pid_t pid, const std::string& exe,
                  const ProcessNames& names) {
  if (spec.program_is_path()) {
    return spec.program == exe ||
           (pid > 0 && !exe.empty() &&
            SameFile(HostPath(pid, spec.program), "/proc/" + std::to_string(pid) + "/exe"));
  }
  return std::any_of(names.names.begin(), names.names.end(),
                     [&](const std::string& n) { return !n.empty() && GlobMatch(spec.program, n); });
}

}  // namespace

bool SpecNamesProcess(const ProbeSpec& spec, pid_t pid, const std::string& exe,
                      const ProcessNames& names) {
  return NamesProcess(spec, pid, exe, names);
}

namespace {

bool NamesFile(const ProbeSpec& spec, const std::string& path) {
  return spec.program_is_path() ? spec.program == path : GlobMatch(spec.program, BaseName(path));
}

}  // namespace

ProbeResolver::CachedFile* ProbeResolver::Load(const std::string& host_path, std::string* error) {
  struct stat st {};
  if (stat(host_path.c_str(), &st) != 0) {
    *error = "cannot stat " + host_path;
    return nullptr;
  }
  const auto key = std::make_tuple(uint64_t{st.st_dev}, uint64_t{st.st_ino},
                                   int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec);
  if (auto it = cache_.find(key); it != cache_.end()) return &it->second;
  auto elf = ElfFile::Open(host_path, error);
  if (!elf) return nullptr;
  if (cache_.size() >= kMaxCachedFiles) cache_.erase(cache_.begin());  // bounded; rarely hit
  CachedFile& c = cache_[key];
  c.elf = std::make_shared<const ElfFile>(std::move(*elf));
  return &c;
}

const ReturnSites* ProbeResolver::ReturnsOf(CachedFile* cached, const ElfSymbol& fn) {
  auto it = cached->returns.find(fn.address);
  if (it == cached->returns.end()) {
    std::string why;
    std::optional<ReturnSites> found;
    if (auto body = cached->elf->ReadFunction(fn)) {
      found = FindReturnSites(*body, fn.address, &why);
    } else {
      why = "its size is unknown";
    }
    if (!found) cached->return_errors[fn.address] = why;
    it = cached->returns.emplace(fn.address, std::move(found)).first;
  }
  return it->second ? &*it->second : nullptr;
}

bool ProbeResolver::Wants(pid_t pid, const ProcessNames& names) const {
  const std::string exe = ExecutablePath(pid);
  if (exe.empty()) return false;
  std::vector<Mapping> maps;
  bool maps_read = false;
  for (const ProbeSpec& spec : specs_) {
    if (NamesProcess(spec, pid, exe, names)) return true;
    if (!maps_read) {
      maps = ExecutableMappings(pid);
      maps_read = true;
    }
    for (const Mapping& m : maps) {
      if (NamesFile(spec, m.path)) return true;
    }
  }
  return false;
}

ResolveResult ProbeResolver::Resolve(pid_t pid, const ProcessNames& names) {
  ResolveResult out;
  out.matches_per_spec.assign(specs_.size(), 0);
  const std::string exe = ExecutablePath(pid);
  const std::vector<Mapping> maps = ExecutableMappings(pid);
  if (exe.empty() || maps.empty()) return out;
  // Each file once, the program first.
  std::vector<std::string> files{exe};
  for (const Mapping& m : maps) {
    if (std::find(files.begin(), files.end(), m.path) == files.end()) files.push_back(m.path);
  }
  for (size_t i = 0; i < specs_.size(); ++i) {
    const ProbeSpec& spec = specs_[i];
    const bool whole_process = NamesProcess(spec, pid, exe, names);
    for (const std::string& file : files) {
      if (!whole_process && !NamesFile(spec, file)) continue;
      std::string error;
      const std::string host = HostPath(pid, file);
      CachedFile* cached = Load(host, &error);
      if (!cached) {
        if (!whole_process) out.problems.push_back(spec.text + ": " + error);
        continue;
      }
      for (const ElfSymbol& fn : cached->elf->functions()) {
        if (!SymbolMatches(fn, spec.function)) continue;
        if (out.matches_per_spec[i] >= kMaxProbesPerSpec) {
          out.problems.push_back(spec.text + ": more than " + std::to_string(kMaxProbesPerSpec) +
                                 " functions match; the rest are not probed");
          break;
        }
        ++out.matches_per_spec[i];
        ProcessProbe p;
        p.spec = i;
        p.function = DisplayName(fn);
        p.symbol = fn.name;
        p.file = file;
        p.host_path = host;
        p.go = cached->elf->is_go();
        if (cached->elf->has_debug_info() || cached->elf->names_debug_file()) {
          auto src = cached->sources.find(fn.address);
          if (src == cached->sources.end()) {
            if (!cached->dwarf) cached->dwarf = SourceIndex::Open(host);
            src = cached->sources
                      .emplace(fn.address, cached->dwarf ? cached->dwarf->Function(fn.address)
                                                         : std::nullopt)
                      .first;
          }
          if (src->second) {
            p.source_file = src->second->file;
            p.source_line = src->second->line;
          }
        }
        p.entry_offset = fn.file_offset;
        p.entry_address = AddressOf(maps, file, fn.file_offset);
        if (p.entry_address == 0) {
          out.problems.push_back(p.function + " in " + file + ": not mapped in pid " +
                                 std::to_string(pid));
          continue;
        }
        if (need_returns_) {
          const ReturnSites* sites = ReturnsOf(cached, fn);
          if (!sites) {
            out.problems.push_back(p.function + " in " + file + ": not probed: " +
                                   cached->return_errors[fn.address]);
            continue;
          }
          std::vector<uint64_t> rel = sites->rets;
          rel.insert(rel.end(), sites->tail_jumps.begin(), sites->tail_jumps.end());
          std::sort(rel.begin(), rel.end());
          for (uint64_t r : rel) {
            p.return_offsets.push_back(fn.file_offset + r);
            p.return_addresses.push_back(AddressOf(maps, file, fn.file_offset + r));
          }
        }
        out.probes.push_back(std::move(p));
      }
    }
  }
  return out;
}

}  // namespace hoptrace::uprobes
