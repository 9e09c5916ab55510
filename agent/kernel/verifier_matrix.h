// `hoptrace check --config-matrix`: every configuration `hoptrace run`
// offers (selection mode x propagation x read guard x payload size), each
// loaded the way `run` loads it (CaptureObject::Open, ConfigurePropagation),
// with the verifier's processed instructions per program. A program that
// does not load, or uses more than kVerifierBudget, fails the matrix.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/kernel/verifier_cost.h"

namespace hoptrace {

struct ObjectCosts {
  std::string object;  // "capture", "propagation", "net_probe"
  std::vector<ProgramCost> programs;
  std::string error;  // the object did not load: why
};

struct MatrixOptions {
  std::vector<uint32_t> payloads = {256, 1024, 4096, 8192};  // --payload-bytes range and default
  int64_t budget = kVerifierBudget;
};

// Runs the matrix, printing one block per configuration and a summary (the
// most any configuration cost, per program). Returns true if every program
// of every configuration loaded within the budget.
bool RunConfigMatrix(const MatrixOptions& options, std::FILE* out);

struct LoaderOptions;

// What each program of an object costs when loaded as `run` would load it
// with these options (maps of its own). Programs the kernel loads without
// a count (before 5.16) are loaded again one by one with the verifier's log.
ObjectCosts MeasureCapture(const LoaderOptions& options);
ObjectCosts MeasurePropagation(const LoaderOptions& capture_options, const std::string& guard);
ObjectCosts MeasureNetProbe();
// bpf/uprobe_trace.bpf.c (--probe), on maps of its own.
ObjectCosts MeasureUprobes();

// Prints the costs of one object, one program a line (hoptrace check --verbose).
void PrintObjectCosts(const ObjectCosts& costs, int64_t budget, std::FILE* out);

}  // namespace hoptrace
