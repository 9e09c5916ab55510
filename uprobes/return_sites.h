// Where a function gives control back to its caller, found by disassembling
// its body (capstone): every `ret`, and every direct `jmp` whose target lies
// outside the body (a tail call: the callee returns straight to our caller).
//
// Why not uretprobes: a uretprobe replaces the return address on the stack
// with a trampoline. A C++ exception unwinding through such a frame finds no
// unwind info for the trampoline and calls std::terminate (measured on this
// kernel, 6.18: the process aborts), and Go copies goroutine stacks while a
// call runs, so a hijacked return address moves under the kernel's feet.
// Probes on the return instructions change nothing on the stack.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hoptrace::uprobes {

struct ReturnSites {
  std::vector<uint64_t> rets;        // offsets (from the body's start) of ret instructions
  std::vector<uint64_t> tail_jumps;  // offsets of direct jmps out of the body
};

// body: the function's bytes; address: its virtual address (jump targets are
// absolute). nullopt and *error when the body does not disassemble cleanly
// to its end: a probe placed mid-instruction would corrupt the process, so
// such a function gets no probe at all. Both lists empty: the function
// never returns (it always panics or throws); its calls end as abandoned.
std::optional<ReturnSites> FindReturnSites(std::span<const uint8_t> body, uint64_t address,
                                           std::string* error);

}  // namespace hoptrace::uprobes
