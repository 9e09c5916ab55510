#include "uprobes/openssl/tls_attacher.h"

#include <algorithm>

namespace hoptrace::tls {
namespace {

// Rescans of a process with no TLS library yet, after it was added: the
// dynamic loader maps libssl right after exec (first ones), a program may
// dlopen it much later (the last one repeats).
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kRescanDelays[] = {5 * kMs, 20 * kMs, 100 * kMs, 500 * kMs, 2000 * kMs};
constexpr int kRescanSteps = sizeof(kRescanDelays) / sizeof(kRescanDelays[0]);

}  // namespace

TlsAttacher::TlsAttacher(UprobeTarget* target, Finder finder)
    : target_(target), finder_(std::move(finder)) {}

void TlsAttacher::AddProcess(pid_t pid, uint64_t now_ns, bool new_image) {
  std::vector<uint64_t> old;
  Proc& proc = procs_[pid];
  if (new_image) {
    old = std::move(proc.files);
    proc = Proc{};
  }
  Scan(pid, &proc, now_ns);
  std::vector<uint64_t> gone;
  for (uint64_t key : old) {
    if (std::find(proc.files.begin(), proc.files.end(), key) == proc.files.end()) {
      gone.push_back(key);
    }
  }
  Release(pid, gone);
}

void TlsAttacher::AddChild(pid_t parent, pid_t child, uint64_t now_ns) {
  auto it = procs_.find(parent);
  if (it == procs_.end()) {
    AddProcess(child, now_ns);
    return;
  }
  const std::vector<uint64_t> files = it->second.files;
  Proc& proc = procs_[child];
  for (uint64_t key : files) Use(child, &proc, files_.at(key).lib);
  if (proc.files.empty() && proc.next_scan_ns == 0) ScheduleNext(&proc, now_ns);
}

void TlsAttacher::RemoveProcess(pid_t pid) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return;
  std::vector<uint64_t> files = std::move(it->second.files);
  procs_.erase(it);
  Release(pid, files);
}

void TlsAttacher::Release(pid_t pid, const std::vector<uint64_t>& files) {
  for (uint64_t key : files) {
    auto f = files_.find(key);
    if (f == files_.end() || f->second.users.erase(pid) == 0) continue;
    target_->Detach(f->second.lib, pid);
    ++stats_.detached;
    if (f->second.users.empty()) files_.erase(f);
  }
}

size_t TlsAttacher::attachments() const {
  size_t n = 0;
  for (const auto& [key, file] : files_) n += file.users.size();
  return n;
}

void TlsAttacher::Tick(uint64_t now_ns) {
  for (auto& [pid, proc] : procs_) {
    if (proc.next_scan_ns != 0 && now_ns >= proc.next_scan_ns) Scan(pid, &proc, now_ns);
  }
}

void TlsAttacher::Scan(pid_t pid, Proc* proc, uint64_t now_ns) {
  ++stats_.scans;
  for (const TlsLibrary& lib : finder_(pid)) Use(pid, proc, lib);
  proc->next_scan_ns = 0;
  if (proc->files.empty()) ScheduleNext(proc, now_ns);
}

void TlsAttacher::ScheduleNext(Proc* proc, uint64_t now_ns) {
  proc->next_scan_ns = now_ns + kRescanDelays[std::min(proc->scans, kRescanSteps - 1)];
  ++proc->scans;
}

void TlsAttacher::Use(pid_t pid, Proc* proc, const TlsLibrary& lib) {
  const uint64_t key = KeyOf(lib);
  if (std::find(proc->files.begin(), proc->files.end(), key) != proc->files.end()) return;
  if (failed_.count(key)) return;
  auto it = files_.find(key);
  const bool first = it == files_.end();
  if (first && !lib.probeable()) {
    ++stats_.not_probeable;
    failed_.insert(key);
    return;
  }
  if (!first && it->second.users.count(pid)) {
    // Its previous image used the file too (exec): the attachment follows
    // the process into its new image (the kernel's filter is the task's mm).
    proc->files.push_back(key);
    return;
  }
  std::string error;
  if (!target_->Attach(first ? lib : it->second.lib, pid, &error)) {
    ++stats_.attach_failed;
    // A file that cannot be attached in its first process will not be in
    // the next; a later process may simply be gone already.
    if (first) failed_.insert(key);
    return;
  }
  ++stats_.attached;
  if (first) it = files_.emplace(key, File{lib, {}}).first;
  it->second.users.insert(pid);
  proc->files.push_back(key);
}

}  // namespace hoptrace::tls
