// JsonlExporter: every span as one line of JSON (see span_json.h for the schema), written as soon
// as it is exported. For scripts, tests and `jq`; humans want TreeExporter.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "exporters/console/output_file.h"
#include "exporters/span_sink.h"

namespace hoptrace {

class JsonlExporter : public SpanSink {
 public:
  struct Stats {
    uint64_t spans_written = 0;
    // Spans lost because the output failed (disk full, closed pipe, ...) or could not be
    // serialized; counted here because Export() may not throw.
    uint64_t spans_failed = 0;
  };

  // Writes to `out` (stdout by default) without owning it.
  explicit JsonlExporter(std::FILE* out = stdout);
  // Appends to the file at `path`, creating it. Throws std::runtime_error if it cannot be opened.
  explicit JsonlExporter(const std::filesystem::path& path);

  // Writes the whole batch, then flushes, so a reader tailing the file sees spans promptly.
  ExportResult Export(const std::vector<Span>& spans) noexcept override;
  void Flush() noexcept override;

  // Not synchronized: read it from the thread that calls Export().
  const Stats& stats() const { return stats_; }

 private:
  OutputFile out_;
  std::string batch_;  // the lines of one batch, written at once
  Stats stats_;
};

}  // namespace hoptrace
