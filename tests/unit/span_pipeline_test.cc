#include "agent/export/span_pipeline.h"
#include "agent/trace/attribute_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

namespace hoptrace {
namespace {

using namespace std::chrono_literals;

// A sink that records batch sizes and can be made slow.
class RecordingSink : public SpanSink {
 public:
  explicit RecordingSink(std::chrono::milliseconds delay = 0ms) : delay_(delay) {}
  ExportResult Export(const std::vector<Span>& spans) noexcept override {
    std::this_thread::sleep_for(delay_);
    std::lock_guard<std::mutex> lock(mu_);
    batches_.push_back(spans.size());
    return ExportResult::kSuccess;
  }
  void Flush() noexcept override { flushed_ = true; }
  std::vector<size_t> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  std::atomic<bool> flushed_{false};

 private:
  std::chrono::milliseconds delay_;
  std::mutex mu_;
  std::vector<size_t> batches_;
};

// The sinks a pipeline takes: this one alone; *out keeps a view of it.
template <typename S>
std::vector<std::unique_ptr<SpanSink>> Holding(std::unique_ptr<S> sink, S** out) {
  *out = sink.get();
  std::vector<std::unique_ptr<SpanSink>> v;
  v.push_back(std::move(sink));
  return v;
}

std::vector<std::unique_ptr<SpanSink>> One(RecordingSink** out,
                                           std::chrono::milliseconds delay = 0ms) {
  return Holding(std::make_unique<RecordingSink>(delay), out);
}

TEST(SpanPipelineTest, FullBatchLeavesAtOnceAndRestWaitsForTheDelay) {
  RecordingSink* sink;
  SpanPipelineOptions o;
  o.max_batch = 10;
  o.schedule_delay = 400ms;
  SpanPipeline p(One(&sink), o);
  for (int i = 0; i < 13; ++i) p.Submit(Span{});
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(sink->batches(), std::vector<size_t>({10}));
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(sink->batches(), std::vector<size_t>({10, 3}));
  EXPECT_EQ(p.stats().exported, 13u);
}

TEST(SpanPipelineTest, FullQueueDropsAndCountsWithoutBlocking) {
  RecordingSink* sink;
  SpanPipelineOptions o;
  o.max_queue = 5;
  o.max_batch = 100;
  o.schedule_delay = 10s;
  SpanPipeline p(One(&sink), o);
  int accepted = 0;
  for (int i = 0; i < 8; ++i) accepted += p.Submit(Span{});
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(p.stats().dropped_queue_full, 3u);
  p.Shutdown();
  EXPECT_EQ(sink->batches(), std::vector<size_t>({5}));
  EXPECT_TRUE(sink->flushed_);
}

TEST(SpanPipelineTest, ShutdownGivesUpAtItsDeadlineAndCountsTheRest) {
  RecordingSink* sink;
  SpanPipelineOptions o;
  o.max_batch = 1;
  o.shutdown_timeout = 250ms;
  SpanPipeline p(One(&sink, 100ms), o);
  for (int i = 0; i < 20; ++i) p.Submit(Span{});
  const auto start = std::chrono::steady_clock::now();
  p.Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  const auto st = p.stats();
  EXPECT_GT(st.dropped_shutdown, 0u);
  EXPECT_EQ(st.exported + st.dropped_shutdown, 20u);
  EXPECT_FALSE(p.Submit(Span{}));
}

// A sink whose export hangs until it is cancelled (a collector that accepts and never answers).
class HangingSink : public SpanSink {
 public:
  ExportResult Export(const std::vector<Span>&) noexcept override {
    std::unique_lock<std::mutex> lock(mu_);
    ++exports_;
    cv_.wait_for(lock, 30s, [this] { return cancelled_; });
    return cancelled_ ? ExportResult::kFailure : ExportResult::kSuccess;
  }
  void Cancel() noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  int exports() {
    std::lock_guard<std::mutex> lock(mu_);
    return exports_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  int exports_ = 0;
};

TEST(SpanPipelineTest, ShutdownCancelsAnExportUnderWayAtItsDeadline) {
  HangingSink* sink;
  SpanPipelineOptions o;
  o.max_batch = 2;
  o.shutdown_timeout = 200ms;
  SpanPipeline p(Holding(std::make_unique<HangingSink>(), &sink), o);
  for (int i = 0; i < 6; ++i) p.Submit(Span{});
  // The first batch is in the sink's hands before shutdown starts.
  for (int i = 0; i < 500 && sink->exports() == 0; ++i) std::this_thread::sleep_for(2ms);
  ASSERT_EQ(sink->exports(), 1);
  const auto start = std::chrono::steady_clock::now();
  p.Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // not the sink's 30 s
  const auto st = p.stats();
  EXPECT_EQ(st.exported, 0u);
  EXPECT_EQ(st.export_failures + st.dropped_shutdown, 6u);
  EXPECT_EQ(st.export_failures, 2u);  // the cancelled batch; the rest never left
}

// Counts exports in flight at once; each export waits (up to 5 s) until `want` are in flight,
// so the maximum seen is exactly how many the pipeline lets overlap.
struct Overlap {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  int max_seen = 0;
  int want = 0;
  size_t spans = 0;
};

class OverlapSink : public SpanSink {
 public:
  explicit OverlapSink(Overlap* o) : o_(o) {}
  ExportResult Export(const std::vector<Span>& spans) noexcept override {
    std::unique_lock<std::mutex> lock(o_->mu);
    o_->spans += spans.size();
    o_->max_seen = std::max(o_->max_seen, ++o_->in_flight);
    if (o_->in_flight >= o_->want) o_->want = 0;  // seen once: let every export go
    o_->cv.notify_all();
    o_->cv.wait_for(lock, 5s, [this] { return o_->in_flight >= o_->want; });
    --o_->in_flight;
    return ExportResult::kSuccess;
  }

 private:
  Overlap* o_;
};

TEST(SpanPipelineTest, ConsumersExportSeveralBatchesAtOnceAndEveryBatchReachesEveryOutput) {
  Overlap overlap;
  overlap.want = 4;
  SpanOutput per_worker;
  for (int i = 0; i < 4; ++i) per_worker.sinks.push_back(std::make_unique<OverlapSink>(&overlap));
  auto recording = std::make_unique<RecordingSink>();
  RecordingSink* shared = recording.get();
  std::vector<SpanOutput> outputs;
  outputs.push_back(std::move(per_worker));
  outputs.push_back(SpanOutput::Shared(std::move(recording)));
  SpanPipelineOptions o;
  o.max_batch = 10;
  o.max_queue = 1000;
  o.consumers = 4;
  SpanPipeline p(std::move(outputs), o);
  for (int i = 0; i < 80; ++i) p.Submit(Span{});
  p.Shutdown();
  EXPECT_EQ(overlap.max_seen, 4);
  EXPECT_EQ(overlap.spans, 80u);
  size_t shared_spans = 0;
  for (size_t b : shared->batches()) shared_spans += b;
  EXPECT_EQ(shared_spans, 80u);
  EXPECT_EQ(p.stats().exported, 80u);
}

// Waits up to 5 s for pred(stats); returns whether it came.
template <typename P>
bool AwaitStats(const SpanPipeline& p, P pred) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!pred(p.stats())) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(SpanPipelineTest, BatchesOneWorkerKeepsUpWithStayOnThatWorker) {
  // Four workers, each with its own sink (as each has its own OTLP exporter); batches that
  // come one at a time, each after the last was exported, all go to the worker that exported
  // last, whose thread and exporter are warm (not round robin over every worker).
  SpanOutput per_worker;
  std::vector<RecordingSink*> sinks;
  for (int i = 0; i < 4; ++i) {
    per_worker.sinks.push_back(std::make_unique<RecordingSink>());
    sinks.push_back(static_cast<RecordingSink*>(per_worker.sinks.back().get()));
  }
  std::vector<SpanOutput> outputs;
  outputs.push_back(std::move(per_worker));
  SpanPipelineOptions o;
  o.max_batch = 10;
  o.consumers = 4;
  SpanPipeline p(std::move(outputs), o);
  constexpr uint64_t kBatches = 20;
  for (uint64_t b = 0; b < kBatches; ++b) {
    ASSERT_TRUE(AwaitStats(p, [](const SpanPipelineStats& s) { return s.workers_waiting == 4; }));
    for (int i = 0; i < 10; ++i) p.Submit(Span{});
    ASSERT_TRUE(AwaitStats(p, [b](const SpanPipelineStats& s) { return s.exported == 10 * (b + 1); }));
  }
  p.Shutdown();
  std::vector<size_t> per_sink;
  for (RecordingSink* s : sinks) per_sink.push_back(s->batches().size());
  std::sort(per_sink.begin(), per_sink.end());
  EXPECT_EQ(per_sink, (std::vector<size_t>{0, 0, 0, kBatches}));
}

TEST(SpanPipelineTest, AnOutputNeedsOneSinkOrOnePerConsumer) {
  SpanOutput two;
  two.sinks.push_back(std::make_unique<RecordingSink>());
  two.sinks.push_back(std::make_unique<RecordingSink>());
  std::vector<SpanOutput> outputs;
  outputs.push_back(std::move(two));
  SpanPipelineOptions o;
  o.consumers = 3;
  EXPECT_THROW(SpanPipeline(std::move(outputs), o), std::invalid_argument);
}

TEST(SpanPipelineTest, FullQueueCountsEveryDropExactly) {
  RecordingSink* sink;
  SpanPipelineOptions o;
  o.max_queue = 100;
  o.max_batch = 101;             // never full: nothing leaves before shutdown...
  o.schedule_delay = std::chrono::hours(1);  // ...nor by time
  o.consumers = 2;
  SpanPipeline p(One(&sink), o);
  size_t accepted = 0;
  for (int i = 0; i < 1000; ++i) accepted += p.Submit(Span{});
  EXPECT_EQ(accepted, 100u);
  p.Shutdown();
  const auto st = p.stats();
  EXPECT_EQ(st.submitted, 1000u);
  EXPECT_EQ(st.dropped_queue_full, 900u);
  EXPECT_EQ(st.exported, 100u);
  EXPECT_EQ(st.dropped_shutdown, 0u);
}

// A span whose attributes have room for `room` and hold a string and an int.
Span SpanWithAttributes(size_t room, int64_t n) {
  Span s;
  s.attributes.reserve(room);
  s.attributes.emplace_back(AttrKey("url.path"), std::string("/a/path/longer/than/sso/") +
                                                     std::to_string(n));
  s.attributes.emplace_back(AttrKey("http.response.status_code"), n);
  return s;
}

TEST(AttributePoolTest, GivenVectorsComeBackEmptyWithTheirRoom) {
  AttributePool pool(/*max_kept=*/4, /*min_room=*/8);
  EXPECT_EQ(pool.Take().capacity(), 0u);  // nothing given yet
  std::vector<Span> spans;
  std::vector<const Attribute*> rooms;
  spans.push_back(SpanWithAttributes(2, 0));  // too little room: not kept
  for (int i = 1; i <= 5; ++i) {
    spans.push_back(SpanWithAttributes(10, i));
    if (i <= 4) rooms.push_back(spans.back().attributes.data());
  }
  pool.Give(spans);
  for (const Span& s : spans) EXPECT_TRUE(s.attributes.empty());
  EXPECT_EQ(pool.kept(), 4u);  // max_kept: the fifth was left to be freed
  for (int i = 0; i < 4; ++i) {
    Attributes a = pool.Take();
    EXPECT_TRUE(a.empty());
    EXPECT_GE(a.capacity(), 10u);
    // The very room a span had: nothing was allocated again.
    EXPECT_NE(std::find(rooms.begin(), rooms.end(), a.data()), rooms.end());
  }
  EXPECT_EQ(pool.Take().capacity(), 0u);
  EXPECT_EQ(pool.kept(), 0u);
}

// A sink that keeps a copy of every span it is given.
class CopyingSink : public SpanSink {
 public:
  ExportResult Export(const std::vector<Span>& spans) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.insert(seen_.end(), spans.begin(), spans.end());
    return ExportResult::kSuccess;
  }
  std::vector<Span> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::vector<Span> seen_;
};

TEST(SpanPipelineTest, ExportedSpansGiveTheirAttributeVectorsBackAfterEverySinkHadThem) {
  AttributePool pool(/*max_kept=*/100, /*min_room=*/16);
  CopyingSink* copy;
  SpanPipelineOptions o;
  o.max_batch = 4;
  o.attribute_pool = &pool;
  SpanPipeline p(Holding(std::make_unique<CopyingSink>(), &copy), o);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(p.Submit(SpanWithAttributes(16, i)));
  p.Shutdown();
  // The sink saw every attribute: the vectors were emptied only after the export.
  const std::vector<Span> seen = copy->seen();
  ASSERT_EQ(seen.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(seen[i].attributes.size(), 2u);
    EXPECT_EQ(std::get<int64_t>(seen[i].attributes[1].value), i);
    EXPECT_EQ(std::get<std::string>(seen[i].attributes[0].value),
              "/a/path/longer/than/sso/" + std::to_string(i));
  }
  EXPECT_EQ(pool.kept(), 10u);
  Attributes a = pool.Take();
  EXPECT_TRUE(a.empty());
  EXPECT_GE(a.capacity(), 16u);
}

}  // namespace
}  // namespace hoptrace
