#include "agent/kernel/shed_controller.h"

#include <algorithm>

namespace hoptrace {

uint32_t ShedController::Update(uint64_t kernel_lost) {
  if (!primed_) {
    // Losses before the first tick are history, not a signal.
    primed_ = true;
    last_lost_ = kernel_lost;
  }
  const bool lost = kernel_lost != last_lost_;
  last_lost_ = kernel_lost;
  ++since_decrease_;
  if (lost) {
    calm_ = 0;
    if (since_decrease_ >= policy_.decrease_ticks) {
      since_decrease_ = 0;
      keep_ = std::max(policy_.min_keep, keep_ / 2);
    }
  } else if (keep_ < kKeepAll && ++calm_ >= policy_.calm_ticks) {
    calm_ = 0;
    keep_ = std::min(kKeepAll, keep_ + policy_.increase_step);
  }
  return keep_;
}

}  // namespace hoptrace
