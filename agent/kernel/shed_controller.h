// Shedding under overload: events the kernel could not hand over (the ring
// buffer was full: the agent's event path is behind) turned into the share
// of requests the kernel follows (struct ht_shed in bpf/socket_trace.h).
//
// When the agent falls behind, losing events at random places is the worst
// outcome: a ring buffer that overflows cuts streams in the middle, and every
// cut costs a resync and wrong or missing spans. Shedding whole requests in
// the kernel, at the syscall that starts them, costs nothing and keeps what
// is kept whole. The policy is AIMD, like TCP's congestion control:
//   - new kernel losses since the last tick: halve the keep ratio, down to
//     min_keep — at most once per decrease_ticks, so that events already in
//     the ring buffer are not mistaken for more overload;
//   - no losses for calm_ticks ticks in a row: add increase_step, up to all.
// A slow or absent collector is not overload of the event path: the export
// queue absorbs it and drops what it cannot hold (counted), and capture goes
// on at full speed, so tracing is whole again the moment the collector is.
// Pure logic: the caller reads the counter and writes the ratio.
#pragma once

#include <cstdint>

namespace hoptrace {

struct ShedPolicy {
  uint32_t min_keep = 16;       // of 1024: never shed more than ~98 %
  uint32_t increase_step = 64;  // of 1024, per calm period
  int calm_ticks = 5;
  int decrease_ticks = 2;
};

class ShedController {
 public:
  static constexpr uint32_t kKeepAll = 1024;

  explicit ShedController(ShedPolicy policy = {}) : policy_(policy) {}

  // One tick (the caller's period, e.g. 200 ms) with the cumulative count of
  // events the kernel lost. Returns the keep ratio to set, in 1/1024.
  uint32_t Update(uint64_t kernel_lost);
  uint32_t keep() const { return keep_; }

 private:
  ShedPolicy policy_;
  uint32_t keep_ = kKeepAll;
  uint64_t last_lost_ = 0;
  bool primed_ = false;
  int calm_ = 0;
  int since_decrease_ = 1 << 20;
};

}  // namespace hoptrace
