// What hoptrace's hooks cost a process it does not trace.
//
// Every syscall tracepoint is system-wide: once one is attached, every task's
// syscalls take the kernel's slow path, and each hooked syscall runs the
// program, which returns at once for a process nobody selected. tcp_probe
// (hn_tcp_probe: RTT and TTL) runs for every segment that reaches an
// established socket on the host, and looks the socket up. This times, in
// this (never selected) process, write(2) to /dev/null (a hooked syscall),
// getppid(2) (one nobody hooks) and a round trip of one octet each way on a
// loopback TCP connection (one thread: each write delivers at once), under:
//
//   none        nothing attached
//   tp          sys_enter_write + sys_exit_write, one perf-backed event per
//               syscall kind and direction: hoptrace's capture
//   tp-enter    sys_enter_write alone (one direction)
//   raw         tp_btf sys_enter + sys_exit: one program for every syscall of
//               every process, dispatched by number (the alternative design)
//   tcp         tp_btf tcp_probe, a program that only counts its runs
//   tcp-lookup  the same plus hn_tcp_probe's first step for a socket that is
//               not ours: a miss in an LRU hash of 65 536 sockets (2 000 in
//               it)
//
// Rounds alternate the modes; each line is ns per syscall / round trip and
// its excess over `none` in the same round; the summary gives the median
// excess and the spread over rounds, and tcp_probe runs per round trip.
//
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
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
    {"tcp", {"tcp_trivial"}},
    {"tcp-lookup", {"tcp_lookup"}},
};

double NowNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

struct Times {
  double write_ns;
  double getppid_ns;
  double tcp_rt_ns = 0;
  double tcp_runs_per_rt = 0;
  double reported_ns_per_run = 0;  // --stats: run_time_ns / run_cnt over the mode's programs
};

// Two ends of one loopback TCP connection (TCP_NODELAY both ways).
struct TcpPair {
  int a = -1, b = -1;
};

bool OpenTcpPair(TcpPair* p) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(ls, 1) != 0 || getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("loopback listener");
    return false;
  }
  p->a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->a < 0 || connect(p->a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("loopback connect");
    return false;
  }
  p->b = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
  close(ls);
  if (p->b < 0) {
    std::perror("loopback accept");
    return false;
  }
  int one = 1;
  setsockopt(p->a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(p->b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return true;
}

double TimeTcpRoundTrips(long trips, const TcpPair& p) {
  char byte = 0;
  const double t0 = NowNs();
  for (long i = 0; i < trips; ++i) {
    if (write(p.a, &byte, 1) != 1 || read(p.b, &byte, 1) != 1 || write(p.b, &byte, 1) != 1 ||
        read(p.a, &byte, 1) != 1)
      std::abort();
  }
  return (NowNs() - t0) / static_cast<double>(trips);
}

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
bool RunMode(const Mode& mode, long calls, int devnull, const TcpPair& tcp, Times* out) {
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
  if (std::count(mode.programs.begin(), mode.programs.end(), std::string_view("tcp_lookup"))) {
    // Other sockets in the table, as on a node with connections followed.
    std::mt19937_64 rng(42);
    for (int i = 0; i < 2000; ++i) {
      uint64_t key = 0xffff888000000000ULL | (rng() & 0xffffffc0ULL);
      uint64_t value[2] = {static_cast<uint64_t>(i), 1};
      bpf_map__update_elem(skel->maps.owners, &key, sizeof key, value, sizeof value, BPF_ANY);
    }
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
  if (ok) {
    *out = TimeSyscalls(calls, devnull);
    const long trips = calls / 4;
    const uint64_t runs0 = skel->bss->tcp_runs;
    out->tcp_rt_ns = TimeTcpRoundTrips(trips, tcp);
    out->tcp_runs_per_rt =
        static_cast<double>(skel->bss->tcp_runs - runs0) / static_cast<double>(trips);
  }
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
  TcpPair tcp;
  if (!OpenTcpPair(&tcp)) return 1;
  std::map<std::string, std::vector<double>> write_excess, getppid_excess, tcp_excess, tcp_runs,
      reported;
  std::printf("%-5s %-10s %10s %8s %12s %8s %12s %8s %8s%s\n", "round", "mode", "write ns", "+ns",
              "getppid ns", "+ns", "tcp rt ns", "+ns", "tcp runs", stats ? "  reported ns/run" : "");
  for (int r = 1; r <= rounds; ++r) {
    Times none{};
    for (const Mode& mode : kModes) {
      Times t{};
      if (!RunMode(mode, calls, devnull, tcp, &t)) return 1;
      if (std::strcmp(mode.name, "none") == 0) none = t;
      const double dw = t.write_ns - none.write_ns, dg = t.getppid_ns - none.getppid_ns;
      const double dt = t.tcp_rt_ns - none.tcp_rt_ns;
      write_excess[mode.name].push_back(dw);
      getppid_excess[mode.name].push_back(dg);
      tcp_excess[mode.name].push_back(dt);
      tcp_runs[mode.name].push_back(t.tcp_runs_per_rt);
      reported[mode.name].push_back(t.reported_ns_per_run);
      std::printf("%-5d %-10s %10.1f %+8.1f %12.1f %+8.1f %12.1f %+8.1f %8.2f", r, mode.name,
                  t.write_ns, dw, t.getppid_ns, dg, t.tcp_rt_ns, dt, t.tcp_runs_per_rt);
      if (stats && !mode.programs.empty()) std::printf("  %16.1f", t.reported_ns_per_run);
      std::printf("\n");
    }
  }
  std::printf(
      "\nexcess over none, median [min, max] over %d rounds, ns per syscall or round trip\n",
      rounds);
  std::printf("%-10s %-26s %-26s %-26s %-8s%s\n", "mode", "write (hooked)",
              "getppid (not hooked)", "tcp round trip", "tcp runs",
              stats ? " reported ns/run" : "");
  auto spread = [](const std::vector<double>& v) {
    char b[64];
    std::snprintf(b, sizeof b, "%+.1f [%+.1f, %+.1f]", Median(v),
                  *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
    return std::string(b);
  };
  for (const Mode& mode : kModes) {
    std::printf("%-10s %-26s %-26s %-26s %-8.2f", mode.name,
                spread(write_excess[mode.name]).c_str(),
                spread(getppid_excess[mode.name]).c_str(), spread(tcp_excess[mode.name]).c_str(),
                Median(tcp_runs[mode.name]));
    if (stats && !mode.programs.empty()) std::printf(" %.1f", Median(reported[mode.name]));
    std::printf("\n");
  }
  if (stats_fd >= 0) close(stats_fd);
  close(tcp.a);
  close(tcp.b);
  close(devnull);
  return 0;
}
