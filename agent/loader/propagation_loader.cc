#include "agent/loader/propagation_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "propagation.h"
#include "propagation.skel.h"

namespace hoptrace {
namespace {

std::string Errno(int err) { return strerror(err < 0 ? -err : err); }

// The sockops programs attached to the cgroup, effective ones included.
std::vector<std::string> SockopsPrograms(int cgroup_fd) {
  std::vector<std::string> out;
  uint32_t ids[64] = {};
  uint32_t count = 64;
  uint32_t attach_flags = 0;
  if (bpf_prog_query(cgroup_fd, BPF_CGROUP_SOCK_OPS, BPF_F_QUERY_EFFECTIVE, &attach_flags, ids,
                     &count) != 0) {
    return out;
  }
  for (uint32_t i = 0; i < count && i < 64; ++i) {
    std::string name = "?";
    int fd = bpf_prog_get_fd_by_id(ids[i]);
    if (fd >= 0) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) name = info.name;
      close(fd);
    }
    out.push_back(std::to_string(ids[i]) + " " + name);
  }
  return out;
}

}  // namespace

std::string CheckPropagationCgroup(const std::string& path) {
  if (path.empty()) return "no cgroup given";
  struct statfs fs {};
  if (statfs(path.c_str(), &fs) != 0) {
    return "cannot open the propagation cgroup " + path + ": " + Errno(errno);
  }
  if (fs.f_type != CGROUP2_SUPER_MAGIC) {
    return path + " is not a cgroup v2 directory (cgroup v2 is often mounted at "
                  "/sys/fs/cgroup or /sys/fs/cgroup/unified)";
  }
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return path + " is not a directory";
  return "";
}

std::unique_ptr<PropagationLoader> PropagationLoader::Start(const PropagationOptions& options,
                                                            const LoaderOptions& capture_options,
                                                            const BpfLoader& capture) {
  if (auto err = CheckPropagationCgroup(options.cgroup_path); !err.empty()) {
    throw StartupError(err + "; or run with --no-propagation");
  }
  std::unique_ptr<PropagationLoader> self(new PropagationLoader());
  self->skel_ = propagation_bpf__open();
  if (!self->skel_) {
    throw StartupError("cannot open the propagation BPF object: " + Errno(errno));
  }
  // The same knobs as the capture object: the programs decide alike.
  auto* ro = self->skel_->rodata;
  ro->targ_agent_tgid = static_cast<__u32>(getpid());
  ro->targ_trace_all = capture_options.trace_all;
  ro->targ_port_filter = !capture_options.ports.empty();
  ro->targ_exec_events = capture_options.exec_events;
  ro->targ_max_payload = std::min<uint32_t>(capture_options.max_payload, HT_MAX_PAYLOAD);
  ro->targ_kernel_ctx = true;
  ro->targ_sampler = capture_options.sampler_kind;
  ro->targ_sample_threshold = capture_options.sample_threshold;

  // Every map both objects declare is the capture's.
  bpf_map* map;
  bpf_object__for_each_map(map, self->skel_->obj) {
    const char* name = bpf_map__name(map);
    if (strchr(name, '.') != nullptr) continue;  // .rodata, .bss: per object
    const int fd = capture.MapFd(name);
    if (fd < 0) continue;
    if (int err = bpf_map__reuse_fd(map, fd); err != 0) {
      throw StartupError(std::string("cannot share the capture's map ") + name + ": " +
                         Errno(err));
    }
  }
  if (int err = propagation_bpf__load(self->skel_); err != 0) {
    throw StartupError("loading the propagation programs (sockops, sk_msg) failed (" +
                       Errno(err) + "); run `hoptrace check`, or run with --no-propagation");
  }

  self->cgroup_fd_ = open(options.cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (self->cgroup_fd_ < 0) {
    throw StartupError("cannot open the propagation cgroup " + options.cgroup_path + ": " +
                       Errno(errno));
  }
  self->other_sockops_ = SockopsPrograms(self->cgroup_fd_);
  for (const auto& p : self->other_sockops_) {
    spdlog::warn(
        "propagation: cgroup {} already runs sockops program {}; sockets another sk_msg "
        "program claims first are not injected (counted as sockets_busy)",
        options.cgroup_path, p);
  }

  // sk_msg first: no socket can enter the sockhash before it is there.
  const int msg_prog = bpf_program__fd(self->skel_->progs.ht_sk_msg);
  const int sockhash = bpf_map__fd(self->skel_->maps.ht_prop_sockhash);
  if (int err = bpf_prog_attach(msg_prog, sockhash, BPF_SK_MSG_VERDICT, 0); err != 0) {
    throw StartupError("attaching the sk_msg program failed (" + Errno(err) +
                       "); run with --no-propagation");
  }
  self->msg_attached_ = true;
  self->sockops_link_ = bpf_program__attach_cgroup(self->skel_->progs.ht_sockops,
                                                   self->cgroup_fd_);
  if (!self->sockops_link_) {
    throw StartupError("attaching the sockops program to " + options.cgroup_path + " failed (" +
                       Errno(errno) + "); run with --no-propagation");
  }
  spdlog::info("propagation: injecting traceparent for selected processes in cgroup {}",
               options.cgroup_path);
  return self;
}

PropagationLoader::~PropagationLoader() {
  // No new sockets first, then no more injection; freeing the sockhash (with
  // the skeleton) takes every socket out of it and restores its protocol ops.
  if (sockops_link_) bpf_link__destroy(sockops_link_);
  if (msg_attached_) {
    bpf_prog_detach2(bpf_program__fd(skel_->progs.ht_sk_msg),
                     bpf_map__fd(skel_->maps.ht_prop_sockhash), BPF_SK_MSG_VERDICT);
  }
  if (skel_) propagation_bpf__destroy(skel_);
  if (cgroup_fd_ >= 0) close(cgroup_fd_);
}

PropagationCounters PropagationLoader::ReadCounters() const {
  PropagationCounters out;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> values(ncpu);
  auto sum = [&](uint32_t idx) -> uint64_t {
    if (bpf_map__lookup_elem(skel_->maps.ht_ctx_counters, &idx, sizeof(idx), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0) {
      return 0;
    }
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  out.server_contexts = sum(HT_CTXC_SERVER);
  out.remote = sum(HT_CTXC_REMOTE);
  out.invalid = sum(HT_CTXC_INVALID);
  out.head_cut = sum(HT_CTXC_HEAD_CUT);
  out.injected = sum(HT_CTXC_INJECTED);
  out.already_present = sum(HT_CTXC_PRESENT);
  out.no_context = sum(HT_CTXC_NO_CONTEXT);
  out.untracked = sum(HT_CTXC_UNTRACKED);
  out.inject_failed = sum(HT_CTXC_INJECT_FAILED);
  out.sockets_added = sum(HT_CTXC_SOCK_ADDED);
  out.sockets_busy = sum(HT_CTXC_SOCK_BUSY);
  out.sockets_failed = sum(HT_CTXC_SOCK_FAILED);
  out.not_http = sum(HT_CTXC_NOT_HTTP);
  return out;
}

}  // namespace hoptrace
