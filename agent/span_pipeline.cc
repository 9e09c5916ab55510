#include "agent/span_pipeline.h"

namespace hoptrace {

SpanPipeline::SpanPipeline(std::vector<std::unique_ptr<SpanSink>> sinks,
                           SpanPipelineOptions options)
    : sinks_(std::move(sinks)), options_(options) {
  worker_ = std::thread([this] { Run(); });
}

SpanPipeline::~SpanPipeline() { Shutdown(); }

bool SpanPipeline::Submit(Span span) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.submitted;
    if (stopping_) {
      ++stats_.dropped_shutdown;
      return false;
    }
    if (queue_.size() >= options_.max_queue) {
      ++stats_.dropped_queue_full;
      return false;
    }
    if (queue_.empty()) oldest_ = std::chrono::steady_clock::now();
    queue_.push_back(std::move(span));
    if (queue_.size() < options_.max_batch) return true;  // the worker's timer will come
  }
  cv_.notify_one();
  return true;
}

void SpanPipeline::Run() {
  std::vector<Span> batch;
  std::unique_lock<std::mutex> lock(mu_);
  auto due = [this] {
    return stopping_ || queue_.size() >= options_.max_batch ||
           (!queue_.empty() &&
            std::chrono::steady_clock::now() - oldest_ >= options_.schedule_delay);
  };
  while (true) {
    cv_.wait_for(lock, options_.tick, due);
    while (due() && !queue_.empty()) {
      // Checked before every batch: Shutdown() may have come while the last one was exported.
      if (stopping_ && std::chrono::steady_clock::now() >= deadline_) {
        stats_.dropped_shutdown += queue_.size();
        queue_.clear();
        break;
      }
      batch.clear();
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      // What is left waits its own delay, measured from now.
      oldest_ = std::chrono::steady_clock::now();
      lock.unlock();
      uint64_t failed = 0;
      for (auto& sink : sinks_) {
        if (sink->Export(batch) != ExportResult::kSuccess) failed = batch.size();
      }
      lock.lock();
      stats_.exported += batch.size() - failed;
      stats_.export_failures += failed;
    }
    const bool stop = stopping_;
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    for (auto& sink : sinks_) {
      if (stop) {
        sink->Flush();
      } else {
        sink->Tick(now);
      }
    }
    lock.lock();
    if (stop) {
      done_ = true;
      cv_.notify_all();
      return;
    }
  }
}

void SpanPipeline::Shutdown() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ && !worker_.joinable()) return;
    if (!stopping_) {
      stopping_ = true;
      deadline_ = std::chrono::steady_clock::now() + options_.shutdown_timeout;
    }
    cv_.notify_all();
    // An export under way does not look at the deadline: past it, the sinks are told to give
    // up, so the worker comes back to count what is left and flush.
    if (!cv_.wait_until(lock, deadline_, [this] { return done_; })) {
      lock.unlock();
      for (auto& sink : sinks_) sink->Cancel();
    }
  }
  if (worker_.joinable()) worker_.join();
}

SpanPipelineStats SpanPipeline::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace hoptrace
