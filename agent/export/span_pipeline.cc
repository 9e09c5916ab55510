#include "agent/export/span_pipeline.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace hoptrace {

SpanOutput SpanOutput::Shared(std::unique_ptr<SpanSink> sink) {
  SpanOutput o;
  o.sinks.push_back(std::move(sink));
  return o;
}

namespace {

// Room a batch is given at once: a huge OTEL_BSP_MAX_EXPORT_BATCH_SIZE grows
// as spans come instead.
constexpr size_t kMaxReserve = 1024;

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
  // Every worker's condition variable exists before any worker runs: Submit() reads wake_
  // from other threads.
  for (size_t w = 0; w < options_.consumers; ++w) {
    wake_.push_back(std::make_unique<std::condition_variable>());
  }
  idle_.reserve(options_.consumers);
  for (size_t w = 0; w < options_.consumers; ++w) {
    workers_.emplace_back([this, w] { Run(w); });
  }
}

SpanPipeline::~SpanPipeline() { Shutdown(); }

std::condition_variable* SpanPipeline::PickIdleWorker() {
  if (idle_.empty()) return nullptr;
  const size_t w = idle_.back();
  idle_.pop_back();
  return wake_[w].get();
}

bool SpanPipeline::Submit(Span&& span) {
  std::condition_variable* wake = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.submitted;
    if (stopping_) {
      ++stats_.dropped_shutdown;
      return false;
    }
    if (queued_ >= options_.max_queue) {
      ++stats_.dropped_queue_full;
      return false;
    }
    if (filling_.empty()) {
      oldest_ = std::chrono::steady_clock::now();
      if (filling_.capacity() == 0 && !spare_.empty()) {
        filling_ = std::move(spare_.back());
        spare_.pop_back();
      }
      filling_.reserve(std::min(options_.max_batch, kMaxReserve));
    }
    filling_.push_back(std::move(span));
    ++queued_;
    if (filling_.size() < options_.max_batch) return true;  // a worker's timer will come
    full_.push_back(std::move(filling_));
    filling_ = {};
    wake = PickIdleWorker();
  }
  if (wake != nullptr) wake->notify_one();
  return true;
}

void SpanPipeline::TakeBatch(std::vector<Span>* batch) {
  if (!full_.empty()) {
    *batch = std::move(full_.front());
    full_.pop_front();
  } else {
    // The batch being filled, as it is; the next span starts a new one (and its delay).
    batch->swap(filling_);
  }
  queued_ -= batch->size();
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
    return stopping_ || !full_.empty() ||
           (!filling_.empty() &&
            std::chrono::steady_clock::now() - oldest_ >= options_.schedule_delay);
  };
  while (true) {
    // Waits for a batch (woken by PickIdleWorker), the oldest span's delay or the tick, which
    // every worker keeps (the sinks' Tick; a partial batch found due).
    idle_.push_back(worker);
    wake_[worker]->wait_for(lock, options_.tick, due);
    if (auto it = std::find(idle_.begin(), idle_.end(), worker); it != idle_.end()) {
      idle_.erase(it);
    }
    while (due() && queued_ > 0) {
      // Checked before every batch: Shutdown() may have come while the last one was exported.
      if (stopping_ && std::chrono::steady_clock::now() >= deadline_) {
        stats_.dropped_shutdown += queued_;
        queued_ = 0;
        filling_.clear();
        full_.clear();
        break;
      }
      TakeBatch(&batch);
      // Another worker may take the next full batch meanwhile.
      std::condition_variable* other = full_.empty() ? nullptr : PickIdleWorker();
      lock.unlock();
      if (other != nullptr) other->notify_one();
      const bool ok = ExportToAll(worker, batch);
      const size_t n = batch.size();
      if (options_.attribute_pool != nullptr) options_.attribute_pool->Give(batch);
      batch.clear();  // the spans are freed outside the lock
      lock.lock();
      if (ok) {
        stats_.exported += n;
      } else {
        stats_.export_failures += n;
      }
      if (spare_.size() <= options_.consumers) spare_.push_back(std::move(batch));
      batch = {};
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
      done_cv_.notify_all();
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
    for (auto& w : wake_) w->notify_all();
    // An export under way does not look at the deadline: past it, the sinks are told to give
    // up, so the workers come back to count what is left and flush.
    if (!done_cv_.wait_until(lock, deadline_, [this] { return done_ == workers_.size(); })) {
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
  out.queued = queued_;
  out.max_queue = options_.max_queue;
  out.workers_waiting = idle_.size();
  return out;
}

}  // namespace hoptrace
