#include "agent/kernel/link_teardown.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

namespace hoptrace {

void DestroyLinks(const std::vector<bpf_link*>& links) {
  std::vector<bpf_link*> todo;
  for (bpf_link* l : links) {
    if (l != nullptr) todo.push_back(l);
  }
  if (todo.empty()) return;
  // Each thread mostly sleeps in the kernel's grace-period wait: many are
  // cheap, and 32 overlap all the waits of a typical agent.
  constexpr size_t kMaxThreads = 32;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < todo.size();) bpf_link__destroy(todo[i]);
  };
  std::vector<std::thread> threads;
  const size_t n = std::min(kMaxThreads, todo.size()) - 1;  // and this thread
  for (size_t i = 0; i < n; ++i) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads: the ones running (and this one) do the rest
    }
  }
  work();
  for (auto& t : threads) t.join();
}

void DetachSkeletonLinks(bpf_object_skeleton* skeleton) {
  if (skeleton == nullptr) return;
  std::vector<bpf_link*> links;
  const auto* base = reinterpret_cast<const char*>(skeleton->progs);
  for (int i = 0; i < skeleton->prog_cnt; ++i) {
    // Entries are prog_skel_sz apart (bpftool may write a newer, larger one).
    const auto* p = reinterpret_cast<const bpf_prog_skeleton*>(
        base + static_cast<size_t>(i) * skeleton->prog_skel_sz);
    if (p->link != nullptr && *p->link != nullptr) {
      links.push_back(*p->link);
      *p->link = nullptr;
    }
  }
  DestroyLinks(links);
}

}  // namespace hoptrace
