// `hoptrace check`: which kernel features work here, and what each missing
// one costs, in plain words.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "agent/kernel/verifier_matrix.h"

namespace hoptrace {

struct PreflightItem {
  enum class Status { kOk, kMissing, kInfo };
  std::string feature;
  Status status = Status::kOk;
  std::string detail;      // what was found
  std::string needed_for;  // what hoptrace uses it for
  bool required = false;   // capture cannot work without it
};

// costs: when given, what the verifier spent on each program the check
// loaded (hoptrace check --verbose).
std::vector<PreflightItem> RunPreflight(std::vector<ObjectCosts>* costs = nullptr);

// `hoptrace check --pid N`: the TLS libraries process pid maps (libssl, or
// OpenSSL inside its executable) and whether each can be probed.
std::vector<PreflightItem> TlsLibraryItems(int pid);

// Prints the items as a table; returns false if a required item is missing.
bool PrintPreflight(const std::vector<PreflightItem>& items, std::FILE* out);

}  // namespace hoptrace
