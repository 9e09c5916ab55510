#include "exporters/console/jsonl_exporter.h"

#include <string>

#include "exporters/console/span_json.h"

namespace hoptrace {

JsonlExporter::JsonlExporter(std::FILE* out) : out_(OutputFile::Borrow(out)) {}

JsonlExporter::JsonlExporter(const std::filesystem::path& path)
    : out_(OutputFile::OpenForAppend(path)) {}

ExportResult JsonlExporter::Export(const std::vector<Span>& spans) noexcept {
  uint64_t serialized = 0;
  bool ok = true;
  try {
    // One write per batch: fewer syscalls than per span, and each line is complete.
    batch_.clear();  // keeps its capacity from batch to batch
    for (const Span& span : spans) {
      AppendSpanJsonLine(span, &batch_);
      batch_ += '\n';
      ++serialized;
    }
    ok = out_.WriteAndFlush(batch_);
  } catch (...) {  // Only std::bad_alloc is possible; nothing of the batch has been written.
    ok = false;
    serialized = 0;
  }
  if (ok) {
    stats_.spans_written += serialized;
    return ExportResult::kSuccess;
  }
  // A failed fwrite may have written part of the batch; which part is unknowable, so count all
  // of it as failed rather than over-report success.
  stats_.spans_failed += spans.size();
  return ExportResult::kFailure;
}

void JsonlExporter::Flush() noexcept { std::fflush(out_.get()); }

}  // namespace hoptrace
