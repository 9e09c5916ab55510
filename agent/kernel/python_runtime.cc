#include "agent/kernel/python_runtime.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "agent/kernel/link_teardown.h"

#include "bpf/runtime_python.h"
#include "uprobes/cpython/cpython_runtime.h"

namespace hoptrace {
namespace {

// The model's name in logs and `check`, before what it says of Futures.
std::string ContextsModel(const uprobes::cpython::Interpreter& in) {
  return "python contexts (CPython " + in.version() + ", " + in.path + ")";
}

}  // namespace

PythonRuntime::PythonRuntime(const BpfLoader& loader) : loader_(loader) {}

PythonRuntime::~PythonRuntime() {
  // Every process's links at once, then each one's map entry.
  std::vector<bpf_link*> all;
  for (auto& [pid, l] : links_) {
    for (bpf_link** p : {&l.copy, &l.lock_new, &l.lock_take}) {
      all.push_back(*p);
      *p = nullptr;
    }
  }
  DestroyLinks(all);
  while (!links_.empty()) Forget(links_.begin()->first);
}

bool PythonRuntime::Follow(pid_t pid, std::string* model) {
  if (links_.count(pid)) return true;
  std::string why;
  auto in = uprobes::cpython::FindInterpreter(pid, &why);
  if (!in) {
    *model = "thread model (" + why + ")";
    if (why != "process gone") ++thread_model_;
    return false;
  }
  bpf_program* prog = loader_.Program("ht_py_ctx_copied");
  const int procs = loader_.MapFd("ht_py_procs");
  if (prog == nullptr || procs < 0) {
    *model = "thread model (the Python context programs are not loaded)";
    ++thread_model_;
    return false;
  }
  ht_py_proc p{};
  p.runtime = in->runtime_address;
  p.rt_tstate_current = in->offsets.rt_tstate_current;
  p.rt_interp_main = in->offsets.rt_interp_main;
  p.interp_threads_head = in->offsets.interp_threads_head;
  p.ts_next = in->offsets.ts_next;
  p.ts_native_tid = in->offsets.ts_native_tid;
  p.ts_context = in->offsets.ts_context;
  p.ts_cframe = in->offsets.ts_cframe;
  p.cframe_current = in->offsets.cframe_current;
  p.frame_code = in->offsets.frame_code;
  p.frame_previous = in->offsets.frame_previous;
  p.code_name = in->offsets.code_name;
  p.ascii_data = in->offsets.ascii_data;
  p.ascii_length = in->offsets.ascii_length;
  const uint32_t key = static_cast<uint32_t>(pid);
  // Counted before the entry exists, so that no hook skips a process it holds.
  PublishCount(links_.size() + 1);
  if (bpf_map_update_elem(procs, &key, &p, BPF_ANY) != 0) {
    *model = std::string("thread model (ht_py_procs: ") + strerror(errno) + ")";
    PublishCount(links_.size());
    ++thread_model_;
    return false;
  }
  bpf_uprobe_opts opts{};
  opts.sz = sizeof(opts);
  opts.retprobe = true;
  // This process only: other processes running the same file are not ours.
  Links l;
  l.copy = bpf_program__attach_uprobe_opts(prog, pid, in->open_path.c_str(),
                                           in->copy_current_offset, &opts);
  if (l.copy == nullptr) {
    *model = std::string("thread model (uretprobe on PyContext_CopyCurrent: ") +
             strerror(errno) + ")";
    bpf_map_delete_elem(procs, &key);
    PublishCount(links_.size());
    ++thread_model_;
    return false;
  }
  const std::string no_futures = AttachFutures(pid, *in, &l);
  links_[pid] = l;
  *model = ContextsModel(*in);
  *model += no_futures.empty() ? " + pool Futures" : "; pool Futures not followed: " + no_futures;
  spdlog::info("python: pid {}: {}", pid, *model);
  return true;
}

std::string PythonRuntime::AttachFutures(pid_t pid, const uprobes::cpython::Interpreter& in,
                                         Links* l) {
  if (in.lock_new_offset == 0 || in.lock_take_offset == 0) {
    return std::string("no ") + std::string(uprobes::cpython::kLockNewSymbol) + "/" +
           std::string(uprobes::cpython::kLockTakeSymbol) + " symbols";
  }
  bpf_program* made = loader_.Program("ht_py_lock_new");
  bpf_program* taken = loader_.Program("ht_py_lock_take");
  if (made == nullptr || taken == nullptr) return "their programs are not loaded";
  bpf_uprobe_opts opts{};
  opts.sz = sizeof(opts);
  opts.retprobe = true;
  l->lock_new = bpf_program__attach_uprobe_opts(made, pid, in.open_path.c_str(),
                                                in.lock_new_offset, &opts);
  if (l->lock_new == nullptr) {
    return std::string("uretprobe on PyThread_allocate_lock: ") + strerror(errno);
  }
  opts.retprobe = false;
  l->lock_take = bpf_program__attach_uprobe_opts(taken, pid, in.open_path.c_str(),
                                                 in.lock_take_offset, &opts);
  if (l->lock_take == nullptr) {
    const std::string why = std::string("uprobe on PyThread_acquire_lock_timed: ") + strerror(errno);
    bpf_link__destroy(l->lock_new);
    l->lock_new = nullptr;
    return why;
  }
  return "";
}

void PythonRuntime::Forget(pid_t pid) {
  auto it = links_.find(pid);
  if (it == links_.end()) return;
  DestroyLinks({it->second.copy, it->second.lock_new, it->second.lock_take});
  links_.erase(it);
  const int procs = loader_.MapFd("ht_py_procs");
  const uint32_t key = static_cast<uint32_t>(pid);
  if (procs >= 0) bpf_map_delete_elem(procs, &key);
  PublishCount(links_.size());
}

void PythonRuntime::PublishCount(size_t n) const {
  const int fd = loader_.MapFd("ht_py_present");
  const uint32_t zero = 0;
  const uint32_t value = static_cast<uint32_t>(n);
  if (fd >= 0) bpf_map_update_elem(fd, &zero, &value, BPF_ANY);
}

PythonRuntimeCounters PythonRuntime::ReadCounters() const {
  PythonRuntimeCounters c;
  c.processes = links_.size();
  c.thread_model = thread_model_;
  const int fd = loader_.MapFd("ht_py_counters");
  if (fd < 0) return c;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return c;
  uint64_t* fields[HT_PYC_MAX] = {
      &c.copy_inherited, &c.copy_accepted, &c.copy_unbound, &c.syscall_set,
      &c.syscall_unbound, &c.tstate_walked, &c.tstate_missing, &c.lock_bound,
      &c.future_taken,   &c.future_done,   &c.lock_foreign,  &c.syscall_handed};
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < HT_PYC_MAX; ++i) {
    if (bpf_map_lookup_elem(fd, &i, per_cpu.data()) != 0) continue;
    for (uint64_t v : per_cpu) *fields[i] += v;
  }
  return c;
}

std::string PythonModelOf(pid_t pid) {
  std::string why;
  auto in = uprobes::cpython::FindInterpreter(pid, &why);
  if (in) {
    const bool futures = in->lock_new_offset != 0 && in->lock_take_offset != 0;
    return ContextsModel(*in) + (futures ? " + pool Futures" : "");
  }
  if (why.rfind("no CPython", 0) == 0 || why == "process gone") return "";
  return "thread model (" + why + ")";
}

}  // namespace hoptrace
