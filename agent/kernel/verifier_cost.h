// What the verifier spent on each program of a BPF object: processed
// instructions against the one-million budget, per program, from the kernel
// itself. Used by `hoptrace check --verbose` and its --config-matrix.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct bpf_object;

namespace hoptrace {

// The share of the verifier's one-million-instruction budget a program of
// ours may use on any configuration we offer: wide headroom for other
// kernels and compilers.
inline constexpr int64_t kVerifierBudget = 250'000;

struct ProgramCost {
  std::string program;
  int64_t insns = -1;  // processed instructions, -1 if unknown
  bool loaded = false;
  std::string error;   // the verifier's last line when not loaded
};

// Records what the verifier spent on every program obj will load, for
// Costs() afterwards. Call between open and load; the object must outlive
// the recorder. with_log: also ask for the verifier's statistics log
// (BPF_LOG_STATS), for kernels without verified_insns and for programs that
// fail; off for loads that must not depend on it (a log that overflows its
// buffer fails the load with ENOSPC).
class CostRecorder {
 public:
  explicit CostRecorder(bpf_object* obj, bool with_log = false);
  ~CostRecorder();
  CostRecorder(const CostRecorder&) = delete;
  CostRecorder& operator=(const CostRecorder&) = delete;

  // After load (whether it succeeded or not): one entry per program that
  // was to be loaded. bpf_prog_info.verified_insns where the kernel reports
  // it (5.16+, aba64c7da983 "bpf: Add verified_insns to bpf_prog_info and
  // fdinfo"), else "processed N insns" from the log.
  // load_err: what the object's load returned.
  std::vector<ProgramCost> Costs(int load_err = 0) const;

 private:
  struct Slot;
  bpf_object* obj_;
  bool with_log_;
  std::vector<std::unique_ptr<Slot>> slots_;
};

// "processed N insns" of a verifier log, or -1.
int64_t ProcessedInsnsFromLog(const std::string& log);

}  // namespace hoptrace
