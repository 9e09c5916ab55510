// When to retry an OTLP export and how long to wait first (OTLP specification, "Failures" and
// "Throttling" for both transports; exponential back-off with full jitter). Pure logic: the
// clock and the random source are injectable, so every decision is testable exactly.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "exporters/otlp/otlp_options.h"

namespace hoptrace {

enum class AttemptOutcome { kSuccess, kRetryable, kNonRetryable };

// What one attempt (one RPC, one POST) came to.
struct AttemptResult {
  AttemptOutcome outcome = AttemptOutcome::kSuccess;
  // The attempt ran into its own deadline (client side). Classifies lost spans as "timeout".
  bool timed_out = false;
  // Minimum wait the server asked for: HTTP Retry-After or gRPC RetryInfo.retry_delay.
  std::optional<std::chrono::nanoseconds> server_delay;
  // On success: ExportTracePartialSuccess, if the server set it.
  int64_t rejected_spans = 0;
  std::string partial_success_message;
  // On failure: one line for the log ("grpc UNAVAILABLE: connection refused").
  std::string error;
};

// OTLP/gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS
// are retryable. "The client SHOULD interpret RESOURCE_EXHAUSTED code as retryable only if the
// server signals that the recovery from resource exhaustion is possible. This is signaled by
// the server by returning a status containing RetryInfo." Everything else is not.
bool IsRetryableGrpcCode(int grpc_code, bool has_retry_info);

// OTLP/HTTP: 429, 502, 503 and 504 are retryable; "All other 4xx or 5xx response status codes
// MUST NOT be retried."
bool IsRetryableHttpStatus(long http_status);

// Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date, relative to `now`. A date in
// the past means 0. nullopt when the value is neither.
std::optional<std::chrono::nanoseconds> ParseRetryAfter(std::string_view value,
                                                        std::chrono::system_clock::time_point now);

class RetryPolicy {
 public:
  // Returns a number uniformly distributed in [0, 1).
  using Uniform01 = std::function<double()>;

  // `rng` empty = a std::mt19937_64 seeded from std::random_device.
  explicit RetryPolicy(OtlpRetryOptions options, Uniform01 rng = {});
  // The default generator refers to this object's engine.
  RetryPolicy(const RetryPolicy&) = delete;
  RetryPolicy& operator=(const RetryPolicy&) = delete;

  int max_attempts() const { return options_.max_attempts; }

  // Upper bound of the jitter window after `failed_attempts` (>= 1) consecutive failures:
  // min(max_backoff, initial_backoff * multiplier^(failed_attempts - 1)).
  std::chrono::nanoseconds BackoffCap(int failed_attempts) const;

  // Wait before the next attempt: "full jitter", a uniform draw in [0, BackoffCap), so
  // exporters that failed together do not retry together; never below what the server asked
  // for (`server_delay`), which the spec says the client SHOULD honour.
  std::chrono::nanoseconds NextDelay(int failed_attempts,
                                     std::optional<std::chrono::nanoseconds> server_delay);

 private:
  OtlpRetryOptions options_;
  Uniform01 rng_;
  std::mt19937_64 engine_;
};

// Time as an export's retry loop sees it. Tests substitute a fake one that advances on Sleep.
class RetryClock {
 public:
  virtual ~RetryClock() = default;
  virtual std::chrono::steady_clock::time_point Now() = 0;
  virtual void SleepFor(std::chrono::nanoseconds d) = 0;
  // The real steady clock and std::this_thread::sleep_for.
  static RetryClock& Real();
};

}  // namespace hoptrace
