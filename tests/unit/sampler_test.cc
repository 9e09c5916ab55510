#include "agent/trace/sampler.h"

#include <gtest/gtest.h>

#include "agent/trace/trace_context.h"

namespace hoptrace {
namespace {

TEST(SamplerTest, ParsesEveryOtelSamplerName) {
  SamplerConfig c;
  EXPECT_EQ(ParseSampler("always_off", "", &c), std::nullopt);
  EXPECT_EQ(c.kind, SamplerKind::kAlwaysOff);
  EXPECT_EQ(ParseSampler("parentbased_traceidratio", "0.25", &c), std::nullopt);
  EXPECT_EQ(c.kind, SamplerKind::kParentBasedTraceIdRatio);
  EXPECT_DOUBLE_EQ(c.ratio, 0.25);
  EXPECT_EQ(ParseSampler("traceidratio", "", &c), std::nullopt);
  EXPECT_DOUBLE_EQ(c.ratio, 1.0);
}

TEST(SamplerTest, RejectsUnknownNamesAndBadRatios) {
  SamplerConfig c;
  EXPECT_NE(ParseSampler("sometimes", "", &c), std::nullopt);
  EXPECT_NE(ParseSampler("traceidratio", "1.5", &c), std::nullopt);
  EXPECT_NE(ParseSampler("traceidratio", "-0.1", &c), std::nullopt);
  EXPECT_NE(ParseSampler("traceidratio", "half", &c), std::nullopt);
}

TEST(SamplerTest, ParentBasedFollowsTheParentsFlag) {
  Sampler s({SamplerKind::kParentBasedTraceIdRatio, 0.0});
  IdGenerator ids(1);
  TraceId t = ids.NewTraceId();
  EXPECT_TRUE(s.ShouldSample(t, true));
  EXPECT_FALSE(s.ShouldSample(t, false));
  EXPECT_FALSE(s.ShouldSample(t, std::nullopt));  // root: ratio 0
  Sampler on({SamplerKind::kParentBasedAlwaysOn, 1.0});
  EXPECT_FALSE(on.ShouldSample(t, false));
  EXPECT_TRUE(on.ShouldSample(t, std::nullopt));
  Sampler off({SamplerKind::kParentBasedAlwaysOff, 1.0});
  EXPECT_TRUE(off.ShouldSample(t, true));
  EXPECT_FALSE(off.ShouldSample(t, std::nullopt));
}

TEST(SamplerTest, NonParentBasedSamplersIgnoreTheParent) {
  IdGenerator ids(2);
  TraceId t = ids.NewTraceId();
  EXPECT_FALSE(Sampler({SamplerKind::kAlwaysOff, 1.0}).ShouldSample(t, true));
  EXPECT_TRUE(Sampler({SamplerKind::kAlwaysOn, 1.0}).ShouldSample(t, false));
  EXPECT_FALSE(Sampler({SamplerKind::kTraceIdRatio, 0.0}).ShouldSample(t, true));
}

TEST(SamplerTest, RatioKeepsThatShareOfRandomTracesAndIsDeterministic) {
  Sampler s({SamplerKind::kTraceIdRatio, 0.25});
  IdGenerator ids(3);
  int kept = 0;
  constexpr int kN = 40000;
  for (int i = 0; i < kN; ++i) {
    TraceId t = ids.NewTraceId();
    bool d = s.ShouldSample(t, std::nullopt);
    EXPECT_EQ(d, s.ShouldSample(t, std::nullopt));
    kept += d;
  }
  EXPECT_NEAR(static_cast<double>(kept) / kN, 0.25, 0.015);
}

TEST(SamplerTest, RatioUsesTheLow56Bits) {
  Sampler half({SamplerKind::kTraceIdRatio, 0.5});
  TraceId low{}, high{};
  low.bytes[15] = 1;     // r = 1: below the threshold
  high.bytes[9] = 0xff;  // r >= 2^55: above it
  EXPECT_FALSE(half.ShouldSample(low, std::nullopt));
  EXPECT_TRUE(half.ShouldSample(high, std::nullopt));
  high.bytes[0] = 0xff;  // bytes outside the 56 bits do not matter
  EXPECT_TRUE(half.ShouldSample(high, std::nullopt));
}

}  // namespace
}  // namespace hoptrace
