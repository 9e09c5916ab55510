// Where the Go runtime's goroutine probes go in one executable (issue 11):
// runtime.newproc1's entry and return instructions (a goroutine is created:
// it inherits its creator's request) and runtime.send's entry (a channel
// send wakes a parked receiver: the request is handed over). No libbpf here:
// agent/kernel/go_runtime.* attaches what this finds.
//
// The kernel side reads the current goroutine from R14, which Go's amd64
// ABIInternal (Go 1.17 and later) reserves for it. That is checked, not
// assumed from a version: both functions must begin with the stack-bound
// check that reads g from R14 (`cmp rsp, [r14+0x10]`, 49 3b 66 10). A Go
// binary that fails the check (older Go, another architecture, symbols
// stripped) keeps the thread model, and the reason says why.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hoptrace::uprobes {

struct GoRuntimeSites {
  std::string path;  // the file the offsets are in
  uint64_t newproc1_entry = 0;  // file offsets, where uprobes attach
  std::vector<uint64_t> newproc1_returns;
  uint64_t send_entry = 0;
};

// Symbols the probe set needs.
inline constexpr const char* kGoNewproc1 = "runtime.newproc1";
inline constexpr const char* kGoSend = "runtime.send";

// nullopt and *why when path is not a Go executable the probes fit.
// not_go is set when the file is simply not Go (no warning needed).
std::optional<GoRuntimeSites> FindGoRuntimeSites(const std::string& path, std::string* why,
                                                 bool* not_go);

}  // namespace hoptrace::uprobes
