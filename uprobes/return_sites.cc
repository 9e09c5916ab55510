#include "uprobes/return_sites.h"

#include <capstone/capstone.h>

namespace hoptrace::uprobes {

std::optional<ReturnSites> FindReturnSites(std::span<const uint8_t> body, uint64_t address,
                                           std::string* error) {
  csh cs;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) {
    *error = "capstone: cannot open the x86-64 disassembler";
    return std::nullopt;
  }
  cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
  cs_insn* insn = cs_malloc(cs);
  const uint8_t* code = body.data();
  size_t left = body.size();
  uint64_t pc = address;
  ReturnSites out;
  while (left > 0 && cs_disasm_iter(cs, &code, &left, &pc, insn)) {
    const uint64_t at = insn->address - address;
    if (insn->id == X86_INS_RET) {
      out.rets.push_back(at);
    } else if (insn->id == X86_INS_JMP && insn->detail->x86.op_count == 1 &&
               insn->detail->x86.operands[0].type == X86_OP_IMM) {
      const uint64_t target = static_cast<uint64_t>(insn->detail->x86.operands[0].imm);
      if (target < address || target >= address + body.size()) out.tail_jumps.push_back(at);
    }
  }
  cs_free(insn, 1);
  cs_close(&cs);
  // What did not disassemble must be padding (int3, nop, zeros) after the
  // last instruction, else our idea of instruction boundaries is not trusted.
  for (; left > 0; --left, ++code) {
    if (*code != 0xcc && *code != 0x90 && *code != 0x00) {
      *error = "the body does not disassemble cleanly at offset " +
               std::to_string(body.size() - left);
      return std::nullopt;
    }
  }
  // No return at all is fine: a function that always panics or throws
  // (Go's compiler drops the ret after a panic) is timed until a probe
  // further out finds it abandoned.
  return out;
}

}  // namespace hoptrace::uprobes
