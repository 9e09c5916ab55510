// Who a pid is: the resource (service.name and friends) of a traced process,
// read once from /proc and cached, so it is still known after the process
// has exited.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/service_name.h"
#include "agent/span.h"

namespace hoptrace {

struct ProcessInfo {
  pid_t pid = 0;
  std::string comm;             // /proc/<pid>/comm
  std::string executable_name;  // basename of /proc/<pid>/exe
  std::string executable_path;  // /proc/<pid>/exe
  std::vector<std::string> argv;
  std::string service_name;     // see DeriveServiceName
  std::string container_id;     // from /proc/<pid>/cgroup, empty if none
  std::shared_ptr<const Resource> resource;
};


class ProcessRegistry {
 public:
  // proc_root is "/proc" except in tests.
  explicit ProcessRegistry(std::string host_name, std::string proc_root = "/proc");

  // Info of pid, read from /proc on first use. Never null: a process that is
  // already gone gets a resource with what is known (pid, and comm if given).
  std::shared_ptr<const ProcessInfo> Get(pid_t pid);
  // Attributes added to every resource unless the process has them already
  // (the agent's OTEL_RESOURCE_ATTRIBUTES: deployment.environment.name, ...).
  void SetExtraAttributes(Attributes extra) { extra_attributes_ = std::move(extra); }
  // Forget a pid (after exit, once its spans are out).
  void Forget(pid_t pid);
  size_t size() const { return cache_.size(); }

 private:
  std::shared_ptr<const ProcessInfo> Load(pid_t pid);
  void AddExtraAttributes(Attributes& attrs) const;

  std::string host_name_;
  std::string proc_root_;
  Attributes extra_attributes_;
  std::unordered_map<pid_t, std::shared_ptr<const ProcessInfo>> cache_;
};

}  // namespace hoptrace
