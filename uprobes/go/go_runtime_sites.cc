#include "uprobes/go/go_runtime_sites.h"

#include <algorithm>
#include <cstring>

#include "uprobes/elf_file.h"
#include "uprobes/return_sites.h"

namespace hoptrace::uprobes {
namespace {

// cmp rsp, qword ptr [r14 + 0x10]: the stack-bound check of an ABIInternal
// function, reading g (in R14) -> stack.lo + StackGuard.
constexpr uint8_t kR14StackCheck[] = {0x49, 0x3b, 0x66, 0x10};

bool StartsWithR14Check(const std::vector<uint8_t>& body) {
  return body.size() >= sizeof(kR14StackCheck) &&
         std::memcmp(body.data(), kR14StackCheck, sizeof(kR14StackCheck)) == 0;
}

}  // namespace

std::optional<GoRuntimeSites> FindGoRuntimeSites(const std::string& path, std::string* why,
                                                 bool* not_go) {
  *not_go = false;
  auto elf = ElfFile::Open(path, why);
  if (!elf) return std::nullopt;
  if (!elf->is_go()) {
    *not_go = true;
    *why = "not a Go executable";
    return std::nullopt;
  }
  const ElfSymbol* newproc1 = nullptr;
  const ElfSymbol* send = nullptr;
  for (const ElfSymbol& fn : elf->functions()) {
    if (fn.name == kGoNewproc1) newproc1 = &fn;
    if (fn.name == kGoSend) send = &fn;
  }
  if (newproc1 == nullptr || send == nullptr) {
    *why = std::string("no symbol ") + (newproc1 ? kGoSend : kGoNewproc1) +
           " (stripped Go binary?)";
    return std::nullopt;
  }
  GoRuntimeSites out;
  out.path = path;
  for (const ElfSymbol* fn : {newproc1, send}) {
    auto body = elf->ReadFunction(*fn);
    if (!body) {
      *why = "cannot read " + fn->name;
      return std::nullopt;
    }
    if (!StartsWithR14Check(*body)) {
      *why = fn->name + " does not start with the R14 stack check (not amd64 ABIInternal)";
      return std::nullopt;
    }
    if (fn == newproc1) {
      std::string err;
      auto sites = FindReturnSites(*body, fn->address, &err);
      if (!sites || sites->rets.empty()) {
        *why = "runtime.newproc1: no return instructions found" + (err.empty() ? "" : ": " + err);
        return std::nullopt;
      }
      // A tail call out of newproc1 would return the new g from the callee:
      // its RET is not ours. Go's compiler emits none here; refuse if so.
      if (!sites->tail_jumps.empty()) {
        *why = "runtime.newproc1 has tail calls";
        return std::nullopt;
      }
      for (uint64_t off : sites->rets) out.newproc1_returns.push_back(fn->file_offset + off);
    }
  }
  out.newproc1_entry = newproc1->file_offset;
  out.send_entry = send->file_offset;
  return out;
}

}  // namespace hoptrace::uprobes
