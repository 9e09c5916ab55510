#include "agent/kernel/wakeup_model.h"

#include <dirent.h>

#include <string>

namespace hoptrace {

namespace {

int ThreadCount(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

}  // namespace

PreflightItem WakeupModelItem(int pid) {
  PreflightItem item;
  item.feature = "wake-up model in pid " + std::to_string(pid);
  item.status = PreflightItem::Status::kInfo;
  item.needed_for = "parents of calls made by pool workers (native thread pools)";
  const int threads = ThreadCount(pid);
  if (threads < 0) {
    item.detail = "no such process";
  } else if (threads == 1) {
    item.detail = "one thread: the thread model serves it";
  } else {
    item.detail = std::to_string(threads) +
                  " threads: with propagation on, a thread that reads no request takes the "
                  "request of the thread that woke it (sched_waking), none when in doubt; a "
                  "runtime model (Python, Go, Node) answers first where it has one";
  }
  return item;
}

}  // namespace hoptrace
