#include "agent/k8s/pod_cache.h"

#include <mutex>

namespace hoptrace {

PodCache::PodCache(size_t max_pods, std::chrono::seconds deleted_grace)
    : max_pods_(max_pods), deleted_grace_(deleted_grace) {}

void PodCache::Replace(std::vector<PodInfo> pods, Clock::time_point now) {
  std::unique_lock lock(mu_);
  std::unordered_map<std::string, bool> listed;
  for (const auto& p : pods) listed[p.uid] = true;
  for (auto& [uid, entry] : by_uid_) {
    if (!listed.count(uid) && !entry.deleted_at) {
      entry.deleted_at = now;
      --live_;
    }
  }
  ExpireLocked(now);
  for (auto& p : pods) InsertLocked(std::move(p));
  synced_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

void PodCache::Upsert(PodInfo pod, Clock::time_point now) {
  std::unique_lock lock(mu_);
  ExpireLocked(now);
  InsertLocked(std::move(pod));
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

void PodCache::Remove(const std::string& uid, Clock::time_point now) {
  std::unique_lock lock(mu_);
  if (auto it = by_uid_.find(uid); it != by_uid_.end() && !it->second.deleted_at) {
    it->second.deleted_at = now;
    --live_;
  }
  ExpireLocked(now);
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

void PodCache::InsertLocked(PodInfo pod) {
  auto it = by_uid_.find(pod.uid);
  const bool live = it != by_uid_.end() && !it->second.deleted_at;
  if (!live && live_ >= max_pods_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (it != by_uid_.end()) EraseLocked(pod.uid);
  auto shared = std::make_shared<const PodInfo>(std::move(pod));
  for (const auto& [id, name] : shared->containers) uid_by_container_[id] = shared->uid;
  const std::string uid = shared->uid;
  by_uid_[uid] = Entry{std::move(shared), std::nullopt};
  ++live_;
}

void PodCache::EraseLocked(const std::string& uid) {
  auto it = by_uid_.find(uid);
  if (it == by_uid_.end()) return;
  if (!it->second.deleted_at) --live_;
  for (const auto& [id, name] : it->second.pod->containers) {
    if (auto c = uid_by_container_.find(id); c != uid_by_container_.end() && c->second == uid) {
      uid_by_container_.erase(c);
    }
  }
  by_uid_.erase(it);
}

void PodCache::ExpireLocked(Clock::time_point now) {
  std::vector<std::string> expired;
  for (const auto& [uid, entry] : by_uid_) {
    if (entry.deleted_at && now - *entry.deleted_at >= deleted_grace_) expired.push_back(uid);
  }
  for (const auto& uid : expired) EraseLocked(uid);
}

std::optional<PodMatch> PodCache::Find(const std::string& container_id,
                                       const std::string& pod_uid) const {
  std::shared_lock lock(mu_);
  if (!container_id.empty()) {
    if (auto c = uid_by_container_.find(container_id); c != uid_by_container_.end()) {
      const auto& pod = by_uid_.at(c->second).pod;
      return PodMatch{pod, pod->containers.at(container_id)};
    }
  }
  if (!pod_uid.empty()) {
    if (auto it = by_uid_.find(pod_uid); it != by_uid_.end()) return PodMatch{it->second.pod, {}};
  }
  return std::nullopt;
}

std::vector<std::shared_ptr<const PodInfo>> PodCache::Pods() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<const PodInfo>> out;
  for (const auto& [uid, entry] : by_uid_) {
    if (!entry.deleted_at) out.push_back(entry.pod);
  }
  return out;
}

size_t PodCache::size() const {
  std::shared_lock lock(mu_);
  return live_;
}

}  // namespace hoptrace
