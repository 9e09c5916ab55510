// Who a pid is: the resource (service.name and friends) of a traced process,
// read once from /proc and cached, so it is still known after the process
// has exited. What the kernel reported at the process's exec or fork fills in
// what /proc no longer has: a CLI that lives a few milliseconds is gone from
// /proc before its first span is built, often before the agent looks at all.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/k8s/cgroup_identity.h"
#include "agent/k8s/pod_cache.h"
#include "agent/process/service_name.h"
#include "agent/trace/span.h"

namespace hoptrace {

// What the kernel told of a process at its exec or fork (HT_EV_PROC_IDENTITY).
struct KernelIdentity {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string comm;
  std::string exec_path;           // as given to execve (may be relative); empty if not at exec
  std::string exe_name;            // not seen at exec: its executable's file name, if known
  uint64_t start_boottime_ns = 0;  // 0 when unknown
  uint64_t cgroup_id = 0;          // 0 when unknown
};

struct ProcIdentityEvent;
// The identity an HT_EV_PROC_IDENTITY event reports.
KernelIdentity KernelIdentityOf(const ProcIdentityEvent& ev);

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;               // 0 when unknown
  std::string comm;             // /proc/<pid>/comm
  std::string executable_name;  // basename of /proc/<pid>/exe
  std::string executable_path;  // /proc/<pid>/exe
  std::vector<std::string> argv;
  std::string service_name;     // see DeriveServiceName; in a pod, see KubernetesServiceName
  std::string derived_service_name;  // DeriveServiceName's, before any pod metadata
  bool named_itself = false;    // service name from its own environment (OTEL_SERVICE_NAME, ...)
  std::string container_id;     // from /proc/<pid>/cgroup, empty if none
  std::string pod_uid;          // from /proc/<pid>/cgroup, empty outside a kubelet's pod
  std::string unified_cgroup;   // its cgroup v2 path (relative to the v2 root), empty if none
  uint64_t cgroup_id = 0;       // from the kernel, 0 if not reported
  std::optional<uint64_t> start_ticks;  // /proc/<pid>/stat starttime, for the instance id
  // The pod it runs in, as the PodCache said at pods_generation; null when
  // unknown (outside Kubernetes, or the API has not reported it yet).
  std::shared_ptr<const PodInfo> pod;
  std::string container_name;
  uint64_t pods_generation = 0;
  std::shared_ptr<const Resource> resource;
};


class ProcessRegistry {
 public:
  // proc_root is "/proc" except in tests.
  explicit ProcessRegistry(std::string host_name, std::string proc_root = "/proc");

  // Info of pid, read from /proc on first use. Never null: a process that is
  // already gone gets a resource with what is known (pid, and comm if given).
  std::shared_ptr<const ProcessInfo> Get(pid_t pid);
  // The kernel says who a process became (exec) or that it was born (fork):
  // replaces what was known of the pid, reading /proc now (environment,
  // command line) while the process still exists, and keeping the kernel's
  // facts for what /proc no longer has. A child seen only at its fork (or
  // first seen running its parent's executable) runs its parent's program
  // with the environment it inherited: it borrows what the parent's entry
  // knows.
  std::shared_ptr<const ProcessInfo> Learn(const KernelIdentity& identity);
  // Attributes added to every resource unless the process has them already
  // (the agent's OTEL_RESOURCE_ATTRIBUTES: deployment.environment.name, ...).
  void SetExtraAttributes(Attributes extra) { extra_attributes_ = std::move(extra); }
  // Pod metadata for processes in containers (k8s.* attributes, the pod's
  // service name). A process whose pod the cache learns about later gets a
  // new resource on its next Get(). Null: outside Kubernetes.
  void SetPods(const PodCache* pods) { pods_ = pods; }
  // Forget a pid (after exit, once its spans are out).
  void Forget(pid_t pid);
  size_t size() const { return cache_.size(); }

 private:
  std::shared_ptr<const ProcessInfo> Load(pid_t pid, const KernelIdentity* kernel);
  // info as it is, or a copy with the pod the cache knows now.
  std::shared_ptr<const ProcessInfo> WithCurrentPod(std::shared_ptr<const ProcessInfo> info) const;
  void ApplyPod(ProcessInfo* info) const;
  void Remember(pid_t pid, std::shared_ptr<const ProcessInfo> info);
  // start_ticks: /proc/<pid>/stat's starttime; without it, no instance id.
  std::shared_ptr<const Resource> BuildResource(const ProcessInfo& info) const;
  void AddExtraAttributes(Attributes& attrs) const;

  std::string host_name_;
  std::string proc_root_;
  Attributes extra_attributes_;
  std::unordered_map<pid_t, std::shared_ptr<const ProcessInfo>> cache_;
  // cgroup id -> container id, learnt from processes whose /proc/<pid>/cgroup
  // was readable, for those in the same cgroup that were gone too soon.
  std::unordered_map<uint64_t, CgroupIdentity> containers_by_cgroup_;
  const PodCache* pods_ = nullptr;
};

}  // namespace hoptrace
