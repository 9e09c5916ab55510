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
//   sudo build/tests/bench/ht_syscall_hook_bench [--calls N] [--rounds R] [--stats]
//
// --stats turns on the kernel's BPF run-time accounting (BPF_ENABLE_STATS, as
// agent_cost.sh and wrk_overhead.sh --bpf-stats do) for the whole run, and
// adds what each program's run_time_ns / run_cnt reports: for these programs
// (a helper call and a compare) that is the floor any program reports, and
// the syscall times show what the accounting itself adds per run.
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

#include <bpf/bpf.h>
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
  double reported_ns_per_run = 0;  // --stats: run_time_ns / run_cnt over the mode's programs
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
  uint64_t run_time = 0, run_cnt = 0;
  bpf_object__for_each_program(prog, skel->obj) {
    if (!bpf_program__autoload(prog)) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0) {
      run_time += info.run_time_ns;
      run_cnt += info.run_cnt;
    }
  }
  if (run_cnt > 0) out->reported_ns_per_run = static_cast<double>(run_time) / run_cnt;
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
  bool stats = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--stats") {
      stats = true;
    } else if (a == "--calls" && i + 1 < argc) {
      calls = std::atol(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--calls N] [--rounds R] [--stats]\n", argv[0]);
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
  int stats_fd = -1;
  if (stats) {
    stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);  // held until exit
    if (stats_fd < 0) {
      std::fprintf(stderr, "BPF_ENABLE_STATS: %s\n", std::strerror(-stats_fd));
      return 1;
    }
  }
  std::map<std::string, std::vector<double>> write_excess, getppid_excess, reported;
  std::printf("%-5s %-9s %10s %8s %12s %8s%s\n", "round", "mode", "write ns", "+ns", "getppid ns",
              "+ns", stats ? "  reported ns/run" : "");
  for (int r = 1; r <= rounds; ++r) {
    Times none{};
    for (const Mode& mode : kModes) {
      Times t{};
      if (!RunMode(mode, calls, devnull, &t)) return 1;
      if (std::strcmp(mode.name, "none") == 0) none = t;
      const double dw = t.write_ns - none.write_ns, dg = t.getppid_ns - none.getppid_ns;
      write_excess[mode.name].push_back(dw);
      getppid_excess[mode.name].push_back(dg);
      reported[mode.name].push_back(t.reported_ns_per_run);
      std::printf("%-5d %-9s %10.1f %+8.1f %12.1f %+8.1f", r, mode.name, t.write_ns, dw,
                  t.getppid_ns, dg);
      if (stats && !mode.programs.empty()) std::printf("  %16.1f", t.reported_ns_per_run);
      std::printf("\n");
    }
  }
  std::printf("\nexcess over none, median [min, max] over %d rounds, ns per syscall\n", rounds);
  std::printf("%-9s %-26s %-26s%s\n", "mode", "write (hooked)", "getppid (not hooked)",
              stats ? " reported ns/run" : "");
  for (const Mode& mode : kModes) {
    auto& w = write_excess[mode.name];
    auto& g = getppid_excess[mode.name];
    char wb[64], gb[64];
    std::snprintf(wb, sizeof wb, "%+.1f [%+.1f, %+.1f]", Median(w),
                  *std::min_element(w.begin(), w.end()), *std::max_element(w.begin(), w.end()));
    std::snprintf(gb, sizeof gb, "%+.1f [%+.1f, %+.1f]", Median(g),
                  *std::min_element(g.begin(), g.end()), *std::max_element(g.begin(), g.end()));
    std::printf("%-9s %-26s %-26s", mode.name, wb, gb);
    if (stats && !mode.programs.empty()) std::printf(" %.1f", Median(reported[mode.name]));
    std::printf("\n");
  }
  if (stats_fd >= 0) close(stats_fd);
  close(devnull);
  return 0;
}
