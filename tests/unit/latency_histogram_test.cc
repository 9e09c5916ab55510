#include "agent/hops/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace hoptrace {
namespace {

TEST(LatencyHistogram, BucketsTileTheRangeWithBoundedRelativeWidth) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0);
  EXPECT_EQ(LatencyHistogram::BucketOf(1023), 0);
  EXPECT_EQ(LatencyHistogram::BucketOf(1024), 1);
  EXPECT_EQ(LatencyHistogram::BucketOf(uint64_t{1} << 37), LatencyHistogram::kBuckets - 1);
  EXPECT_EQ(LatencyHistogram::BucketOf(~uint64_t{0}), LatencyHistogram::kBuckets - 1);
  for (int b = 1; b < LatencyHistogram::kBuckets - 1; ++b) {
    const uint64_t lo = LatencyHistogram::BucketLower(b), hi = LatencyHistogram::BucketUpper(b);
    ASSERT_EQ(LatencyHistogram::BucketLower(b + 1), hi) << b;  // no gaps, no overlaps
    ASSERT_EQ(LatencyHistogram::BucketOf(lo), b);
    ASSERT_EQ(LatencyHistogram::BucketOf(hi - 1), b);
    ASSERT_LE(static_cast<double>(hi - lo) / static_cast<double>(lo), 1.0 / 16 + 1e-12) << b;
  }
}

TEST(LatencyHistogram, PercentilesWithinThreePercentOfExact) {
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> dist(std::log(5e6), 1.0);  // ~5 ms median, heavy tail
  LatencyHistogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 100000; ++i) {
    const auto v = static_cast<uint64_t>(dist(rng));
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact =
        static_cast<double>(values[static_cast<size_t>(std::ceil(q * values.size())) - 1]);
    EXPECT_NEAR(static_cast<double>(h.Quantile(q)), exact, exact * 0.032) << q;
  }
  EXPECT_EQ(h.count(), values.size());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.Quantile(1.0), values.back());
}

TEST(LatencyHistogram, EmptySingleAndMerged) {
  LatencyHistogram a, b;
  EXPECT_EQ(a.Quantile(0.5), 0u);
  a.Record(20'000'000);
  EXPECT_EQ(a.Quantile(0.5), 20'000'000u);  // clamped to the one value seen
  EXPECT_EQ(a.Quantile(0.99), 20'000'000u);
  for (int i = 0; i < 99; ++i) b.Record(1'000'000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 100u);
  EXPECT_NEAR(static_cast<double>(a.Quantile(0.5)), 1e6, 1e6 * 0.032);
  EXPECT_EQ(a.Quantile(1.0), 20'000'000u);
  EXPECT_EQ(a.min(), 1'000'000u);
  a.Clear();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.Quantile(0.5), 0u);
}

TEST(LatencyHistogram, UnderAMicrosecondAndBeyondTheRange) {
  LatencyHistogram h;
  h.Record(300);
  h.Record(700);
  EXPECT_GE(h.Quantile(0.5), 300u);
  EXPECT_LE(h.Quantile(0.5), 700u);
  h.Record(uint64_t{500} << 30);  // ~537 s: overflow bucket, reported exactly
  EXPECT_EQ(h.Quantile(1.0), uint64_t{500} << 30);
}

}  // namespace
}  // namespace hoptrace
