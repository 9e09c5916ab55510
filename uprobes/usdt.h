// SystemTap USDT probes of an ELF file (the .note.stapsdt notes, as
// `readelf -n` shows them): where each probe's nop is (a file offset, what
// a uprobe attaches at), the file offset of its semaphore (the uprobe's
// ref_ctr_offset: the kernel counts attached probes there, and the program
// runs the probe's argument code only while it is non-zero), and its
// arguments ("8@%rbp": an 8-byte value in rbp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hoptrace::uprobes {

struct UsdtArg {
  int size = 0;       // bytes; negative: signed
  std::string text;   // as the note has it, e.g. "%rbp"
  int reg_offset = -1;  // offsetof(struct pt_regs, reg) for a register argument, else -1
};

struct UsdtProbe {
  std::string provider, name;
  uint64_t address = 0;           // of the probe's nop, in the file's layout (adjusted by .stapsdt.base)
  uint64_t file_offset = 0;       // the same place in the file
  uint64_t semaphore_address = 0;  // 0: none
  uint64_t semaphore_offset = 0;   // its file offset: ref_ctr_offset
  std::vector<UsdtArg> args;
};

// Every USDT probe of the file; empty (and *error) when it cannot be read.
std::vector<UsdtProbe> ReadUsdtProbes(const std::string& path, std::string* error);

// "8@%rbp" -> {8, "%rbp", 32}; register offsets are x86_64's struct pt_regs.
UsdtArg ParseUsdtArg(const std::string& spec);

}  // namespace hoptrace::uprobes
