// A fixed-size log-linear histogram of durations (ns), for percentiles in
// bounded memory: 16 buckets per power of two from 1.024 us to 2^37 ns
// (~137 s), so a bucket is at most 1/16 of its lower bound wide and a
// reported percentile within ~3% of the true one. Below 1.024 us one bucket,
// above 137 s one bucket; both answer with the exact min / max seen.
// 1.7 KiB; merging is adding counts.
#pragma once

#include <array>
#include <cstdint>

namespace hoptrace {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 4;
  static constexpr int kSubBuckets = 1 << kSubBits;
  static constexpr int kMinExp = 10;  // 2^10 ns: first log bucket
  static constexpr int kMaxExp = 37;  // 2^37 ns: overflow from here
  static constexpr int kBuckets = 2 + (kMaxExp - kMinExp) * kSubBuckets;

  void Record(uint64_t value_ns);
  void Merge(const LatencyHistogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  // The q-quantile (0 < q <= 1) by nearest rank: the middle of the bucket
  // holding it, clamped to [min, max]. 0 when empty.
  uint64_t Quantile(double q) const;

  // Bucket of a value and a bucket's bounds [lower, upper): for tests.
  static int BucketOf(uint64_t value_ns);
  static uint64_t BucketLower(int bucket);
  static uint64_t BucketUpper(int bucket);

 private:
  std::array<uint32_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t min_ = ~uint64_t{0};
  uint64_t max_ = 0;
};

}  // namespace hoptrace
