// `hoptrace run`: wires loader -> event reader -> connection tracker ->
// trace stitcher -> span pipeline -> sinks, and runs the capture loop until
// asked to stop.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/loader/bpf_loader.h"

namespace hoptrace {

struct AgentOptions {
  LoaderOptions loader;
  // Processes whose executable base name, comm or service name is one of these.
  std::vector<std::string> exe_names;
  enum class Output { kTree, kJsonl } output = Output::kTree;
  std::string output_file;  // empty: stdout
  bool redact_query = true;
  std::chrono::seconds stats_interval{0};  // 0: only at exit
  std::optional<std::chrono::seconds> duration;  // stop by itself after this long
};

// Runs until *stop becomes true (or duration passes). Returns an exit code.
// Start-up problems throw StartupError.
int RunAgent(const AgentOptions& options, const std::atomic<bool>* stop);

}  // namespace hoptrace
