#include "agent/k8s/pod_process_scanner.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <fstream>
#include <sstream>

#include "agent/k8s/cgroup_identity.h"

namespace hoptrace {

PodProcessScanner::PodProcessScanner(const PodCache* pods, PodSelection selection, pid_t self,
                                     std::string proc_root)
    : pods_(pods),
      selection_(std::move(selection)),
      self_(self),
      proc_root_(std::move(proc_root)) {}

PodProcessScanner::State PodProcessScanner::Decide(const Seen& seen) const {
  if (seen.container_id.empty() && seen.pod_uid.empty()) return State::kNotInPod;
  auto match = pods_->Find(seen.container_id, seen.pod_uid);
  // The container's name may be all a selector lacks: wait for the API to
  // name the container rather than decide on the pod alone.
  if (!match || match->container_name.empty()) return State::kPodUnknown;
  return selection_.Selects(*match->pod, match->container_name) ? State::kSelected
                                                                : State::kNotSelected;
}

bool PodProcessScanner::Read(pid_t pid, Seen* out) const {
  std::ifstream in(proc_root_ + "/" + std::to_string(pid) + "/cgroup");
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  const CgroupIdentity id = ParseCgroupFile(text.str());
  *out = Seen{State::kNotInPod, id.container_id, id.pod_uid, id.unified_path};
  out->state = Decide(*out);
  return true;
}

bool PodProcessScanner::Consider(pid_t pid) {
  if (pid == self_) return false;
  Seen seen;
  if (!Read(pid, &seen)) return false;
  // An exec keeps the pid: a process seen before may have been decided
  // already (and a pid reused by a new process reads a new cgroup file).
  auto [it, inserted] = seen_.try_emplace(pid, seen);
  const bool was_selected = !inserted && it->second.state == State::kSelected;
  it->second = seen;
  const bool now = seen.state == State::kSelected;
  if (now && !was_selected) ++selected_count_;
  if (!now && was_selected) --selected_count_;
  return now && !was_selected;
}

std::vector<std::string> PodProcessScanner::SelectedCgroups() const {
  std::vector<std::string> out;
  for (const auto& [pid, s] : seen_) {
    if (s.state == State::kSelected && !s.unified_path.empty()) out.push_back(s.unified_path);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<pid_t> PodProcessScanner::Scan() {
  std::vector<pid_t> found;
  const uint64_t generation = pods_->generation();
  const bool pods_changed = generation != generation_;
  generation_ = generation;
  std::unordered_map<pid_t, Seen> now;
  DIR* dir = opendir(proc_root_.c_str());
  if (dir == nullptr) return found;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self_) continue;
    Seen seen;
    if (auto it = seen_.find(static_cast<pid_t>(pid)); it != seen_.end()) {
      seen = it->second;
      // A decided process stays decided (its pod and container do not
      // change); one whose pod was unknown is looked at again when the
      // pods change.
      if (seen.state == State::kPodUnknown && pods_changed) {
        seen.state = Decide(seen);
        if (seen.state == State::kSelected) found.push_back(static_cast<pid_t>(pid));
      }
    } else {
      if (!Read(static_cast<pid_t>(pid), &seen)) continue;  // gone already
      if (seen.state == State::kSelected) found.push_back(static_cast<pid_t>(pid));
    }
    now.emplace(static_cast<pid_t>(pid), std::move(seen));
  }
  closedir(dir);
  // Exited processes fall out here: the map holds what /proc holds.
  seen_ = std::move(now);
  selected_count_ = 0;
  for (const auto& [pid, s] : seen_) selected_count_ += s.state == State::kSelected;
  return found;
}

}  // namespace hoptrace
