// The pods of this node, as the API server last said, for the event thread
// to look up by container id or pod uid. Written by the PodWatcher's thread,
// read by the event thread: every method is thread-safe; a lookup takes a
// shared lock and copies nothing but a shared_ptr.
//
// Bounded: at most max_pods live pods (a node runs ~110 by default); a pod
// beyond that is not kept, and counted. A deleted pod is kept for a grace
// period so that the last spans of its processes, built after the API said
// it was gone, still carry its name.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/k8s/pod_info.h"

namespace hoptrace {

struct PodMatch {
  std::shared_ptr<const PodInfo> pod;
  std::string container_name;  // empty when only the pod uid matched
};

class PodCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit PodCache(size_t max_pods = 4096,
                    std::chrono::seconds deleted_grace = std::chrono::seconds(30));

  // A full list: pods not in it are gone (deleted while no watch was open).
  void Replace(std::vector<PodInfo> pods, Clock::time_point now = Clock::now());
  void Upsert(PodInfo pod, Clock::time_point now = Clock::now());
  void Remove(const std::string& uid, Clock::time_point now = Clock::now());

  // The container id names the container; the pod uid from the cgroup path
  // finds the pod of a container the API has not reported yet.
  std::optional<PodMatch> Find(const std::string& container_id, const std::string& pod_uid) const;
  // Live pods (deleted ones in their grace period left out).
  std::vector<std::shared_ptr<const PodInfo>> Pods() const;

  // Changes with every change of the content: a reader that saw generation
  // g and sees g again needs no new lookup.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  bool synced() const { return synced_.load(std::memory_order_acquire); }
  size_t size() const;
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    std::shared_ptr<const PodInfo> pod;
    std::optional<Clock::time_point> deleted_at;
  };
  void InsertLocked(PodInfo pod);
  void EraseLocked(const std::string& uid);
  void ExpireLocked(Clock::time_point now);

  const size_t max_pods_;
  const std::chrono::seconds deleted_grace_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, Entry> by_uid_;
  std::unordered_map<std::string, std::string> uid_by_container_;
  size_t live_ = 0;  // entries not deleted
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace hoptrace
