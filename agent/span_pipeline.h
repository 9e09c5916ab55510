// Hands spans from the capture thread to the sinks without ever blocking
// capture: a bounded queue (full -> the span is dropped and counted) and
// one worker thread that exports in batches and ticks the sinks, like the
// OpenTelemetry batch span processor (OTEL_BSP_*): a batch leaves when it
// is full or when its oldest span has waited schedule_delay.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/span.h"
#include "exporters/span_sink.h"

namespace hoptrace {

struct SpanPipelineOptions {
  size_t max_queue = 2048;                      // OTEL_BSP_MAX_QUEUE_SIZE
  size_t max_batch = 512;                       // OTEL_BSP_MAX_EXPORT_BATCH_SIZE
  // OTEL_BSP_SCHEDULE_DELAY. The SDK default is 5 s; an agent whose spans
  // people watch arrive (console, collector) keeps it short.
  std::chrono::milliseconds schedule_delay{200};
  std::chrono::milliseconds shutdown_timeout{10000};
  std::chrono::milliseconds tick{100};
};

struct SpanPipelineStats {
  uint64_t submitted = 0;
  uint64_t dropped_queue_full = 0;
  uint64_t exported = 0;
  uint64_t export_failures = 0;  // spans in batches a sink refused
  uint64_t dropped_shutdown = 0;  // still queued when the shutdown deadline passed
};

class SpanPipeline {
 public:
  SpanPipeline(std::vector<std::unique_ptr<SpanSink>> sinks, SpanPipelineOptions options = {});
  ~SpanPipeline();  // Shutdown()
  SpanPipeline(const SpanPipeline&) = delete;
  SpanPipeline& operator=(const SpanPipeline&) = delete;

  // Never blocks on the sinks. Returns false if the span was dropped.
  bool Submit(Span span);
  // Exports everything queued, flushes the sinks and stops the worker, within
  // shutdown_timeout: what is still queued then is dropped and counted, and an export
  // under way is cancelled (SpanSink::Cancel).
  void Shutdown();
  SpanPipelineStats stats() const;

 private:
  void Run();

  std::vector<std::unique_ptr<SpanSink>> sinks_;
  SpanPipelineOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Span> queue_;
  std::chrono::steady_clock::time_point oldest_;  // when the queue last became non-empty
  bool stopping_ = false;
  bool done_ = false;                                // the worker has returned
  std::chrono::steady_clock::time_point deadline_;  // set with stopping_
  SpanPipelineStats stats_;
  std::thread worker_;
};

}  // namespace hoptrace
