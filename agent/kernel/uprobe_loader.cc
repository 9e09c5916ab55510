#include "agent/kernel/uprobe_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/link_teardown.h"
#include "uprobe_trace.skel.h"

namespace hoptrace {

std::unique_ptr<UprobeLoader> UprobeLoader::Start(const UprobeLoaderOptions& options,
                                                  const BpfLoader& capture) {
  std::unique_ptr<UprobeLoader> self(new UprobeLoader());
  self->skel_ = uprobe_trace_bpf__open();
  if (!self->skel_) {
    throw StartupError("cannot open the function probe object: " + std::string(strerror(errno)));
  }
  self->skel_->rodata->targ_min_duration_ns = options.min_duration_ns;
  bpf_map__set_max_entries(self->skel_->maps.hu_sites, options.max_sites);
  bpf_map__set_max_entries(self->skel_->maps.hu_stacks, options.max_stacks);
  const int events = capture.MapFd("ht_events");
  if (events < 0) throw StartupError("function probes: the capture has no ring buffer");
  if (int err = bpf_map__reuse_fd(self->skel_->maps.ht_events, events); err != 0) {
    throw StartupError("function probes: cannot share the ring buffer: " +
                       std::string(strerror(-err)));
  }
  // The uprobe programs attach later, per process and site.
  bpf_program__set_autoattach(self->skel_->progs.hu_entry, false);
  bpf_program__set_autoattach(self->skel_->progs.hu_return, false);
  bpf_program__set_autoattach(self->skel_->progs.hu_exception, false);
  bpf_program__set_autoattach(self->skel_->progs.hu_py_entry, false);
  bpf_program__set_autoattach(self->skel_->progs.hu_py_return, false);
  if (int err = uprobe_trace_bpf__load(self->skel_); err != 0) {
    throw StartupError("function probes did not load (" + std::string(strerror(-err)) + ")");
  }
  if (int err = uprobe_trace_bpf__attach(self->skel_); err != 0) {
    throw StartupError("function probes: the thread-exit tracepoint did not attach (" +
                       std::string(strerror(-err)) + ")");
  }
  return self;
}

UprobeLoader::~UprobeLoader() {
  std::vector<bpf_link*> all;
  for (auto& [pid, links] : links_) all.insert(all.end(), links.begin(), links.end());
  DestroyLinks(all);
  if (skel_) {
    DetachSkeletonLinks(skel_->skeleton);
    uprobe_trace_bpf__destroy(skel_);
  }
}

size_t UprobeLoader::Attach(pid_t pid, const std::vector<uprobes::AttachSite>& sites,
                            std::vector<std::string>* errors) {
  size_t attached = 0;
  for (const uprobes::AttachSite& s : sites) {
    hu_site_key key{};
    key.pid = static_cast<uint32_t>(pid);
    key.addr = s.address;
    hu_site value{};
    value.function_id = s.function_id;
    value.kind = static_cast<uint16_t>(s.kind);
    value.flags = s.go ? HU_SITE_F_GO : 0;
    // The site first: a probe that fires before it is known does nothing.
    if (bpf_map__update_elem(skel_->maps.hu_sites, &key, sizeof(key), &value, sizeof(value),
                             BPF_ANY) != 0) {
      errors->push_back("no room for more probed addresses (" + std::to_string(s.address) + ")");
      break;
    }
    addresses_[pid].push_back(s.address);
    bpf_program* prog = s.kind == uprobes::SiteKind::kEntry      ? skel_->progs.hu_entry
                        : s.kind == uprobes::SiteKind::kReturn   ? skel_->progs.hu_return
                        : s.kind == uprobes::SiteKind::kPyEntry ||
                                s.kind == uprobes::SiteKind::kPyLineHolder
                            ? skel_->progs.hu_py_entry
                        : s.kind == uprobes::SiteKind::kPyReturn ? skel_->progs.hu_py_return
                                                                 : skel_->progs.hu_exception;
    // A USDT probe's semaphore: the kernel increments it in this process
    // only (the uprobe is bound to the pid) and decrements it when the
    // link goes, so the program runs the probe's code only while we watch.
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .ref_ctr_offset = s.ref_ctr_offset, .retprobe = false);
    bpf_link* link = bpf_program__attach_uprobe_opts(prog, pid, s.host_path.c_str(),
                                                     s.file_offset, &opts);
    if (!link) {
      char where[64];
      snprintf(where, sizeof(where), "0x%llx", static_cast<unsigned long long>(s.file_offset));
      errors->push_back("cannot attach at " + s.host_path + "+" + where + ": " + strerror(errno));
      continue;
    }
    links_[pid].push_back(link);
    ++attached;
  }
  return attached;
}

bool UprobeLoader::SetPython(pid_t pid, const uprobes::PythonProcess& py, std::string* error) {
  hu_py_proc proc{};
  proc.runtime = py.runtime;
  proc.rt_tstate_current = py.offsets.rt_tstate_current;
  proc.ts_cframe = py.offsets.ts_cframe;
  proc.cframe_current = py.offsets.cframe_current;
  proc.frame_code = py.offsets.frame_code;
  proc.code_flags = py.offsets.code_flags;
  proc.ts_curexc_type = py.offsets.ts_curexc_type;
  proc.type_name = py.offsets.type_name;
  proc.code_firstlineno = py.offsets.code_firstlineno;
  proc.entry_file_reg = static_cast<uint16_t>(py.entry_file_reg);
  proc.entry_name_reg = static_cast<uint16_t>(py.entry_name_reg);
  proc.return_file_reg = static_cast<uint16_t>(py.return_file_reg);
  proc.return_name_reg = static_cast<uint16_t>(py.return_name_reg);
  // One key per function name; the files it is wanted in, side by side.
  std::map<std::string, hu_py_want> wants;
  for (const uprobes::PythonWant& w : py.wants) {
    hu_py_want& v = wants[w.name];
    int slot = 0;
    while (slot < HU_PY_CANDIDATES && v.function_id[slot] != 0) ++slot;
    if (slot == HU_PY_CANDIDATES) {
      *error = "more than " + std::to_string(HU_PY_CANDIDATES) + " files for Python function " +
               w.name;
      return false;
    }
    // "/app.py": the suffix starts at a path component (an absolute FILE is whole).
    const std::string suffix = w.file[0] == '/' ? w.file : "/" + w.file;
    if (w.name.size() >= HU_PY_NAME_LEN - 1 || suffix.size() > HU_PY_FILE_LEN) {
      *error = "Python name too long: " + w.file + ":" + w.name;
      return false;
    }
    v.function_id[slot] = w.function_id;
    v.suffix_len[slot] = static_cast<uint32_t>(suffix.size());
    std::memcpy(v.suffix[slot], suffix.data(), suffix.size());
  }
  if (bpf_map__update_elem(skel_->maps.hu_py_procs, &pid, sizeof(pid), &proc, sizeof(proc),
                           BPF_ANY) != 0) {
    *error = "no room for another Python process (" + std::string(strerror(errno)) + ")";
    return false;
  }
  for (const auto& [name, want] : wants) {
    hu_py_name_key key{};
    key.pid = static_cast<uint32_t>(pid);
    std::memcpy(key.name, name.data(), name.size());
    if (bpf_map__update_elem(skel_->maps.hu_py_names, &key, sizeof(key), &want, sizeof(want),
                             BPF_ANY) != 0) {
      *error = "no room for more Python function names (" + std::string(strerror(errno)) + ")";
      return false;
    }
    py_names_[pid].push_back(key);
  }
  return true;
}

void UprobeLoader::Detach(pid_t pid) {
  if (auto it = links_.find(pid); it != links_.end()) {
    DestroyLinks(it->second);
    links_.erase(it);
  }
  if (auto it = py_names_.find(pid); it != py_names_.end()) {
    for (const hu_py_name_key& k : it->second) {
      bpf_map__delete_elem(skel_->maps.hu_py_names, &k, sizeof(k), 0);
    }
    py_names_.erase(it);
    bpf_map__delete_elem(skel_->maps.hu_py_procs, &pid, sizeof(pid), 0);
  }
  if (auto it = addresses_.find(pid); it != addresses_.end()) {
    for (uint64_t addr : it->second) {
      hu_site_key key{};
      key.pid = static_cast<uint32_t>(pid);
      key.addr = addr;
      bpf_map__delete_elem(skel_->maps.hu_sites, &key, sizeof(key), 0);
    }
    addresses_.erase(it);
  }
  // Stacks of its threads go at their exit; goroutine stacks (keyed by g)
  // have no such moment: drop every stack of the process now.
  const int fd = bpf_map__fd(skel_->maps.hu_stacks);
  hu_stack_key key{}, next{};
  std::vector<hu_stack_key> doomed;
  hu_stack_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (next.pid == static_cast<uint32_t>(pid)) doomed.push_back(next);
    key = next;
    prev = &key;
  }
  for (const hu_stack_key& k : doomed) bpf_map_delete_elem(fd, &k);
}

std::optional<hu_stack> UprobeLoader::ReadStack(pid_t pid, uint64_t id) const {
  hu_stack_key key{};
  key.pid = static_cast<uint32_t>(pid);
  key.id = id;
  hu_stack value{};
  if (bpf_map__lookup_elem(skel_->maps.hu_stacks, &key, sizeof(key), &value, sizeof(value), 0) !=
      0) {
    return std::nullopt;
  }
  return value;
}

size_t UprobeLoader::links() const {
  size_t n = 0;
  for (const auto& [pid, l] : links_) n += l.size();
  return n;
}

UprobeCounters UprobeLoader::ReadCounters() const {
  UprobeCounters out;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> values(ncpu);
  auto sum = [&](uint32_t idx) -> uint64_t {
    if (bpf_map__lookup_elem(skel_->maps.hu_counters, &idx, sizeof(idx), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0) {
      return 0;
    }
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  out.calls = sum(HU_CNT_CALLS);
  out.short_calls = sum(HU_CNT_SHORT);
  out.abandoned = sum(HU_CNT_ABANDONED);
  out.too_deep = sum(HU_CNT_TOO_DEEP);
  out.unmatched = sum(HU_CNT_UNMATCHED);
  out.ringbuf_drops = sum(HU_CNT_RINGBUF_DROPS);
  out.stack_full = sum(HU_CNT_STACK_FULL);
  out.py_seen = sum(HU_CNT_PY_SEEN);
  out.py_generator = sum(HU_CNT_PY_GENERATOR);
  out.py_no_frame = sum(HU_CNT_PY_NO_FRAME);
  out.go_restarts = sum(HU_CNT_GO_RESTARTS);
  return out;
}

}  // namespace hoptrace
