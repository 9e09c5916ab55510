#include "agent/k8s/cgroup_identity.h"

#include <algorithm>

namespace hoptrace {
namespace {

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// One path component's container id: "<id>", "<prefix>-<id>.scope" or the
// runc "slice:prefix:<id>" form some containerd versions leave in the path.
std::string_view ContainerIdOf(std::string_view part) {
  if (part.ends_with(".scope")) part.remove_suffix(6);
  // The monitor process next to a container, not the container itself.
  if (part.find("-conmon-") != std::string_view::npos ||
      part.starts_with("conmon-")) {
    return {};
  }
  const size_t sep = part.find_last_of("-:");
  if (sep != std::string_view::npos) part.remove_prefix(sep + 1);
  if (part.size() == 64 && IsLowerHex(part)) return part;
  return {};
}

// A pod uid as kubelet writes it in a cgroup name: "pod<uid>" (cgroupfs) or
// "kubepods[-<qos>]-pod<uid with _ for ->.slice" (systemd, which reserves '-'
// for the hierarchy).
std::string PodUidOf(std::string_view part) {
  // runc's "<slice>:<prefix>:<id>" names the pod's slice before the first ':'.
  part = part.substr(0, part.find(':'));
  if (part.ends_with(".slice")) part.remove_suffix(6);
  const size_t pod = part.rfind("pod");
  if (pod == std::string_view::npos || (pod != 0 && part[pod - 1] != '-')) return {};
  if (pod != 0 && !part.starts_with("kubepods")) return {};
  std::string uid(part.substr(pod + 3));
  std::replace(uid.begin(), uid.end(), '_', '-');
  // UUID (36) or a static pod's hash (32).
  const bool uuid = uid.size() == 36 && uid[8] == '-' && uid[13] == '-' && uid[18] == '-' &&
                    uid[23] == '-';
  std::string digits = uid;
  digits.erase(std::remove(digits.begin(), digits.end(), '-'), digits.end());
  if ((uuid || uid.size() == 32) && digits.size() == 32 && IsLowerHex(digits)) return uid;
  return {};
}

}  // namespace

CgroupIdentity ParseCgroupFile(std::string_view cgroup) {
  CgroupIdentity out;
  while (!cgroup.empty()) {
    const size_t nl = cgroup.find('\n');
    const std::string_view line = cgroup.substr(0, nl);
    cgroup.remove_prefix(nl == std::string_view::npos ? cgroup.size() : nl + 1);
    // hierarchy-ID:controller-list:cgroup-path; the path may itself hold ':'.
    const size_t c1 = line.find(':');
    const size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view path = line.substr(c2 + 1);
    if (line.substr(0, c2 + 1) == "0::") out.unified_path = std::string(path);
    // The deepest component with an id wins: pods and slices above a
    // container never have a 64-hex name; a child cgroup a container made
    // for itself ("<id>.scope/container") is below it.
    std::string_view container;
    std::string pod;
    std::string_view rest = path;
    while (!rest.empty() && (container.empty() || pod.empty())) {
      const size_t slash = rest.rfind('/');
      const std::string_view part =
          rest.substr(slash == std::string_view::npos ? 0 : slash + 1);
      rest = rest.substr(0, slash == std::string_view::npos ? 0 : slash);
      if (container.empty()) container = ContainerIdOf(part);
      if (pod.empty()) pod = PodUidOf(part);
    }
    if (out.container_id.empty() && !container.empty()) out.container_id = container;
    if (out.pod_uid.empty() && !pod.empty()) out.pod_uid = std::move(pod);
  }
  return out;
}

}  // namespace hoptrace
