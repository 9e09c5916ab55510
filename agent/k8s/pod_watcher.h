// Keeps a PodCache equal to the API server's view of this node's pods:
// list, then watch from the list's resourceVersion; a watch the server ends
// is reopened from the last version seen; "410 Gone" (the version fell out
// of the server's window) and errors lead to a new list, after a backoff.
// The same protocol as client-go's reflector, on one thread of its own: the
// event path only reads the cache.
//
// API load: one list at start and after each 410, one open watch, one GET
// per ReplicaSet or Job the first time a pod names it. Nothing per request
// traced.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "agent/k8s/kube_client.h"
#include "agent/k8s/owner_resolver.h"
#include "agent/k8s/pod_cache.h"

namespace hoptrace {

struct PodWatcherOptions {
  std::string node_name;  // spec.nodeName of the pods to watch (NODE_NAME)
  // timeoutSeconds asked of the server for one watch (client-go: 5-10 min).
  std::chrono::seconds watch_timeout{300};
  std::chrono::milliseconds min_backoff{500};
  std::chrono::milliseconds max_backoff{30'000};
};

struct PodWatcherStats {
  std::atomic<uint64_t> lists{0};
  std::atomic<uint64_t> watches{0};
  std::atomic<uint64_t> relists_gone{0};  // 410 Gone: resourceVersion too old
  std::atomic<uint64_t> errors{0};        // failed lists and watches
  std::atomic<uint64_t> events{0};        // watch events applied
};

class PodWatcher {
 public:
  PodWatcher(KubeClient client, PodCache* cache, PodWatcherOptions options);
  ~PodWatcher();
  PodWatcher(const PodWatcher&) = delete;
  PodWatcher& operator=(const PodWatcher&) = delete;

  void Start();
  void Stop();  // returns within about a second

  const PodWatcherStats& stats() const { return stats_; }

 private:
  enum class WatchEnd { kClosed, kGone, kError, kStopped };
  void Run();
  bool List(std::string* resource_version);
  WatchEnd Watch(std::string* resource_version);
  void Apply(std::string_view line, std::string* resource_version, WatchEnd* end);
  std::string PodsPath() const;
  void Sleep(std::chrono::milliseconds d);

  KubeClient client_;
  PodCache* cache_;
  PodWatcherOptions options_;
  OwnerResolver owners_;
  PodWatcherStats stats_;
  bool watch_opened_ = false;  // the current watch delivered something
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace hoptrace
