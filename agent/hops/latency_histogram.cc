#include "agent/hops/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace hoptrace {

int LatencyHistogram::BucketOf(uint64_t v) {
  if (v < (uint64_t{1} << kMinExp)) return 0;
  const int exp = 63 - std::countl_zero(v);  // floor(log2 v)
  if (exp >= kMaxExp) return kBuckets - 1;
  const int sub = static_cast<int>((v >> (exp - kSubBits)) & (kSubBuckets - 1));
  return 1 + (exp - kMinExp) * kSubBuckets + sub;
}

uint64_t LatencyHistogram::BucketLower(int bucket) {
  if (bucket <= 0) return 0;
  if (bucket >= kBuckets - 1) return uint64_t{1} << kMaxExp;
  const int exp = kMinExp + (bucket - 1) / kSubBuckets;
  const uint64_t sub = static_cast<uint64_t>((bucket - 1) % kSubBuckets);
  return (kSubBuckets + sub) << (exp - kSubBits);
}

uint64_t LatencyHistogram::BucketUpper(int bucket) {
  if (bucket <= 0) return uint64_t{1} << kMinExp;
  if (bucket >= kBuckets - 1) return ~uint64_t{0};
  const int exp = kMinExp + (bucket - 1) / kSubBuckets;
  return BucketLower(bucket) + (uint64_t{1} << (exp - kSubBits));
}

void LatencyHistogram::Record(uint64_t v) {
  counts_[BucketOf(v)] += 1;
  ++count_;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::Clear() { *this = LatencyHistogram(); }

uint64_t LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * count_)));
  if (rank >= count_) return max_;  // the extremes are known exactly
  if (rank == 1) return min_;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const uint64_t lo = BucketLower(i);
      const uint64_t hi = BucketUpper(i);
      const uint64_t mid = i == kBuckets - 1 ? max_ : lo + (hi - lo) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace hoptrace
