#include "agent/kernel/bpf_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "agent/kernel/capture_object.h"
#include "socket_trace.h"

namespace hoptrace {
namespace {

constexpr const char* kTracefs = "/sys/kernel/tracing";

std::atomic<int> g_quiet{0};  // live BpfLoader::QuietLibbpf objects

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  // Verifier logs run to many kilobytes: format without a fixed buffer.
  char* text = nullptr;
  int n = vasprintf(&text, fmt, args);
  if (n < 0 || !text) return 0;
  std::string_view msg(text, n);
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  switch (level) {
    case LIBBPF_WARN:
      if (g_quiet.load() > 0) {
        spdlog::debug("libbpf: {}", msg);
      } else {
        spdlog::warn("libbpf: {}", msg);
      }
      break;
    case LIBBPF_INFO: spdlog::debug("libbpf: {}", msg); break;
    case LIBBPF_DEBUG: spdlog::trace("libbpf: {}", msg); break;
  }
  free(text);
  return n;
}

bool HasCap(const __user_cap_data_struct (&data)[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

void BpfLoader::InstallLibbpfLogger() { libbpf_set_print(LibbpfPrint); }

BpfLoader::QuietLibbpf::QuietLibbpf() { g_quiet.fetch_add(1); }
BpfLoader::QuietLibbpf::~QuietLibbpf() { g_quiet.fetch_sub(1); }

std::string MissingCapabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return "cannot read the process's capabilities";
  const bool admin = HasCap(data, CAP_SYS_ADMIN);
  std::vector<std::string> missing;
  if (!admin && !HasCap(data, CAP_BPF)) missing.push_back("CAP_BPF");
  if (!admin && !HasCap(data, CAP_PERFMON)) missing.push_back("CAP_PERFMON");
  if (!HasCap(data, CAP_SYS_PTRACE)) missing.push_back("CAP_SYS_PTRACE");
  if (missing.empty()) return "";
  std::string list;
  for (size_t i = 0; i < missing.size(); ++i) {
    list += (i ? (i + 1 == missing.size() ? " and " : ", ") : "") + missing[i];
  }
  return "hoptrace needs " + list +
         " to load its eBPF programs and read traced processes: run it with sudo "
         "(or as a privileged container)";
}

void EnsureTracefs() {
  if (IsDir(std::string(kTracefs) + "/events/syscalls")) return;
  if (IsDir("/sys/kernel/debug/tracing/events/syscalls")) return;
  if (mount("nodev", kTracefs, "tracefs", 0, nullptr) != 0) {
    throw StartupError(std::string("tracefs is not mounted and mounting it at ") + kTracefs +
                       " failed (" + strerror(errno) +
                       "): mount it with `mount -t tracefs nodev /sys/kernel/tracing`");
  }
  if (!IsDir(std::string(kTracefs) + "/events/syscalls")) {
    throw StartupError(
        "this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS is off); hoptrace's "
        "capture needs them");
  }
  spdlog::info("mounted tracefs at {}", kTracefs);
}

std::unique_ptr<BpfLoader> BpfLoader::Start(const LoaderOptions& options, EventCallback on_event) {
  if (auto missing = MissingCapabilities(); !missing.empty()) throw StartupError(missing);
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    throw StartupError(
        "this kernel exposes no BTF (/sys/kernel/btf/vmlinux); hoptrace needs a kernel built "
        "with CONFIG_DEBUG_INFO_BTF=y");
  }
  EnsureTracefs();
  InstallLibbpfLogger();

  std::unique_ptr<BpfLoader> self(new BpfLoader());
  self->on_event_ = std::move(on_event);
  self->capture_ = CaptureObject::Open(options);
  if (!self->capture_) {
    throw StartupError("cannot open the BPF object: " + std::string(strerror(errno)));
  }
  if (int err = self->capture_->Load(); err != 0) {
    throw StartupError("loading the BPF programs failed (" + std::string(strerror(-err)) +
                       "); run `hoptrace check` to see which kernel feature is missing");
  }
  self->selected_pids_ = self->capture_->Map("ht_selected_pids");
  if (bpf_map* bytes = self->capture_->Map("ht_sel_pid_arr")) {
    const size_t len = static_cast<size_t>(bpf_map__max_entries(bytes)) * bpf_map__value_size(bytes);
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(bytes), 0);
    if (p == MAP_FAILED) {
      throw StartupError("cannot map the selected-pid array (" + std::string(strerror(errno)) +
                         ")");
    }
    self->selected_bytes_ = static_cast<uint8_t*>(p);
    self->selected_bytes_len_ = len;
  }
  self->conns_ = self->capture_->Map("ht_conns");
  self->counters_ = self->capture_->Map("ht_counters");
  for (pid_t pid : options.pids) self->SelectPid(pid);
  for (const std::string& name : options.exec_names) {
    char comm[HT_COMM_LEN] = {};  // zero-padded, as bpf_get_current_comm fills it
    name.copy(comm, sizeof(comm) - 1);
    uint8_t one = 1;
    bpf_map__update_elem(self->capture_->Map("ht_selected_comms"), comm, sizeof(comm), &one,
                         sizeof(one), BPF_ANY);
  }
  for (uint16_t port : options.ports) {
    uint8_t one = 1;
    bpf_map__update_elem(self->capture_->Map("ht_selected_ports"), &port, sizeof(port), &one,
                         sizeof(one), BPF_ANY);
  }
  if (int err = self->capture_->Attach(); err != 0) {
    throw StartupError("attaching the BPF programs failed (" + std::string(strerror(-err)) +
                       "); run `hoptrace check` to see which kernel feature is missing");
  }
  self->ringbuf_ = ring_buffer__new(bpf_map__fd(self->capture_->Map("ht_events")), OnRingbufRecord,
                                    self.get(), nullptr);
  if (!self->ringbuf_) throw StartupError("cannot set up the ring buffer: " + std::string(strerror(errno)));
  return self;
}

BpfLoader::~BpfLoader() {
  if (ringbuf_) ring_buffer__free(ringbuf_);
  if (selected_bytes_) munmap(selected_bytes_, selected_bytes_len_);
  capture_.reset();  // detaches every link, closes every map
}

int BpfLoader::OnRingbufRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<BpfLoader*>(ctx);
  self->on_event_(std::span<const uint8_t>(static_cast<const uint8_t*>(data), size));
  return 0;
}

int BpfLoader::Poll(int timeout_ms) { return ring_buffer__poll(ringbuf_, timeout_ms); }

// A byte store, as the kernel's fork and exit programs make theirs: never a
// write of the whole block (they may be writing other bytes of it).
void BpfLoader::SetSelectedByte(pid_t pid, uint8_t value) {
  if (pid < 0 || static_cast<size_t>(pid) >= selected_bytes_len_) return;
  std::atomic_ref<uint8_t>(selected_bytes_[pid]).store(value, std::memory_order_relaxed);
}

// Both forms of the set (bpf/maps.bpf.h, ht_pid_set_selected): the hash first.
bool BpfLoader::SelectPid(pid_t pid) {
  uint32_t key = static_cast<uint32_t>(pid);
  uint8_t one = 1;
  if (bpf_map__update_elem(selected_pids_, &key, sizeof(key), &one, sizeof(one), BPF_ANY) != 0) {
    return false;
  }
  SetSelectedByte(pid, 1);
  return true;
}

void BpfLoader::DeselectPid(pid_t pid) {
  uint32_t key = static_cast<uint32_t>(pid);
  SetSelectedByte(pid, 0);
  bpf_map__delete_elem(selected_pids_, &key, sizeof(key), 0);
}

void BpfLoader::ForgetConnection(pid_t pid, int fd) {
  uint64_t key = (static_cast<uint64_t>(pid) << 32) | static_cast<uint32_t>(fd);
  bpf_map__delete_elem(conns_, &key, sizeof(key), 0);
}

int BpfLoader::MapFd(const char* name) const {
  const bpf_map* map = capture_->Map(name);
  return map ? bpf_map__fd(map) : -1;
}

bpf_program* BpfLoader::Program(const char* name) const {
  return bpf_object__find_program_by_name(capture_->obj(), name);
}

KernelCounters BpfLoader::ReadCounters() const {
  KernelCounters out;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> values(ncpu);
  auto sum = [&](uint32_t idx) -> uint64_t {
    if (bpf_map__lookup_elem(counters_, &idx, sizeof(idx), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0) {
      return 0;
    }
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  out.ringbuf_drops = sum(HT_CNT_RINGBUF_DROPS);
  out.conn_map_full = sum(HT_CNT_CONN_MAP_FULL);
  out.data_events = sum(HT_CNT_DATA_EVENTS);
  out.truncated = sum(HT_CNT_TRUNCATED);
  out.shed = sum(HT_CNT_SHED);
  out.tls_by_syscall = sum(HT_CNT_TLS_BY_SYSCALL);
  out.tls_by_session = sum(HT_CNT_TLS_BY_SESSION);
  out.tls_by_thread = sum(HT_CNT_TLS_BY_THREAD);
  out.tls_unbound = sum(HT_CNT_TLS_UNBOUND);
  out.gotls_calls = sum(HT_CNT_GOTLS_CALLS);
  out.gotls_no_fd = sum(HT_CNT_GOTLS_NO_FD);
  return out;
}

bool BpfLoader::SetKeepRatio(uint32_t keep_per_1024) {
  const uint32_t zero = 0;
  ht_shed cfg{};
  cfg.shed_per_1024 = HT_SHED_KEEP_ALL - std::min<uint32_t>(keep_per_1024, HT_SHED_KEEP_ALL);
  return bpf_map__update_elem(capture_->Map("ht_shed_config"), &zero, sizeof(zero), &cfg,
                              sizeof(cfg), BPF_ANY) == 0;
}

}  // namespace hoptrace
