// TreeExporter: the default human output. Holds the spans of each trace until the trace has been
// quiet for a while (its spans arrive from several processes, out of order), then prints it as a
// tree:
//
//   trace 4bf92f3577b34da6a3ce929d0e0e4736  3 spans  152.3 ms
//   └─ frontend  SERVER GET /api  200  152.3 ms
//      └─ frontend  CLIENT GET http://backend:8080/work  200  101.1 ms  → 10.0.0.2:8080
//         └─ backend  SERVER GET /work  200  100.4 ms
//
// A line is: service.name of the resource, kind, then for HTTP spans the method and target
// (url.path[?url.query] for SERVER, url.full for CLIENT) and http.response.status_code, else the
// span name; the duration; "→ network.peer.address:port" for CLIENT spans; "ERROR" with
// error.type and the status message for ERROR spans. A span whose parent is not among the
// buffered spans of its trace (the parent came from an untraced caller's traceparent, or was
// printed or lost earlier) is printed as a root with "(parent <id> not seen)". Siblings are
// ordered by start time. Control characters from the wire are escaped as \xHH so a request path
// cannot drive the terminal.
//
// Memory is bounded by max_traces and max_spans_per_trace. Reaching either prints a trace early
// (the least recently active one, or the full one) with a note in its header line, and counts it
// in stats(); no span is dropped.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <vector>

#include "exporters/console/output_file.h"
#include "exporters/span_sink.h"

namespace hoptrace {

class TreeExporter : public SpanSink {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Color {
    kAuto,  // ANSI colours if the output is a terminal and NO_COLOR is not set
    kNever,
    kAlways,
  };

  struct Options {
    // How long a trace must go without a new span before it is printed.
    Clock::duration quiet_period = std::chrono::seconds(1);
    size_t max_traces = 10000;          // traces buffered at once (at least 1)
    size_t max_spans_per_trace = 1000;  // spans buffered per trace (at least 1)
    Color color = Color::kAuto;
    // Stamps each span's arrival; compared with the `now` given to Tick(). Tests inject a fake.
    std::function<Clock::time_point()> clock = [] { return Clock::now(); };
  };

  struct Stats {
    uint64_t spans_received = 0;
    uint64_t traces_printed = 0;  // trees written, including the early ones below
    // Printed before they were quiet because max_traces traces were buffered.
    uint64_t traces_printed_early_max_traces = 0;
    // Printed before they were quiet because they reached max_spans_per_trace; the trace's later
    // spans are printed as another tree.
    uint64_t traces_printed_early_max_spans = 0;
    uint64_t write_failures = 0;  // trees the output did not accept (or out of memory)
    uint64_t spans_failed = 0;    // spans lost to failed writes or out-of-memory
  };

  // Writes to `out` (stdout by default) without owning it.
  explicit TreeExporter(std::FILE* out = stdout) : TreeExporter(out, Options{}) {}
  TreeExporter(std::FILE* out, Options options);
  // Appends to the file at `path`, creating it. Throws std::runtime_error if it cannot be opened.
  TreeExporter(const std::filesystem::path& path, Options options);

  ExportResult Export(const std::vector<Span>& spans) noexcept override;
  // Prints every trace that has been quiet for quiet_period as of `now`.
  void Tick(Clock::time_point now) noexcept override;
  // Prints every buffered trace.
  void Flush() noexcept override;

  // Not synchronized: read it from the thread that calls Export().
  const Stats& stats() const { return stats_; }
  size_t buffered_traces() const { return by_id_.size(); }

 private:
  struct Trace {
    TraceId id;
    std::vector<Span> spans;  // in arrival order
    Clock::time_point last_arrival;
  };
  using TraceList = std::list<Trace>;
  enum class Reason { kQuiet, kMaxTraces, kMaxSpans };

  TreeExporter(OutputFile out, Options options);
  void Add(const Span& span, Clock::time_point now);
  // Prints and removes the trace.
  void Emit(TraceList::iterator it, Reason reason);

  OutputFile out_;
  Options options_;
  bool color_;
  // Least recently active first, so both Tick() and eviction look only at the front.
  TraceList traces_;
  // An ordered map rather than a hash map: trace ids come from the wire, and a std::map cannot
  // be degraded by ids crafted to collide.
  std::map<std::array<uint8_t, 16>, TraceList::iterator> by_id_;
  Stats stats_;
};

// The tree text for one trace, exactly as TreeExporter prints it (ends with a blank line).
// `note` is appended to the header line when non-empty. Exposed for tests and other front ends.
std::string RenderTraceTree(const std::vector<Span>& spans, bool color,
                            const std::string& note = "");

// "152.3 ms", or "850.2 µs" below one millisecond.
std::string FormatDuration(uint64_t ns);

}  // namespace hoptrace
