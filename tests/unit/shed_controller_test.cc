// ShedController: the AIMD policy that turns kernel event losses into the
// share of new connections the kernel follows.
#include "agent/kernel/shed_controller.h"

#include <gtest/gtest.h>

#include <vector>

namespace hoptrace {
namespace {

TEST(ShedController, KeepsEverythingWithoutLossesAndIgnoresLossesBeforeItStarted) {
  ShedController c;
  EXPECT_EQ(c.Update(500), 1024u);  // history
  for (int i = 0; i < 20; ++i) EXPECT_EQ(c.Update(500), 1024u);
}

TEST(ShedController, HalvesOnNewLossesAtMostEveryOtherTickDownToTheFloor) {
  ShedController c(ShedPolicy{/*min_keep=*/16, /*increase_step=*/64, /*calm_ticks=*/5,
                              /*decrease_ticks=*/2});
  c.Update(0);
  uint64_t lost = 0;
  std::vector<uint32_t> seen;
  for (int i = 0; i < 14; ++i) seen.push_back(c.Update(lost += 10));
  EXPECT_EQ(seen, (std::vector<uint32_t>{512, 512, 256, 256, 128, 128, 64, 64, 32, 32, 16, 16,
                                         16, 16}));
}

TEST(ShedController, ClimbsBackAdditivelyAfterCalmPeriods) {
  ShedController c(ShedPolicy{16, 64, /*calm_ticks=*/5, 2});
  c.Update(0);
  EXPECT_EQ(c.Update(1), 512u);
  // Four calm ticks are not enough; the fifth adds one step.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.Update(1), 512u);
  EXPECT_EQ(c.Update(1), 576u);
  // A loss in the middle of the climb restarts the count and halves again.
  EXPECT_EQ(c.Update(2), 288u);
  for (int i = 0; i < 5 * 20; ++i) c.Update(2);
  EXPECT_EQ(c.keep(), 1024u);
  EXPECT_EQ(c.Update(2), 1024u);  // never above all
}

}  // namespace
}  // namespace hoptrace
