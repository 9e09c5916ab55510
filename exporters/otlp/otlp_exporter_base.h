// What the gRPC and HTTP exporters share: encoding, the retry loop within one export's time
// budget, counters, and rate-limited warnings. A transport only says how to send one request.
//
// Time bound of Export(): every attempt gets min(timeout, time left), and no back-off is started
// that would end past `max_export_time` (2 * timeout by default) after Export() began. After a
// batch is lost to a retryable failure (collector down, overloaded), later batches get a single
// attempt until one succeeds: retrying each of them for the full budget would stall the
// pipeline (and shutdown) for minutes while losing the same spans anyway.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/otlp/otlp_exporter_stats.h"
#include "exporters/otlp/otlp_options.h"
#include "exporters/otlp/otlp_wire_encoder.h"
#include "exporters/otlp/retry_policy.h"
#include "exporters/span_sink.h"

namespace hoptrace {

// Test seams for the retry loop. Defaults are the real clock and a random jitter.
struct OtlpExporterHooks {
  RetryClock* clock = nullptr;  // not owned; must outlive the exporter
  RetryPolicy::Uniform01 jitter;
  // Counters shared by several exporters working side by side (one per pipeline consumer);
  // null: the exporter's own.
  std::shared_ptr<OtlpExporterCounters> counters;
};

class OtlpExporterBase : public SpanSink {
 public:
  ~OtlpExporterBase() override = default;

  // Encodes, sends with retries, counts. kFailure when the batch was lost; a partial success
  // is kSuccess (the server has decided, a retry must not happen) with spans_rejected counted.
  ExportResult Export(const std::vector<Span>& spans) noexcept final;
  // Ends the attempt under way (CancelAttempt), stops a back-off sleep, and makes every later
  // Export() lose its batch at once (counted as a timeout). Safe from any thread.
  void Cancel() noexcept final;

  // A snapshot; safe from any thread.
  OtlpExporterStats stats() const { return counters_->Snapshot(); }
  // The live counters, shared so a metrics endpoint can keep reading them after the pipeline
  // that owns the exporter is gone.
  std::shared_ptr<const OtlpExporterCounters> counters() const { return counters_; }

 protected:
  // `transport` names the exporter in logs ("otlp-grpc").
  OtlpExporterBase(const OtlpExporterOptions& options, std::string_view transport,
                   OtlpExporterHooks hooks);

  // Called once per batch before the first attempt with the encoded ExportTraceServiceRequest,
  // which stays valid until Export() returns (the HTTP exporter compresses here). Returns
  // false with `error` set when the batch cannot be sent at all.
  virtual bool PrepareBatch(std::string_view request, std::string* error) = 0;
  // One request with the given deadline. Must not throw.
  virtual AttemptResult SendAttempt(std::chrono::milliseconds timeout) noexcept = 0;
  // Called from another thread: make the SendAttempt() under way, if any, return soon.
  virtual void CancelAttempt() noexcept = 0;
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  const OtlpExporterOptions& options() const { return options_; }

 private:
  enum class Loss { kRetriesExhausted, kNonRetryable, kTimeout };
  ExportResult Lose(size_t spans, Loss why, const std::string& error);
  void RecordLatency(std::chrono::steady_clock::time_point start);

  OtlpExporterOptions options_;
  std::string transport_;
  std::string scope_version_;
  RetryClock* clock_;
  RetryPolicy retry_;
  std::shared_ptr<OtlpExporterCounters> counters_ = std::make_shared<OtlpExporterCounters>();
  bool fail_fast_ = false;  // the last batch was lost to a retryable failure
  std::atomic<bool> cancelled_{false};
  OtlpWireEncoder encoder_;  // its buffer is reused by every batch

  // At most one warning per kind every kLogInterval; the rest are counted in the next one.
  struct LogLimiter {
    bool Allow(std::chrono::steady_clock::time_point now);
    std::chrono::steady_clock::time_point last{};
    bool logged = false;
    uint64_t suppressed = 0;
  };
  LogLimiter failure_log_;
  LogLimiter partial_log_;
};

}  // namespace hoptrace
