#include "agent/export/span_pipeline.h"

#include <stdexcept>
#include <string>

namespace hoptrace {

SpanOutput SpanOutput::Shared(std::unique_ptr<SpanSink> sink) {
  SpanOutput o;
  o.sinks.push_back(std::move(sink));
  return o;
}

namespace {

std::vector<SpanOutput> AllShared(std::vector<std::unique_ptr<SpanSink>> sinks) {
  std::vector<SpanOutput> outputs;
  for (auto& s : sinks) outputs.push_back(SpanOutput::Shared(std::move(s)));
  return outputs;
}

}  // namespace

SpanPipeline::SpanPipeline(std::vector<std::unique_ptr<SpanSink>> sinks,
                           SpanPipelineOptions options)
    : SpanPipeline(AllShared(std::move(sinks)), options) {}

SpanPipeline::SpanPipeline(std::vector<SpanOutput> outputs, SpanPipelineOptions options)
    : outputs_(std::move(outputs)), options_(options) {
  if (options_.consumers == 0) options_.consumers = 1;
  for (const auto& o : outputs_) {
    if (o.sinks.size() != 1 && o.sinks.size() != options_.consumers) {
      throw std::invalid_argument("a span output needs one sink or one per consumer (" +
                                  std::to_string(options_.consumers) + "), got " +
                                  std::to_string(o.sinks.size()));
    }
  }
  for (size_t w = 0; w < options_.consumers; ++w) {
    workers_.emplace_back([this, w] { Run(w); });
  }
}

SpanPipeline::~SpanPipeline() { Shutdown(); }

bool SpanPipeline::Submit(Span&& span) {
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
    if (queue_.size() < options_.max_batch) return true;  // a worker's timer will come
  }
  cv_.notify_one();
  return true;
}

template <typename F>
void SpanPipeline::ForEachSink(size_t worker, F&& f) {
  for (auto& o : outputs_) {
    if (o.sinks.size() == 1) {
      std::lock_guard<std::mutex> lock(*o.shared_mu);
      f(*o.sinks[0]);
    } else {
      f(*o.sinks[worker]);
    }
  }
}

bool SpanPipeline::ExportToAll(size_t worker, const std::vector<Span>& batch) {
  bool ok = true;
  ForEachSink(worker, [&](SpanSink& s) { ok = s.Export(batch) == ExportResult::kSuccess && ok; });
  return ok;
}

void SpanPipeline::Run(size_t worker) {
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
      // What is left waits its own delay, measured from now; another worker may take the
      // next full batch meanwhile.
      oldest_ = std::chrono::steady_clock::now();
      if (queue_.size() >= options_.max_batch) cv_.notify_one();
      lock.unlock();
      const bool ok = ExportToAll(worker, batch);
      lock.lock();
      if (ok) {
        stats_.exported += batch.size();
      } else {
        stats_.export_failures += batch.size();
      }
    }
    const bool stop = stopping_;
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    ForEachSink(worker, [&](SpanSink& s) {
      if (stop) {
        s.Flush();
      } else {
        s.Tick(now);
      }
    });
    lock.lock();
    if (stop) {
      ++done_;
      cv_.notify_all();
      return;
    }
  }
}

void SpanPipeline::Shutdown() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ && done_ == workers_.size()) {
      lock.unlock();
      for (auto& w : workers_) {
        if (w.joinable()) w.join();
      }
      return;
    }
    if (!stopping_) {
      stopping_ = true;
      deadline_ = std::chrono::steady_clock::now() + options_.shutdown_timeout;
    }
    cv_.notify_all();
    // An export under way does not look at the deadline: past it, the sinks are told to give
    // up, so the workers come back to count what is left and flush.
    if (!cv_.wait_until(lock, deadline_, [this] { return done_ == workers_.size(); })) {
      lock.unlock();
      for (auto& o : outputs_) {
        for (auto& s : o.sinks) s->Cancel();
      }
    }
  }
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
}

SpanPipelineStats SpanPipeline::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SpanPipelineStats out = stats_;
  out.queued = queue_.size();
  out.max_queue = options_.max_queue;
  return out;
}

}  // namespace hoptrace
