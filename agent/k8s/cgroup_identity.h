// Which container and which pod a process runs in, read off its cgroup path
// (/proc/<pid>/cgroup). Pure text parsing: no /proc, no Kubernetes API.
#pragma once

#include <string>
#include <string_view>

namespace hoptrace {

struct CgroupIdentity {
  // The runtime's 64-lower-hex-digit id, as the Kubernetes API reports it in
  // containerStatuses[].containerID after the "containerd://" prefix. Empty
  // when the process is not in a container.
  std::string container_id;
  // The pod's metadata.uid in its canonical form (8-4-4-4-12 lower hex; a
  // static pod's 32-hex config hash as it is). Empty outside a kubelet's pod.
  std::string pod_uid;
  // The cgroup v2 path ("0::" line) relative to the cgroup v2 root, or empty
  // on a pure cgroup v1 host.
  std::string unified_path;
};

// Parses /proc/<pid>/cgroup ("hierarchy-ID:controllers:path" lines). Knows
// the layouts of every runtime and cgroup driver kubelet uses:
//   0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/
//       cri-containerd-<id>.scope                     containerd, systemd driver (v2)
//   ...-pod<uid_>.slice/crio-<id>.scope               CRI-O, systemd driver
//   ...-pod<uid_>.slice/docker-<id>.scope             dockershim / cri-dockerd
//   11:memory:/kubepods/burstable/pod<uid>/<id>       containerd/docker, cgroupfs driver (v1)
//   0::/kubepods/pod<uid>/crio-<id>                   CRI-O, cgroupfs driver
//   0::/system.slice/docker-<id>.scope, 4:cpu:/docker/<id>, libpod-<id>.scope
//                                                     plain Docker and Podman
// Paths seen from another cgroup namespace start with "/../.." and are read
// the same way. The conmon of CRI-O and Podman ("crio-conmon-<id>.scope") is
// not the container: it gets no id.
CgroupIdentity ParseCgroupFile(std::string_view proc_pid_cgroup);

}  // namespace hoptrace
