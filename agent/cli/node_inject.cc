#include "agent/cli/node_inject.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "agent/kernel/bpf_loader.h"
#include "uprobes/node/node_inspector.h"

namespace hoptrace {
namespace {

// Field 22 of /proc/PID/stat: tells a process from a later one with its pid.
std::string StartTime(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; i++) {
  }
  return field;
}

}  // namespace

NodeInjector::NodeInjector(const BpfLoader& capture, const std::vector<pid_t>& pids) {
  try {
    BpfLoader::QuietLibbpf quiet;
    loader_ = NodeRuntimeLoader::Start(capture);
  } catch (const StartupError& e) {
    spdlog::warn("node runtime: {}; Node processes keep the thread model", e.what());
    refused_ = pids.size();
    return;
  }
  for (pid_t pid : pids) {
    const std::string start = StartTime(pid);
    auto r = node::Inject(pid, [&](int fd) { return loader_->AddProcess(pid, fd); });
    if (!r.ok) {
      loader_->RemoveProcess(pid);
      refused_++;
      spdlog::warn("node runtime: pid {} keeps the thread model: {}", pid, r.error);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    injected_[pid] = start;
    spdlog::info("node runtime: pid {}: JavaScript agent loaded (announce fd {})", pid,
                 r.announce_fd);
  }
}

NodeInjector::~NodeInjector() { Shutdown(); }

size_t NodeInjector::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_.size();
}

void NodeInjector::OnGone(pid_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  if (injected_.erase(pid) && loader_) loader_->RemoveProcess(pid);
}

void NodeInjector::Shutdown() {
  if (!loader_) return;
  std::unordered_map<pid_t, std::string> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(injected_);
  }
  size_t removed = 0;
  for (const auto& [pid, start] : left) {
    loader_->RemoveProcess(pid);
    if (StartTime(pid) != start) continue;  // gone, or another process now
    std::string error;
    if (node::Uninstall(pid, &error)) {
      removed++;
    } else {
      spdlog::warn("node runtime: pid {}: the JavaScript agent could not be removed: {} (its "
                   "hooks stay, inert: the kernel no longer reads their announces)",
                   pid, error);
    }
  }
  const NodeRuntimeCounters c = loader_->ReadCounters();
  spdlog::info(
      "node runtime (final): processes={} refused={} uninstalled={} announces={} bound={} "
      "bound_none={} out_unknown={} unbound_writes={}",
      left.size(), refused_, removed, c.announces, c.bound, c.bound_none, c.out_unknown,
      c.unbound_writes);
  loader_.reset();
}

std::string NodeModelLine(pid_t pid) {
  const node::Eligibility e = node::CheckProcess(pid);
  if (e.ok) {
    return "node runtime: pid " + std::to_string(pid) +
           ": --node-inject can load the JavaScript agent (runtime context through the "
           "inspector; a SIGUSR1 listener of the application's own cannot be seen from here); "
           "without it: thread model";
  }
  return "node runtime: pid " + std::to_string(pid) + ": thread model (" + e.why + ")";
}

}  // namespace hoptrace
