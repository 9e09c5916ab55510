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
    if (stopping_ || queue_.size() >= options_.max_queue) {
      ++stats_.dropped_queue_full;
      return false;
    }
    queue_.push_back(std::move(span));
  }
  cv_.notify_one();
  return true;
}

void SpanPipeline::Run() {
  std::vector<Span> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, options_.tick, [this] { return stopping_ || !queue_.empty(); });
    const bool stop = stopping_;
    while (!queue_.empty()) {
      batch.clear();
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      lock.unlock();
      uint64_t failed = 0;
      for (auto& sink : sinks_) {
        if (sink->Export(batch) != ExportResult::kSuccess) failed = batch.size();
      }
      lock.lock();
      stats_.exported += batch.size() - failed;
      stats_.export_failures += failed;
    }
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
    if (stop) return;
  }
}

void SpanPipeline::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (worker_.joinable()) worker_.join();
}

SpanPipelineStats SpanPipeline::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace hoptrace
