// What hoptrace's syscall hooks cost a process it does not trace.
//
// Every syscall tracepoint is system-wide: once one is attached, every task's
// syscalls take the kernel's slow path, and each hooked syscall runs the
// program, which returns at once for a process nobody selected. This times,
// in this (never selected) process, write(2) to /dev/null (a hooked syscall)
// and getppid(2) (one nobody hooks) under:
//
//   none     nothing attached
//   tp       sys_enter_write + sys_exit_write, one perf-backed event per
//            syscall kind and direction: hoptrace's capture
//   tp-enter sys_enter_write alone (one direction)
//   raw      tp_btf sys_enter + sys_exit: one program for every syscall of
//            every process, dispatched by number (the alternative design)
//
// Rounds alternate the modes; each line is ns per syscall and its excess over
// `none` in the same round; the summary gives the median excess and the
// spread over rounds.
//
//   sudo build/tests/bench/ht_syscall_hook_bench [--calls N] [--rounds R]
//
// The programs count hits of a tgid that is never this process, so the hits
// counter staying 0 is checked: a hook that selected us would measure more
// than the early return.
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <bpf/libbpf.h>

#include "syscall_hook.skel.h"

namespace {

struct Mode {
  const char* name;
  std::vector<const char*> programs;
};

const Mode kModes[] = {
    {"none", {}},
    {"tp", {"tp_enter_write", "tp_exit_write"}},
    {"tp-enter", {"tp_enter_write"}},
    {"raw", {"raw_enter", "raw_exit"}},
};

double NowNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

struct Times {
  double write_ns;
  double getppid_ns;
};

Times TimeSyscalls(long calls, int devnull) {
  char byte = 0;
  const double t0 = NowNs();
  for (long i = 0; i < calls; ++i) {
    if (write(devnull, &byte, 1) != 1) std::abort();
  }
  const double t1 = NowNs();
  for (long i = 0; i < calls; ++i) syscall(SYS_getppid);
  const double t2 = NowNs();
  return {(t1 - t0) / static_cast<double>(calls), (t2 - t1) / static_cast<double>(calls)};
}

// Loads and attaches the mode's programs, times, detaches. False on error
// (printed).
bool RunMode(const Mode& mode, long calls, int devnull, Times* out) {
  syscall_hook_bpf* skel = syscall_hook_bpf__open();
  if (skel == nullptr) {
    std::fprintf(stderr, "open: %s\n", std::strerror(errno));
    return false;
  }
  skel->rodata->targ_tgid = 0;  // pid 0 makes no syscalls: nothing is ever selected
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel->obj) {
    const char* name = bpf_program__name(prog);
    bool on = std::any_of(mode.programs.begin(), mode.programs.end(),
                          [&](const char* p) { return std::strcmp(p, name) == 0; });
    bpf_program__set_autoload(prog, on);
  }
  if (int err = syscall_hook_bpf__load(skel); err != 0) {
    std::fprintf(stderr, "%s: load: %s\n", mode.name, std::strerror(-err));
    syscall_hook_bpf__destroy(skel);
    return false;
  }
  std::vector<bpf_link*> links;
  bool ok = true;
  bpf_object__for_each_program(prog, skel->obj) {
    if (!bpf_program__autoload(prog)) continue;
    bpf_link* link = bpf_program__attach(prog);
    if (link == nullptr) {
      std::fprintf(stderr, "%s: attach %s: %s\n", mode.name, bpf_program__name(prog),
                   std::strerror(errno));
      ok = false;
      break;
    }
    links.push_back(link);
  }
  if (ok) *out = TimeSyscalls(calls, devnull);
  for (bpf_link* link : links) bpf_link__destroy(link);
  if (ok && skel->bss->hits != 0) {
    std::fprintf(stderr, "%s: the programs selected this process (%llu hits)\n", mode.name,
                 static_cast<unsigned long long>(skel->bss->hits));
    ok = false;
  }
  syscall_hook_bpf__destroy(skel);
  return ok;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long calls = 2000000;
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--calls" && i + 1 < argc) {
      calls = std::atol(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--calls N] [--rounds R]\n", argv[0]);
      return 2;
    }
  }
  if (calls <= 0 || rounds <= 0) {
    std::fprintf(stderr, "--calls and --rounds must be positive\n");
    return 2;
  }
  const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (devnull < 0) {
    std::perror("/dev/null");
    return 1;
  }
  std::map<std::string, std::vector<double>> write_excess, getppid_excess;
  std::printf("%-5s %-9s %10s %8s %12s %8s\n", "round", "mode", "write ns", "+ns", "getppid ns",
              "+ns");
  for (int r = 1; r <= rounds; ++r) {
    Times none{};
    for (const Mode& mode : kModes) {
      Times t{};
      if (!RunMode(mode, calls, devnull, &t)) return 1;
      if (std::strcmp(mode.name, "none") == 0) none = t;
      const double dw = t.write_ns - none.write_ns, dg = t.getppid_ns - none.getppid_ns;
      write_excess[mode.name].push_back(dw);
      getppid_excess[mode.name].push_back(dg);
      std::printf("%-5d %-9s %10.1f %+8.1f %12.1f %+8.1f\n", r, mode.name, t.write_ns, dw,
                  t.getppid_ns, dg);
    }
  }
  std::printf("\nexcess over none, median [min, max] over %d rounds, ns per syscall\n", rounds);
  std::printf("%-9s %-26s %-26s\n", "mode", "write (hooked)", "getppid (not hooked)");
  for (const Mode& mode : kModes) {
    auto& w = write_excess[mode.name];
    auto& g = getppid_excess[mode.name];
    char wb[64], gb[64];
    std::snprintf(wb, sizeof wb, "%+.1f [%+.1f, %+.1f]", Median(w),
                  *std::min_element(w.begin(), w.end()), *std::max_element(w.begin(), w.end()));
    std::snprintf(gb, sizeof gb, "%+.1f [%+.1f, %+.1f]", Median(g),
                  *std::min_element(g.begin(), g.end()), *std::max_element(g.begin(), g.end()));
    std::printf("%-9s %-26s %-26s\n", mode.name, wb, gb);
  }
  close(devnull);
  return 0;
}
