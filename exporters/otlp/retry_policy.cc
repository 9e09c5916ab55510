#include "exporters/otlp/retry_policy.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <thread>

namespace hoptrace {
namespace {

// grpc::StatusCode values (fixed by the gRPC protocol); no grpc++ header needed here.
enum GrpcCode : int {
  kCancelled = 1,
  kDeadlineExceeded = 4,
  kResourceExhausted = 8,
  kAborted = 10,
  kOutOfRange = 11,
  kUnavailable = 14,
  kDataLoss = 15,
};

class RealClock final : public RetryClock {
 public:
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }
  void SleepFor(std::chrono::nanoseconds d) override {
    if (d.count() > 0) std::this_thread::sleep_for(d);
  }
};

std::string_view Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace

bool IsRetryableGrpcCode(int grpc_code, bool has_retry_info) {
  switch (grpc_code) {
    case kCancelled:
    case kDeadlineExceeded:
    case kAborted:
    case kOutOfRange:
    case kUnavailable:
    case kDataLoss:
      return true;
    case kResourceExhausted:
      return has_retry_info;
    default:
      return false;
  }
}

bool IsRetryableHttpStatus(long http_status) {
  return http_status == 429 || http_status == 502 || http_status == 503 || http_status == 504;
}

std::optional<std::chrono::nanoseconds> ParseRetryAfter(std::string_view value,
                                                        std::chrono::system_clock::time_point now) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  // "delay-seconds = 1*DIGIT"
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t seconds = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec != std::errc() || end != value.data() + value.size()) {
      seconds = UINT32_MAX;  // too many digits: "a long time"; the export deadline bounds it
    }
    seconds = std::min<uint64_t>(seconds, 86400);
    return std::chrono::seconds(seconds);
  }
  // HTTP-date: IMF-fixdate, or the obsolete RFC 850 / asctime forms recipients MUST accept.
  // libcurl's parser handles all three.
  const std::string date(value);
  const time_t when = curl_getdate(date.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  const auto delta = std::chrono::system_clock::from_time_t(when) - now;
  if (delta.count() <= 0) return std::chrono::nanoseconds(0);
  return std::min<std::chrono::nanoseconds>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(delta), std::chrono::hours(24));
}

RetryPolicy::RetryPolicy(OtlpRetryOptions options, Uniform01 rng)
    : options_(options), rng_(std::move(rng)) {
  if (!rng_) {
    engine_.seed(std::random_device{}());
    rng_ = [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_); };
  }
}

std::chrono::nanoseconds RetryPolicy::BackoffCap(int failed_attempts) const {
  using std::chrono::nanoseconds;
  const double initial = static_cast<double>(nanoseconds(options_.initial_backoff).count());
  const double max = static_cast<double>(nanoseconds(options_.max_backoff).count());
  const int exponent = std::max(0, failed_attempts - 1);
  // pow() of a large exponent is inf, which min() turns into max: no overflow.
  const double cap = std::min(max, initial * std::pow(options_.multiplier, exponent));
  return nanoseconds(static_cast<int64_t>(cap));
}

std::chrono::nanoseconds RetryPolicy::NextDelay(
    int failed_attempts, std::optional<std::chrono::nanoseconds> server_delay) {
  const auto cap = BackoffCap(failed_attempts);
  double u = rng_();
  u = std::clamp(u, 0.0, 1.0);
  auto delay = std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(cap.count()) * u));
  if (server_delay && *server_delay > delay) delay = *server_delay;
  return delay;
}

RetryClock& RetryClock::Real() {
  static RealClock clock;
  return clock;
}

}  // namespace hoptrace
