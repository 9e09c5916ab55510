// The one interface every span exporter implements.
#pragma once

#include <chrono>
#include <vector>

#include "agent/trace/span.h"

namespace hoptrace {

enum class ExportResult { kSuccess, kFailure };

class SpanSink {
 public:
  virtual ~SpanSink() = default;
  // Called from one pipeline thread only. Must not throw or block for long.
  virtual ExportResult Export(const std::vector<Span>& spans) noexcept = 0;
  // Called from the same thread about every 100 ms, for time-based output
  // (e.g. printing a trace once it has been quiet).
  virtual void Tick(std::chrono::steady_clock::time_point /*now*/) noexcept {}
  // Emit everything held back; called at shutdown.
  virtual void Flush() noexcept {}
  // Called from another thread when the pipeline's shutdown deadline has passed: end the export
  // under way as soon as possible and fail any later one at once (its spans are counted as lost).
  // Sinks that never block for long need not override it.
  virtual void Cancel() noexcept {}
};

}  // namespace hoptrace
