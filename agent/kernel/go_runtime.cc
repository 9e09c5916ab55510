#include "agent/kernel/go_runtime.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/link_teardown.h"
#include "runtime_go.h"
#include "uprobes/go/go_runtime_sites.h"

namespace hoptrace {

// The kernel's layout (bpf/runtime_go.h): Detach walks ht_go_gs keys.
static_assert(sizeof(ht_go_key) == 16 && offsetof(ht_go_key, g) == 8);
static_assert(sizeof(ht_go_binding) == 24 && offsetof(ht_go_binding, kind) == 8 &&
              offsetof(ht_go_binding, origin_g) == 16);

GoRuntime::~GoRuntime() {
  // Every process's links at once, then each one's map entries.
  std::vector<bpf_link*> all;
  for (auto& [pid, links] : links_) {
    all.insert(all.end(), links.begin(), links.end());
    links.clear();
  }
  DestroyLinks(all);
  std::vector<pid_t> pids;
  for (const auto& [pid, links] : links_) pids.push_back(pid);
  for (pid_t pid : pids) Detach(pid);
}

bool GoRuntime::Attach(pid_t pid) {
  if (Follows(pid)) return true;
  bpf_program* entry = capture_.Program("ht_go_newproc1");
  bpf_program* ret = capture_.Program("ht_go_newproc1_ret");
  bpf_program* send = capture_.Program("ht_go_send");
  const int procs = capture_.MapFd("ht_go_procs");
  if (!entry || !ret || !send || procs < 0) return false;  // not loaded: no kernel contexts
  // The executable as the process sees it, through its own mount namespace.
  const std::string exe = "/proc/" + std::to_string(pid) + "/exe";
  std::string why;
  bool not_go = false;
  auto sites = uprobes::FindGoRuntimeSites(exe, &why, &not_go);
  if (!sites) {
    if (!not_go) {
      ++stats_.fallback;
      spdlog::info("go: pid {}: {}; its requests keep the thread model", pid, why);
    }
    return false;
  }
  std::vector<bpf_link*> links;
  auto attach = [&](bpf_program* prog, uint64_t offset) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = false);
    bpf_link* l = bpf_program__attach_uprobe_opts(prog, pid, exe.c_str(), offset, &opts);
    if (!l) {
      why = "uprobe at " + exe + "+" + std::to_string(offset) + ": " + strerror(errno);
      return false;
    }
    links.push_back(l);
    return true;
  };
  // Returns before the entry (an entry without its return would leave a
  // creation in flight), and the process marked only once all are in.
  bool ok = true;
  for (uint64_t off : sites->newproc1_returns) ok = ok && attach(ret, off);
  ok = ok && attach(entry, sites->newproc1_entry) && attach(send, sites->send_entry);
  const uint32_t key = static_cast<uint32_t>(pid), one = 1;
  if (ok && bpf_map_update_elem(procs, &key, &one, BPF_ANY) != 0) {
    ok = false;
    why = std::string("ht_go_procs: ") + strerror(errno);
  }
  if (!ok) {
    for (bpf_link* l : links) bpf_link__destroy(l);
    ++stats_.fallback;
    spdlog::warn("go: pid {}: {}; its requests keep the thread model", pid, why);
    return false;
  }
  links_[pid] = std::move(links);
  ++stats_.attached;
  spdlog::info("go: following the goroutines of pid {} ({} probes)", pid, links_[pid].size());
  return true;
}

std::optional<uint64_t> GoRuntime::RequestOf(pid_t pid, uint64_t g) const {
  if (!Follows(pid)) return std::nullopt;
  ht_go_key key{};
  key.tgid = static_cast<uint32_t>(pid);
  key.g = g;
  ht_go_binding b{};
  if (bpf_map_lookup_elem(capture_.MapFd("ht_go_gs"), &key, &b) != 0 || b.span_id == 0) {
    return std::nullopt;
  }
  return b.span_id;
}

void GoRuntime::Detach(pid_t pid) {
  auto it = links_.find(pid);
  if (it == links_.end()) return;
  const uint32_t tgid = static_cast<uint32_t>(pid);
  // Unmark first: the syscall programs stop reading R14 in this process.
  bpf_map_delete_elem(capture_.MapFd("ht_go_procs"), &tgid);
  DestroyLinks(it->second);
  links_.erase(it);
  ++stats_.detached;
  // Its goroutines and creations in flight.
  const int gs = capture_.MapFd("ht_go_gs");
  std::vector<ht_go_key> doomed;
  ht_go_key key{}, next{};
  ht_go_key* prev = nullptr;
  while (bpf_map_get_next_key(gs, prev, &next) == 0) {
    if (next.tgid == tgid) doomed.push_back(next);
    key = next;
    prev = &key;
  }
  for (const ht_go_key& k : doomed) bpf_map_delete_elem(gs, &k);
  // Per-thread entries: creations in flight, and a syscall's answer its
  // exit did not clear (the exit path gave up before its last pick).
  for (const char* name : {"ht_go_newproc", "ht_rt_current"}) {
    const int fd = capture_.MapFd(name);
    std::vector<uint64_t> threads;
    uint64_t tk = 0, tn = 0;
    uint64_t* tp = nullptr;
    while (fd >= 0 && bpf_map_get_next_key(fd, tp, &tn) == 0) {
      if ((tn >> 32) == tgid) threads.push_back(tn);
      tk = tn;
      tp = &tk;
    }
    for (uint64_t t : threads) bpf_map_delete_elem(fd, &t);
  }
}

PreflightItem GoRuntimeItem(int pid) {
  PreflightItem item;
  item.feature = "runtime context in pid " + std::to_string(pid) + " (Go)";
  item.needed_for = "the right parent for requests made from goroutines (with propagation)";
  std::string why;
  bool not_go = false;
  auto sites = uprobes::FindGoRuntimeSites("/proc/" + std::to_string(pid) + "/exe", &why, &not_go);
  if (sites) {
    item.status = PreflightItem::Status::kOk;
    item.detail = "goroutines: runtime.newproc1 (entry, " +
                  std::to_string(sites->newproc1_returns.size()) +
                  " returns), runtime.send; current g in R14";
  } else {
    item.status = PreflightItem::Status::kInfo;
    item.detail = "thread model: " + why;
  }
  return item;
}

size_t GoRuntime::links() const {
  size_t n = 0;
  for (const auto& [pid, l] : links_) n += l.size();
  return n;
}

GoRuntimeStats GoRuntime::stats() const {
  GoRuntimeStats out = stats_;
  const int fd = capture_.MapFd("ht_go_counters");
  const int ncpu = libbpf_num_possible_cpus();
  if (fd < 0 || ncpu <= 0) return out;
  std::vector<uint64_t> values(ncpu);
  auto sum = [&](uint32_t idx) -> uint64_t {
    if (bpf_map_lookup_elem(fd, &idx, values.data()) != 0) return 0;
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  out.bound = sum(HT_GOC_BOUND);
  out.inherited = sum(HT_GOC_INHERITED);
  out.handoffs = sum(HT_GOC_HANDOFF);
  out.set = sum(HT_GOC_SET);
  out.unbound = sum(HT_GOC_UNBOUND);
  return out;
}

}  // namespace hoptrace
