#include "agent/kernel/env_knob.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace hoptrace {
namespace {

constexpr const char* kName = "HOPTRACE_TEST_ENV_KNOB";

class EnvKnobTest : public ::testing::Test {
 protected:
  void TearDown() override { unsetenv(kName); }
};

TEST_F(EnvKnobTest, UnsetOrEmptyIsNoChoice) {
  unsetenv(kName);
  EXPECT_EQ(EnvKnob(kName, {"off"}), std::nullopt);
  setenv(kName, "", 1);
  EXPECT_EQ(EnvKnob(kName, {"off"}), std::nullopt);
}

TEST_F(EnvKnobTest, AKnownWordIsReturned) {
  setenv(kName, "off", 1);
  EXPECT_EQ(EnvKnob(kName, {"off", "on"}), "off");
  setenv(kName, "on", 1);
  EXPECT_EQ(EnvKnob(kName, {"off", "on"}), "on");
}

TEST_F(EnvKnobTest, AnyOtherValueCountsAsUnset) {
  // A typo must not pass for the path it meant to force (it is logged, once per variable).
  setenv(kName, "of", 1);
  EXPECT_EQ(EnvKnob(kName, {"off"}), std::nullopt);
  setenv(kName, "OFF", 1);
  EXPECT_EQ(EnvKnob(kName, {"off"}), std::nullopt);
  setenv(kName, "on", 1);
  EXPECT_EQ(EnvKnob(kName, {"off"}), std::nullopt);
}

}  // namespace
}  // namespace hoptrace
