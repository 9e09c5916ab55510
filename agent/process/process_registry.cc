#include "agent/process/process_registry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "agent/k8s/cgroup_identity.h"
#include "agent/k8s/k8s_resource.h"
#include "agent/kernel/event_reader.h"
#include "agent/process/service_name.h"
#include "agent/text_util.h"

namespace hoptrace {
namespace {

// What we read of /proc files. argv and environ of a process can be megabytes;
// nothing we need lies that deep, and a bounded read keeps one odd process from
// costing the agent memory.
constexpr size_t kMaxProcFileBytes = 256 * 1024;

// The cache holds one entry per pid until Forget(). If a caller misses exits,
// this bounds it anyway (see Get).
constexpr size_t kMaxCachedProcesses = 64 * 1024;

// OpenTelemetry semantic conventions, service.instance.id: "the ID SHOULD be
// used as source of a UUID Version 5 and SHOULD use the following UUID as the
// namespace: 4d63009a-8d0f-11ee-aad7-4c796ed8e320."
constexpr std::array<uint8_t, 16> kServiceInstanceNamespace = {
    0x4d, 0x63, 0x00, 0x9a, 0x8d, 0x0f, 0x11, 0xee, 0xaa, 0xd7, 0x4c, 0x79, 0x6e, 0xd8, 0xe3, 0x20};

// ---- small string and file helpers --------------------------------------




// /proc files report size 0, so read until EOF rather than trusting stat.
std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string out;
  char chunk[4096];
  while (out.size() < kMaxProcFileBytes) {
    in.read(chunk,
            static_cast<std::streamsize>(std::min(sizeof(chunk), kMaxProcFileBytes - out.size())));
    out.append(chunk, static_cast<size_t>(in.gcount()));
    if (!in) break;
  }
  // environ of a process we may not ptrace fails on open or on read (EACCES).
  if (in.bad()) return std::nullopt;
  return out;
}

std::optional<std::string> ReadLink(const std::string& path) {
  std::string buf(4096, '\0');
  const ssize_t n = readlink(path.c_str(), buf.data(), buf.size());
  if (n <= 0 || static_cast<size_t>(n) == buf.size()) return std::nullopt;
  buf.resize(static_cast<size_t>(n));
  // The kernel appends this when the binary was replaced or removed after
  // exec (a package upgrade); the path before it is still the right name.
  constexpr std::string_view kDeleted = " (deleted)";
  if (buf.size() > kDeleted.size() && buf.ends_with(kDeleted)) {
    buf.resize(buf.size() - kDeleted.size());
  }
  return buf;
}

// cmdline and environ are NUL-terminated strings back to back.
std::vector<std::string> SplitNul(std::string_view data) {
  std::vector<std::string> out;
  while (!data.empty()) {
    const size_t nul = data.find('\0');
    out.emplace_back(data.substr(0, nul));
    if (nul == std::string_view::npos) break;
    data.remove_prefix(nul + 1);
  }
  return out;
}


// ---- /proc parsing ----------------------------------------------------------

// A numeric field of /proc/<pid>/stat, counted from 1 as in proc(5): 4 is
// ppid, 22 starttime (clock ticks since boot). Field 2, comm, is in
// parentheses and may itself hold spaces and ")", so count from the last ")".
std::optional<uint64_t> StatField(std::string_view stat, int wanted) {
  const size_t paren = stat.rfind(')');
  if (paren == std::string_view::npos) return std::nullopt;
  std::string_view rest = stat.substr(paren + 1);
  constexpr int kFirstFieldAfterComm = 3;
  for (int field = kFirstFieldAfterComm;; ++field) {
    const size_t b = rest.find_first_not_of(' ');
    if (b == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(b);
    const std::string_view token = rest.substr(0, rest.find(' '));
    if (field == wanted) {
      uint64_t value = 0;
      const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
      if (ec != std::errc() || ptr != token.data() + token.size()) return std::nullopt;
      return value;
    }
    rest.remove_prefix(token.size());
  }
}

constexpr int kStatParentPid = 4;
constexpr int kStatStartTime = 22;

// /proc/<pid>/stat's starttime from the kernel's task->start_boottime:
// nsec_to_clock_t() divides by NSEC_PER_SEC / USER_HZ, and USER_HZ is what
// sysconf(_SC_CLK_TCK) reports.
uint64_t StartTicksFromBoottimeNs(uint64_t ns) {
  const long hz = sysconf(_SC_CLK_TCK);
  return ns / (1'000'000'000ULL / static_cast<uint64_t>(hz > 0 ? hz : 100));
}

// ---- service.instance.id ----------------------------------------------------

// SHA-1 (FIPS 180-4), needed only because UUID version 5 is defined on it. No
// dependency in the project provides a hash (libcrypto is not linked), and
// this is the one use; the unit test checks it against Python's uuid.uuid5.
// Not used for anything security-relevant.
std::array<uint8_t, 20> Sha1(std::string_view data) {
  std::array<uint32_t, 5> h = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  std::string msg(data);
  msg += static_cast<char>(0x80);
  while (msg.size() % 64 != 56) msg += '\0';
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (int i = 7; i >= 0; --i) msg += static_cast<char>(bits >> (8 * i));

  for (size_t block = 0; block < msg.size(); block += 64) {
    std::array<uint32_t, 80> w;
    for (int t = 0; t < 16; ++t) {
      const auto* p = reinterpret_cast<const uint8_t*>(msg.data() + block + 4 * t);
      w[t] = uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
    }
    for (int t = 16; t < 80; ++t) w[t] = std::rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; ++t) {
      uint32_t f, k;
      if (t < 20) {
        f = (b & c) | (~b & d), k = 0x5a827999;
      } else if (t < 40) {
        f = b ^ c ^ d, k = 0x6ed9eba1;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
      } else {
        f = b ^ c ^ d, k = 0xca62c1d6;
      }
      const uint32_t temp = std::rotl(a, 5) + f + e + k + w[t];
      e = d, d = c, c = std::rotl(b, 30), b = a, a = temp;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  std::array<uint8_t, 20> out;
  for (int i = 0; i < 20; ++i) out[i] = static_cast<uint8_t>(h[i / 4] >> (24 - 8 * (i % 4)));
  return out;
}

// RFC 9562 section 5.5: SHA-1 over namespace then name, first 16 bytes, with
// version 5 and the RFC variant stamped in.
std::string UuidV5(const std::array<uint8_t, 16>& ns, std::string_view name) {
  std::string input(reinterpret_cast<const char*>(ns.data()), ns.size());
  input += name;
  const auto hash = Sha1(input);
  std::array<uint8_t, 16> u;
  std::copy_n(hash.begin(), u.size(), u.begin());
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x50);
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);
  std::string out;
  char buf[3];
  for (size_t i = 0; i < u.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    std::snprintf(buf, sizeof(buf), "%02x", u[i]);
    out += buf;
  }
  return out;
}

// The name hashed into the instance id. pid + starttime identify one process
// for the life of one boot; the boot id keeps a daemon that gets the same pid
// and start tick after every reboot from reusing its id; the host name keeps
// hosts apart. Hashing (rather than printing) these follows the semantic
// conventions' advice that the underlying data "should be treated as
// confidential".
std::string InstanceIdName(std::string_view host, std::string_view boot_id, pid_t pid,
                           uint64_t starttime) {
  std::string name(host);
  name += '/';
  name += boot_id;
  name += '/';
  name += std::to_string(pid);
  name += '/';
  name += std::to_string(starttime);
  return name;
}

}  // namespace

KernelIdentity KernelIdentityOf(const ProcIdentityEvent& ev) {
  KernelIdentity k;
  k.pid = static_cast<pid_t>(ev.hdr->pid);
  k.ppid = static_cast<pid_t>(ev.identity->ppid);
  k.comm = ev.comm;
  if (ev.identity->flags & HT_IDENTITY_F_FIRST_SEEN) {
    k.exe_name = ev.path;
  } else {
    k.exec_path = ev.path;
  }
  k.start_boottime_ns = ev.identity->start_boottime_ns;
  k.cgroup_id = ev.identity->cgroup_id;
  return k;
}

ProcessRegistry::ProcessRegistry(std::string host_name, std::string proc_root)
    : host_name_(std::move(host_name)), proc_root_(std::move(proc_root)) {}

std::shared_ptr<const ProcessInfo> ProcessRegistry::Get(pid_t pid) {
  if (auto it = cache_.find(pid); it != cache_.end()) {
    // One atomic load per span while the node's pods do not change.
    if (pods_ != nullptr && it->second->pods_generation != pods_->generation()) {
      it->second = WithCurrentPod(std::move(it->second));
    }
    return it->second;
  }
  auto info = Load(pid, nullptr);
  Remember(pid, info);
  return info;
}

std::shared_ptr<const ProcessInfo> ProcessRegistry::WithCurrentPod(
    std::shared_ptr<const ProcessInfo> info) const {
  auto updated = std::make_shared<ProcessInfo>(*info);
  const auto pod = updated->pod;
  const std::string container = updated->container_name;
  ApplyPod(updated.get());
  if (updated->pod != pod || updated->container_name != container) {
    updated->resource = BuildResource(*updated);
  }
  return updated;
}

void ProcessRegistry::ApplyPod(ProcessInfo* info) const {
  if (pods_ == nullptr) return;
  // Read the generation first: a change after it is seen on the next Get.
  info->pods_generation = pods_->generation();
  if (info->container_id.empty() && info->pod_uid.empty()) return;
  auto match = pods_->Find(info->container_id, info->pod_uid);
  // A pod the cache no longer has (deleted and past its grace period) keeps
  // the name it had: its processes are gone or going.
  if (!match) return;
  info->pod = match->pod;
  info->container_name = match->container_name;
  info->service_name = info->named_itself ? info->derived_service_name
                                          : KubernetesServiceName(*match);
}

std::shared_ptr<const ProcessInfo> ProcessRegistry::Learn(const KernelIdentity& identity) {
  auto info = Load(identity.pid, &identity);
  cache_.erase(identity.pid);
  Remember(identity.pid, info);
  return info;
}

void ProcessRegistry::Remember(pid_t pid, std::shared_ptr<const ProcessInfo> info) {
  if (cache_.size() >= kMaxCachedProcesses) {
    // Callers Forget() pids on exit; if exits were missed, drop entries of
    // processes that are gone, then arbitrary ones down to 7/8 full so the
    // sweep is not repeated on every new pid. Spans already built keep their
    // Resource through their own shared_ptr; a live pid dropped here is
    // simply read again.
    struct stat st;
    for (auto it = cache_.begin(); it != cache_.end();) {
      const std::string dir = proc_root_ + "/" + std::to_string(it->first);
      it = ::stat(dir.c_str(), &st) != 0 ? cache_.erase(it) : std::next(it);
    }
    while (cache_.size() > kMaxCachedProcesses - kMaxCachedProcesses / 8) {
      cache_.erase(cache_.begin());
    }
  }
  cache_.emplace(pid, std::move(info));
}

void ProcessRegistry::Forget(pid_t pid) { cache_.erase(pid); }

std::shared_ptr<const ProcessInfo> ProcessRegistry::Load(pid_t pid,
                                                         const KernelIdentity* kernel) {
  const std::string dir = proc_root_ + "/" + std::to_string(pid);
  auto info = std::make_shared<ProcessInfo>();
  info->pid = pid;
  // Not seen at exec, and its parent's executable: a forked child that has
  // not exec'd is its parent's program.
  const ProcessInfo* parent = nullptr;
  if (kernel != nullptr && kernel->exec_path.empty()) {
    if (auto it = cache_.find(kernel->ppid);
        it != cache_.end() &&
        (kernel->exe_name.empty() || kernel->exe_name == it->second->executable_name)) {
      parent = it->second.get();
    }
  }
  if (parent != nullptr && kernel->exe_name.empty()) {
    // At its fork: a copy of its parent, with nothing of its own in /proc
    // yet. Its exec, or its first connection, says more.
    *info = *parent;
    info->pid = pid;
    info->ppid = kernel->ppid;
    info->comm = kernel->comm;
    info->cgroup_id = kernel->cgroup_id;
    info->start_ticks.reset();
    info->resource = BuildResource(*info);
    return info;
  }

  const std::optional<std::string> comm = ReadFile(dir + "/comm");
  const std::optional<std::string> stat_line = ReadFile(dir + "/stat");
  if (!comm && !stat_line && kernel == nullptr) {
    // Gone before we looked (or never ours to see). OpenTelemetry's fallback
    // name, and the one fact that is certain. No instance id: without a start
    // time it could not tell this process from the next one with its pid.
    info->service_name = "unknown_service";
    auto resource = std::make_shared<Resource>();
    resource->attributes = {{"service.name", info->service_name},
                            {"host.name", host_name_},
                            {"process.pid", static_cast<int64_t>(pid)}};
    AddExtraAttributes(resource->attributes);
    info->resource = std::move(resource);
    return info;
  }

  if (comm) {
    info->comm = std::string(Trim(*comm));
  } else if (kernel != nullptr) {
    info->comm = kernel->comm;
  }
  if (auto ppid = stat_line ? StatField(*stat_line, kStatParentPid) : std::nullopt) {
    info->ppid = static_cast<pid_t>(*ppid);
  } else if (kernel != nullptr) {
    info->ppid = kernel->ppid;
  }
  // Reading exe needs the same ptrace access as environ; without it the
  // semantic conventions' other source for the name is comm. A process that
  // has exited (a zombie too) has no exe link; the file it exec'd is the same
  // program, though only an absolute path is a path we can report.
  if (auto exe = ReadLink(dir + "/exe")) {
    info->executable_path = *exe;
    info->executable_name = std::string(Basename(*exe));
  } else if (kernel != nullptr && !kernel->exec_path.empty()) {
    if (kernel->exec_path.front() == '/') info->executable_path = kernel->exec_path;
    info->executable_name = std::string(Basename(kernel->exec_path));
  } else if (parent != nullptr) {
    info->executable_path = parent->executable_path;
    info->executable_name = parent->executable_name;
  } else if (kernel != nullptr && !kernel->exe_name.empty()) {
    info->executable_name = kernel->exe_name;
  } else {
    info->executable_name = info->comm;
  }
  if (auto cmdline = ReadFile(dir + "/cmdline")) info->argv = SplitNul(*cmdline);
  // Used for the service name only, then dropped: environments hold secrets.
  std::vector<std::string> env;
  if (auto data = ReadFile(dir + "/environ")) env = SplitNul(*data);
  if (parent != nullptr && info->argv.empty() && env.empty()) {
    info->argv = parent->argv;
    info->derived_service_name = parent->derived_service_name;
    info->named_itself = parent->named_itself;
  } else {
    info->derived_service_name = DeriveServiceName(info->executable_name, info->argv, env);
    info->named_itself = OwnServiceName(env).has_value();
  }
  info->service_name = info->derived_service_name;
  CgroupIdentity cgroup;
  if (auto text = ReadFile(dir + "/cgroup")) cgroup = ParseCgroupFile(*text);
  if (kernel != nullptr && kernel->cgroup_id != 0) {
    info->cgroup_id = kernel->cgroup_id;
    if (!cgroup.container_id.empty() || !cgroup.pod_uid.empty()) {
      // Bounded by clearing: the map only saves /proc reads that failed.
      if (containers_by_cgroup_.size() >= kMaxCachedProcesses) containers_by_cgroup_.clear();
      containers_by_cgroup_[info->cgroup_id] = cgroup;
    } else if (auto it = containers_by_cgroup_.find(info->cgroup_id);
               it != containers_by_cgroup_.end()) {
      cgroup = it->second;
    }
  }
  info->container_id = std::move(cgroup.container_id);
  info->pod_uid = std::move(cgroup.pod_uid);
  info->unified_cgroup = std::move(cgroup.unified_path);
  ApplyPod(info.get());

  info->start_ticks = stat_line ? StatField(*stat_line, kStatStartTime) : std::nullopt;
  if (!info->start_ticks && kernel != nullptr && kernel->start_boottime_ns != 0) {
    info->start_ticks = StartTicksFromBoottimeNs(kernel->start_boottime_ns);
  }
  info->resource = BuildResource(*info);
  return info;
}

std::shared_ptr<const Resource> ProcessRegistry::BuildResource(const ProcessInfo& info) const {
  auto resource = std::make_shared<Resource>();
  Attributes& attrs = resource->attributes;
  attrs.push_back({"service.name", info.service_name});
  if (const auto& start_ticks = info.start_ticks) {
    const auto boot_id = ReadFile(proc_root_ + "/sys/kernel/random/boot_id");
    const std::string name = InstanceIdName(
        host_name_, boot_id ? Trim(*boot_id) : std::string_view(), info.pid, *start_ticks);
    attrs.push_back({"service.instance.id", UuidV5(kServiceInstanceNamespace, name)});
  }
  attrs.push_back({"host.name", host_name_});
  attrs.push_back({"process.pid", static_cast<int64_t>(info.pid)});
  if (info.ppid > 0) attrs.push_back({"process.parent_pid", static_cast<int64_t>(info.ppid)});
  if (!info.executable_name.empty()) {
    attrs.push_back({"process.executable.name", info.executable_name});
  }
  if (!info.executable_path.empty()) {
    attrs.push_back({"process.executable.path", info.executable_path});
  }
  // process.command is argv[0] ("the zeroth string in proc/[pid]/cmdline").
  // Cut at the first space: a process that rewrote its title (setproctitle,
  // nginx, postgres) has its whole command line, arguments included, there.
  // Without a command line (gone, or a zombie) the command name is comm.
  std::string_view command = info.comm;
  if (!info.argv.empty()) {
    command = std::string_view(info.argv[0]).substr(0, info.argv[0].find(' '));
  }
  if (!command.empty()) attrs.push_back({"process.command", std::string(command)});
  if (!info.container_id.empty()) attrs.push_back({"container.id", info.container_id});
  if (info.pod != nullptr) AddKubernetesAttributes(PodMatch{info.pod, info.container_name}, attrs);
  AddExtraAttributes(attrs);
  return resource;
}

void ProcessRegistry::AddExtraAttributes(Attributes& attrs) const {
  // What the process says about itself wins over the agent-wide settings.
  for (const auto& extra : extra_attributes_) {
    if (FindAttribute(attrs, extra.key) == nullptr) attrs.push_back(extra);
  }
}

}  // namespace hoptrace
