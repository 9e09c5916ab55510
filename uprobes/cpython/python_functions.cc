#include "uprobes/cpython/python_functions.h"

#include "uprobes/elf_file.h"
#include "uprobes/process_maps.h"
#include "uprobes/usdt.h"

namespace hoptrace::uprobes::cpython {

std::optional<PythonProbes> FindPythonProbes(pid_t pid, std::string* why) {
  auto in = FindInterpreter(pid, why);
  if (!in) return std::nullopt;
  std::string err;
  const std::vector<UsdtProbe> probes = ReadUsdtProbes(in->open_path, &err);
  if (probes.empty()) {
    *why = in->path + ": CPython " + in->version() + " built without USDT probes (" + err +
           "): Python functions cannot be probed";
    return std::nullopt;
  }
  const std::vector<Mapping> maps = ExecutableMappings(pid);
  PythonProbes out;
  out.interpreter = *in;
  bool entry = false, exit = false;
  for (const UsdtProbe& p : probes) {
    if (p.provider == "python" && p.name == "line" && p.semaphore_address != 0) {
      out.line.semaphore_offset = p.semaphore_offset;
      const uint64_t at = AddressOf(maps, in->path, p.file_offset);
      out.line.semaphore_address = at ? p.semaphore_address + (at - p.address) : 0;
    }
    if (p.provider != "python" || (p.name != "function__entry" && p.name != "function__return")) {
      continue;
    }
    if (p.args.size() < 2 || p.args[0].reg_offset < 0 || p.args[1].reg_offset < 0 ||
        p.args[0].size != 8 || p.args[1].size != 8) {
      *why = in->path + ": python:" + p.name + " has arguments in a form not read (" +
             (p.args.empty() ? std::string("none") : p.args[0].text) + ")";
      return std::nullopt;
    }
    if (p.semaphore_address == 0) {
      *why = in->path + ": python:" + p.name + " has no semaphore";
      return std::nullopt;
    }
    UsdtSite s;
    s.file_offset = p.file_offset;
    s.address = AddressOf(maps, in->path, p.file_offset);
    s.semaphore_offset = p.semaphore_offset;
    // Same load bias as the code: the probe's address in the file layout
    // and in the process differ by it.
    s.semaphore_address = s.address ? p.semaphore_address + (s.address - p.address) : 0;
    s.file_reg = p.args[0].reg_offset;
    s.name_reg = p.args[1].reg_offset;
    if (s.address == 0) {
      *why = in->path + ": python:" + p.name + " not mapped";
      return std::nullopt;
    }
    (p.name == "function__entry" ? out.entry : out.exit) = s;
    (p.name == "function__entry" ? entry : exit) = true;
  }
  if (!entry || !exit) {
    *why = in->path + ": no python:function__entry/function__return USDT probes";
    return std::nullopt;
  }
  if (out.line.semaphore_offset == 0 || out.line.semaphore_address == 0) {
    *why = in->path + ": no python:line USDT probe (its semaphore enables function__entry)";
    return std::nullopt;
  }
  auto elf = ElfFile::Open(in->open_path, &err, SymbolTables::kDynamicOnly);
  const ElfSymbol* fatal = nullptr;
  for (const ElfSymbol& f : elf ? elf->functions() : std::vector<ElfSymbol>{}) {
    if (f.name == "Py_FatalError") fatal = &f;
  }
  if (!fatal) {
    *why = in->path + ": no Py_FatalError symbol to hold python:line's semaphore with";
    return std::nullopt;
  }
  out.line.file_offset = fatal->file_offset;
  out.line.address = AddressOf(maps, in->path, fatal->file_offset);
  if (out.line.address == 0) {
    *why = in->path + ": Py_FatalError not mapped";
    return std::nullopt;
  }
  return out;
}

}  // namespace hoptrace::uprobes::cpython
