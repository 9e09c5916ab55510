#include "exporters/otlp/otlp_exporter_base.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace hoptrace {
namespace {

constexpr std::chrono::seconds kLogInterval{10};
constexpr std::chrono::milliseconds kSleepSlice{50};

}  // namespace

bool OtlpExporterBase::LogLimiter::Allow(std::chrono::steady_clock::time_point now) {
  if (logged && now - last < kLogInterval) {
    ++suppressed;
    return false;
  }
  logged = true;
  last = now;
  return true;
}

OtlpExporterBase::OtlpExporterBase(const OtlpExporterOptions& options, std::string_view transport,
                                   OtlpExporterHooks hooks)
    : options_(options),
      transport_(transport),
      scope_version_(options.scope_version.empty() ? HOPTRACE_VERSION : options.scope_version),
      clock_(hooks.clock != nullptr ? hooks.clock : &RetryClock::Real()),
      retry_(options.retry, std::move(hooks.jitter)) {
  if (hooks.counters) counters_ = std::move(hooks.counters);
}

void OtlpExporterBase::Cancel() noexcept {
  cancelled_.store(true, std::memory_order_release);
  CancelAttempt();
}

void OtlpExporterBase::RecordLatency(std::chrono::steady_clock::time_point start) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_->Now() - start);
  const uint64_t v = static_cast<uint64_t>(std::max<int64_t>(0, ns.count()));
  counters_->last_export_latency_ns.store(v, std::memory_order_relaxed);
  OtlpExporterCounters::Add(counters_->total_export_latency_ns, v);
}

ExportResult OtlpExporterBase::Lose(size_t spans, Loss why, const std::string& error) {
  auto& c = *counters_;
  const char* reason = "";
  switch (why) {
    case Loss::kRetriesExhausted:
      OtlpExporterCounters::Add(c.spans_failed_retries_exhausted, spans);
      reason = "retries exhausted";
      break;
    case Loss::kNonRetryable:
      OtlpExporterCounters::Add(c.spans_failed_non_retryable, spans);
      reason = "not retryable";
      break;
    case Loss::kTimeout:
      OtlpExporterCounters::Add(c.spans_failed_timeout, spans);
      reason = "export deadline exceeded";
      break;
  }
  // A non-retryable answer says nothing about whether the collector is up.
  fail_fast_ = why != Loss::kNonRetryable;
  if (failure_log_.Allow(clock_->Now())) {
    spdlog::warn("{}: dropped {} spans ({}): {} [{} similar warnings suppressed]", transport_,
                 spans, reason, error, failure_log_.suppressed);
    failure_log_.suppressed = 0;
  }
  return ExportResult::kFailure;
}

ExportResult OtlpExporterBase::Export(const std::vector<Span>& spans) noexcept {
  if (spans.empty()) return ExportResult::kSuccess;
  const auto start = clock_->Now();
  const auto deadline = start + EffectiveMaxExportTime(options_);
  OtlpExporterCounters::Add(counters_->exports, 1);
  ExportResult result = ExportResult::kFailure;
  try {
    const std::string_view request = encoder_.Encode(spans, options_.scope_name, scope_version_);
    std::string error;
    if (!PrepareBatch(request, &error)) {
      result = Lose(spans.size(), Loss::kNonRetryable, error);
      RecordLatency(start);
      return result;
    }
    const int max_attempts = fail_fast_ ? 1 : retry_.max_attempts();
    for (int attempt = 1;; ++attempt) {
      if (cancelled()) {
        result = Lose(spans.size(), Loss::kTimeout, "cancelled at the shutdown deadline");
        break;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_->Now());
      if (left.count() <= 0) {
        result = Lose(spans.size(), Loss::kTimeout, error.empty() ? "no time left" : error);
        break;
      }
      OtlpExporterCounters::Add(counters_->export_requests, 1);
      AttemptResult r = SendAttempt(std::min(options_.timeout, left));
      if (r.outcome == AttemptOutcome::kSuccess) {
        const uint64_t rejected = std::min<uint64_t>(
            spans.size(), static_cast<uint64_t>(std::max<int64_t>(0, r.rejected_spans)));
        OtlpExporterCounters::Add(counters_->spans_exported, spans.size() - rejected);
        OtlpExporterCounters::Add(counters_->spans_rejected, rejected);
        // "the client MUST NOT retry the request when it receives a partial success response";
        // the spec asks senders to surface the message, e.g. in a log.
        if ((rejected > 0 || !r.partial_success_message.empty()) &&
            partial_log_.Allow(clock_->Now())) {
          spdlog::warn(
              "{}: server rejected {} of {} spans: \"{}\" [{} similar warnings suppressed]",
              transport_, rejected, spans.size(), r.partial_success_message,
              partial_log_.suppressed);
          partial_log_.suppressed = 0;
        }
        fail_fast_ = false;
        result = ExportResult::kSuccess;
        break;
      }
      OtlpExporterCounters::Add(counters_->export_errors, 1);
      error = std::move(r.error);
      if (cancelled()) {  // whatever the transport made of the abort
        result = Lose(spans.size(), Loss::kTimeout, "cancelled at the shutdown deadline");
        break;
      }
      if (r.outcome == AttemptOutcome::kNonRetryable) {
        result = Lose(spans.size(), Loss::kNonRetryable, error);
        break;
      }
      if (attempt >= max_attempts) {
        result =
            Lose(spans.size(), r.timed_out ? Loss::kTimeout : Loss::kRetriesExhausted,
                 error + (attempt > 1 ? " (after " + std::to_string(attempt) + " attempts)" : ""));
        break;
      }
      const auto delay = retry_.NextDelay(attempt, r.server_delay);
      // Sleeping past the deadline would only end in a timeout: give up now, and say so.
      if (clock_->Now() + delay >= deadline) {
        result = Lose(spans.size(), Loss::kTimeout,
                      error + " (next retry would be past the export deadline)");
        break;
      }
      spdlog::debug("{}: attempt {} failed ({}); retrying in {} ms", transport_, attempt, error,
                    std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
      // In slices, so that Cancel() does not wait for a long back-off to end.
      for (auto slept = std::chrono::nanoseconds(0); slept < delay && !cancelled();) {
        const auto step = std::min<std::chrono::nanoseconds>(delay - slept, kSleepSlice);
        clock_->SleepFor(step);
        slept += step;
      }
    }
  } catch (...) {
    // Only std::bad_alloc can get here (encoding, compression, log formatting).
    try {
      result = Lose(spans.size(), Loss::kNonRetryable, "out of memory");
    } catch (...) {
      result = ExportResult::kFailure;
    }
  }
  RecordLatency(start);
  return result;
}

}  // namespace hoptrace
