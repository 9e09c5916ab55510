// Hands spans from the capture thread to the outputs without ever blocking
// capture: a bounded queue (full -> the span is dropped and counted) and
// `consumers` worker threads that export in batches and tick the sinks, like
// the OpenTelemetry batch span processor (OTEL_BSP_*) with the Collector's
// queue consumers: a batch leaves when it is full or when its oldest span has
// waited schedule_delay, and up to `consumers` batches are in flight at once.
//
// Every batch reaches every output. An output is either one sink shared by
// all workers (its calls serialized by a mutex: console, files) or one sink
// per worker (OTLP: each worker its own exporter, so exports overlap).
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

#include "agent/trace/attribute_pool.h"
#include "agent/trace/span.h"
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
  size_t consumers = 1;  // worker threads, i.e. batches in flight at most
  // Exported spans' attribute vectors go back here (to the span builder); null: freed.
  AttributePool* attribute_pool = nullptr;
};

struct SpanPipelineStats {
  uint64_t submitted = 0;
  uint64_t dropped_queue_full = 0;
  uint64_t exported = 0;
  uint64_t export_failures = 0;  // spans in batches a sink refused
  uint64_t dropped_shutdown = 0;  // still queued when the shutdown deadline passed
  size_t queued = 0;              // spans waiting now (at most max_queue)
  size_t max_queue = 0;
  size_t workers_waiting = 0;  // workers idle now, waiting for a batch
};

// One destination of spans: a single sink shared by every worker, or exactly one sink per
// worker (SpanPipelineOptions::consumers of them).
struct SpanOutput {
  std::vector<std::unique_ptr<SpanSink>> sinks;
  std::unique_ptr<std::mutex> shared_mu = std::make_unique<std::mutex>();
  static SpanOutput Shared(std::unique_ptr<SpanSink> sink);
};

class SpanPipeline {
 public:
  // Throws std::invalid_argument when an output has neither one sink nor one per consumer.
  SpanPipeline(std::vector<SpanOutput> outputs, SpanPipelineOptions options = {});
  // Each sink shared by all workers.
  SpanPipeline(std::vector<std::unique_ptr<SpanSink>> sinks, SpanPipelineOptions options = {});
  ~SpanPipeline();  // Shutdown()
  SpanPipeline(const SpanPipeline&) = delete;
  SpanPipeline& operator=(const SpanPipeline&) = delete;

  // Never blocks on the sinks. Returns false if the span was dropped.
  bool Submit(Span&& span);
  // Exports everything queued, flushes the sinks and stops the workers, within
  // shutdown_timeout: what is still queued then is dropped and counted, and the exports
  // under way are cancelled (SpanSink::Cancel).
  void Shutdown();
  SpanPipelineStats stats() const;

 private:
  void Run(size_t worker);
  // The next batch to export, into *batch (empty on entry); mu_ held, something queued.
  void TakeBatch(std::vector<Span>* batch);
  // Sends one batch to every output; returns whether every output took it.
  bool ExportToAll(size_t worker, const std::vector<Span>& batch);
  template <typename F>
  void ForEachSink(size_t worker, F&& f);

  // Wakes the idle worker that waited least (mu_ held): its thread and its
  // exporter's buffers are the warm ones. Returns its condition variable to
  // notify once mu_ is released, or null when every worker is busy (each
  // looks for more work before it waits again).
  std::condition_variable* PickIdleWorker();

  std::vector<SpanOutput> outputs_;
  SpanPipelineOptions options_;
  mutable std::mutex mu_;
  // One per worker: a batch wakes one chosen worker, not whichever the
  // condition variable picks (glibc: the longest waiting, which turns a
  // steady stream into a round robin over every worker and its exporter,
  // each cold; the OTLP gRPC exporters' identical channels share one
  // connection anyway, gRPC's global subchannel pool).
  std::vector<std::unique_ptr<std::condition_variable>> wake_;
  std::vector<size_t> idle_;          // workers waiting, the latest last
  std::condition_variable done_cv_;   // a worker returned (Shutdown waits)
  // The queue is batches, not spans: the batch Submit() fills, and full ones
  // waiting for a worker. A worker takes a whole batch (a swap); the emptied
  // vectors come back as spares, their room kept. (A deque of spans cost a
  // node allocation per few spans and a move of each span into the batch.)
  std::vector<Span> filling_;
  std::deque<std::vector<Span>> full_;
  std::vector<std::vector<Span>> spare_;  // at most consumers + 1
  size_t queued_ = 0;                     // spans in filling_ and full_
  std::chrono::steady_clock::time_point oldest_;  // filling_'s first span
  bool stopping_ = false;
  size_t done_ = 0;                                  // workers that have returned
  std::chrono::steady_clock::time_point deadline_;  // set with stopping_
  SpanPipelineStats stats_;
  std::vector<std::thread> workers_;
};

}  // namespace hoptrace
