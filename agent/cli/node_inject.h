// --node-inject: the Node.js processes the user opted in get hoptrace's
// JavaScript agent (uprobes/node/node_inspector.h), and the kernel the
// Node.js runtime object (agent/kernel/node_runtime_loader.h) that turns the
// script's announces into the parent of their outgoing requests. A process
// that cannot take it keeps the thread model, said in one line. At the
// end the script is uninstalled from every process still running.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/kernel/node_runtime_loader.h"

namespace hoptrace {

class NodeInjector {
 public:
  // Loads the kernel side and injects each pid; never throws (a failure
  // leaves those processes on the thread model, logged).
  NodeInjector(const BpfLoader& capture, const std::vector<pid_t>& pids);
  ~NodeInjector();
  // pid exited or exec'd: its script is gone with its image.
  void OnGone(pid_t pid);
  // Uninstalls the scripts, logs the final counters.
  void Shutdown();
  size_t injected() const;

 private:
  std::unique_ptr<NodeRuntimeLoader> loader_;
  mutable std::mutex mu_;
  std::unordered_map<pid_t, std::string> injected_;  // pid -> start time (/proc stat)
  size_t refused_ = 0;
};

// One line for `hoptrace check --pid N`: which model serves a Node process.
std::string NodeModelLine(pid_t pid);

}  // namespace hoptrace
