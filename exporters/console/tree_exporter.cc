#include "exporters/console/tree_exporter.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string_view>
#include <variant>

namespace hoptrace {
namespace {

constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kRed = "\x1b[1;31m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kReset = "\x1b[0m";

// Attribute values are copied from requests; a path holding ESC could otherwise recolour,
// retitle or scroll the user's terminal.
std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kDigits[] = "0123456789abcdef";
      out += "\\x";
      out += kDigits[u >> 4];
      out += kDigits[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

// Appends `text` (already escaped) wrapped in `code` when colour is on.
class Painter {
 public:
  explicit Painter(bool on) : on_(on) {}
  void Append(std::string* out, std::string_view code, std::string_view text) const {
    if (on_) *out += code;
    *out += text;
    if (on_) *out += kReset;
  }

 private:
  bool on_;
};

std::optional<std::string> AttrText(const Attributes& attrs, std::string_view key) {
  const AttrValue* v = FindAttribute(attrs, key);
  if (v == nullptr) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(v)) return Escape(*s);
  if (const auto* i = std::get_if<int64_t>(v)) return std::to_string(*i);
  if (const auto* b = std::get_if<bool>(v)) return *b ? "true" : "false";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", std::get<double>(*v));
  return buf;
}

std::optional<int64_t> AttrInt(const Attributes& attrs, std::string_view key) {
  const AttrValue* v = FindAttribute(attrs, key);
  if (v == nullptr) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(v)) return *i;
  return std::nullopt;
}

uint64_t DurationNs(const Span& s) {
  return s.end_unix_nano >= s.start_unix_nano ? s.end_unix_nano - s.start_unix_nano : 0;
}

// "GET /api?q=1" for HTTP spans, the span name otherwise.
std::string Operation(const Span& s) {
  const auto method = AttrText(s.attributes, "http.request.method");
  if (!method) return Escape(s.name);
  std::optional<std::string> target;
  if (s.kind == SpanKind::kClient) target = AttrText(s.attributes, "url.full");
  if (!target) {
    target = AttrText(s.attributes, "url.path");
    const auto query = AttrText(s.attributes, "url.query");
    if (target && query && !query->empty()) *target += "?" + *query;
  }
  if (target) return *method + " " + *target;
  return s.name.empty() ? *method : Escape(s.name);
}

void AppendSpanLine(const Span& s, const Painter& paint, std::string* out) {
  paint.Append(out, kBold, Escape(s.resource ? s.resource->ServiceName() : "unknown_service"));
  *out += "  ";
  *out += SpanKindName(s.kind);
  *out += ' ';
  *out += Operation(s);
  if (const auto code = AttrInt(s.attributes, "http.response.status_code")) {
    *out += "  ";
    const std::string_view color = *code >= 500 ? kRed : *code >= 400 ? kYellow : "";
    paint.Append(out, color, std::to_string(*code));
  }
  *out += "  ";
  *out += FormatDuration(DurationNs(s));
  if (s.kind == SpanKind::kClient) {
    if (auto addr = AttrText(s.attributes, "network.peer.address")) {
      if (addr->find(':') != std::string::npos) *addr = "[" + *addr + "]";  // IPv6
      *out += "  → " + *addr;
      if (const auto port = AttrText(s.attributes, "network.peer.port")) *out += ":" + *port;
    }
  }
  if (s.status == StatusCode::kError) {
    std::string error = "ERROR";
    if (const auto type = AttrText(s.attributes, "error.type")) error += " " + *type;
    if (!s.status_message.empty()) error += ": " + Escape(s.status_message);
    *out += "  ";
    paint.Append(out, kRed, error);
  }
}

// Children of each span in a trace, and which spans start a tree. Every span gets exactly one
// place: under the first span carrying its parent id, or at the top.
struct Forest {
  std::vector<std::vector<size_t>> children;
  std::vector<size_t> tops;
  std::vector<std::string> notes;  // per span, shown after a top-level span
};

Forest BuildForest(const std::vector<Span>& spans) {
  const size_t n = spans.size();
  Forest f{std::vector<std::vector<size_t>>(n), {}, std::vector<std::string>(n)};
  // First span wins a repeated span id, so a span exported twice cannot print its children twice.
  std::map<std::array<uint8_t, 8>, size_t> by_id;
  for (size_t i = 0; i < n; ++i) by_id.emplace(spans[i].span_id.bytes, i);

  for (size_t i = 0; i < n; ++i) {
    const SpanId& parent = spans[i].parent_span_id;
    if (!parent.IsValid()) {
      f.tops.push_back(i);
      continue;
    }
    const auto it = by_id.find(parent.bytes);
    if (it != by_id.end() && it->second != i) {
      f.children[it->second].push_back(i);
    } else {
      f.tops.push_back(i);
      f.notes[i] =
          it == by_id.end() ? "(parent " + parent.Hex() + " not seen)" : "(parent is itself)";
    }
  }

  // Spans whose ancestry loops (A's parent is B, B's parent is A: buggy or hostile ids) hang from
  // no top. Promote one span of each loop so that nothing goes unprinted.
  std::vector<bool> reached(n, false);
  auto reach = [&](size_t start) {
    std::vector<size_t> stack{start};
    while (!stack.empty()) {
      const size_t i = stack.back();
      stack.pop_back();
      if (reached[i]) continue;
      reached[i] = true;
      for (size_t c : f.children[i]) stack.push_back(c);
    }
  };
  for (size_t i : f.tops) reach(i);
  for (size_t i = 0; i < n; ++i) {
    if (reached[i]) continue;
    f.tops.push_back(i);
    f.notes[i] = "(parent " + spans[i].parent_span_id.Hex() + " is its own descendant)";
    reach(i);
  }

  auto by_start = [&](size_t a, size_t b) {
    return spans[a].start_unix_nano < spans[b].start_unix_nano;
  };
  std::stable_sort(f.tops.begin(), f.tops.end(), by_start);  // stable: ties keep arrival order
  for (auto& c : f.children) std::stable_sort(c.begin(), c.end(), by_start);
  return f;
}

}  // namespace

std::string FormatDuration(uint64_t ns) {
  // Integer rounding to tenths; below 999.95 µs the µs form would not round to "1000.0 µs".
  const bool micros = ns < 999'950;
  const uint64_t unit = micros ? 100 : 100'000;
  const uint64_t tenths = ns / unit + (ns % unit >= unit / 2 ? 1 : 0);
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + (micros ? " µs" : " ms");
}

std::string RenderTraceTree(const std::vector<Span>& spans, bool color, const std::string& note) {
  const Painter paint(color);
  std::string out;
  if (spans.empty()) return out;

  uint64_t first_start = std::numeric_limits<uint64_t>::max();
  uint64_t last_end = 0;
  for (const Span& s : spans) {
    first_start = std::min(first_start, s.start_unix_nano);
    last_end = std::max(last_end, s.end_unix_nano);
  }
  paint.Append(&out, kBold, "trace " + spans.front().trace_id.Hex());
  out += "  " + std::to_string(spans.size()) + (spans.size() == 1 ? " span  " : " spans  ");
  out += FormatDuration(last_end >= first_start ? last_end - first_start : 0);
  if (!note.empty()) {
    out += "  ";
    paint.Append(&out, kYellow, note);
  }
  out += '\n';

  const Forest forest = BuildForest(spans);
  // Iterative depth-first walk: a hostile trace can be a chain as deep as max_spans_per_trace.
  struct Item {
    size_t span;
    std::string prefix;
    bool last;
  };
  std::vector<Item> stack;
  std::vector<bool> printed(spans.size(), false);
  auto push_all = [&](const std::vector<size_t>& list, const std::string& prefix) {
    // The span promoted from a loop also sits in its loop predecessor's list; skip it there.
    std::vector<size_t> todo;
    for (size_t i : list) {
      if (!printed[i]) todo.push_back(i);
    }
    for (size_t k = todo.size(); k-- > 0;) stack.push_back({todo[k], prefix, k + 1 == todo.size()});
  };
  push_all(forest.tops, "");
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (printed[item.span]) continue;
    printed[item.span] = true;
    out += item.prefix;
    out += item.last ? "└─ " : "├─ ";
    AppendSpanLine(spans[item.span], paint, &out);
    if (item.prefix.empty() && !forest.notes[item.span].empty()) {
      out += "  ";
      paint.Append(&out, kDim, forest.notes[item.span]);
    }
    out += '\n';
    push_all(forest.children[item.span], item.prefix + (item.last ? "   " : "│  "));
  }
  out += '\n';
  return out;
}

TreeExporter::TreeExporter(std::FILE* out, Options options)
    : TreeExporter(OutputFile::Borrow(out), std::move(options)) {}

TreeExporter::TreeExporter(const std::filesystem::path& path, Options options)
    : TreeExporter(OutputFile::OpenForAppend(path), std::move(options)) {}

TreeExporter::TreeExporter(OutputFile out, Options options)
    : out_(std::move(out)), options_(std::move(options)) {
  options_.max_traces = std::max<size_t>(options_.max_traces, 1);
  options_.max_spans_per_trace = std::max<size_t>(options_.max_spans_per_trace, 1);
  if (!options_.clock) options_.clock = [] { return Clock::now(); };
  switch (options_.color) {
    case Color::kAlways:
      color_ = true;
      break;
    case Color::kNever:
      color_ = false;
      break;
    case Color::kAuto: {
      // https://no-color.org: a non-empty NO_COLOR disables colour.
      const char* no_color = std::getenv("NO_COLOR");
      const int fd = fileno(out_.get());
      color_ = (no_color == nullptr || *no_color == '\0') && fd >= 0 && isatty(fd);
      break;
    }
  }
}

ExportResult TreeExporter::Export(const std::vector<Span>& spans) noexcept {
  size_t added = 0;
  try {
    const Clock::time_point now = options_.clock();
    for (const Span& span : spans) {
      Add(span, now);
      ++added;
      ++stats_.spans_received;
    }
    return ExportResult::kSuccess;
  } catch (...) {  // std::bad_alloc from copying a span
    stats_.spans_failed += spans.size() - added;
    return ExportResult::kFailure;
  }
}

void TreeExporter::Add(const Span& span, Clock::time_point now) {
  auto found = by_id_.find(span.trace_id.bytes);
  if (found != by_id_.end() && found->second->spans.size() >= options_.max_spans_per_trace) {
    Emit(found->second, Reason::kMaxSpans);
    found = by_id_.end();
  }
  if (found == by_id_.end()) {
    if (by_id_.size() >= options_.max_traces) Emit(traces_.begin(), Reason::kMaxTraces);
    traces_.push_back(Trace{span.trace_id, {}, now});
    found = by_id_.emplace(span.trace_id.bytes, std::prev(traces_.end())).first;
  } else {
    // splice keeps every iterator valid, so by_id_ needs no update.
    traces_.splice(traces_.end(), traces_, found->second);
  }
  Trace& trace = *found->second;
  trace.last_arrival = now;
  trace.spans.push_back(span);
}

void TreeExporter::Emit(TraceList::iterator it, Reason reason) {
  if (reason == Reason::kMaxTraces) ++stats_.traces_printed_early_max_traces;
  if (reason == Reason::kMaxSpans) ++stats_.traces_printed_early_max_spans;
  bool ok = false;
  // Everything that allocates stays inside the try: Tick() and Flush() may not throw.
  try {
    std::string note;
    if (reason == Reason::kMaxTraces) {
      note = "[printed early: max_traces=" + std::to_string(options_.max_traces) + " buffered]";
    } else if (reason == Reason::kMaxSpans) {
      note = "[printed early: max_spans_per_trace=" + std::to_string(options_.max_spans_per_trace) +
             " reached, more follow]";
    }
    ok = out_.WriteAndFlush(RenderTraceTree(it->spans, color_, note));
  } catch (...) {  // std::bad_alloc while rendering; the trace is released below either way
  }
  if (ok) {
    ++stats_.traces_printed;
  } else {
    ++stats_.write_failures;
    stats_.spans_failed += it->spans.size();
  }
  by_id_.erase(it->id.bytes);
  traces_.erase(it);
}

void TreeExporter::Tick(Clock::time_point now) noexcept {
  while (!traces_.empty() && now - traces_.front().last_arrival >= options_.quiet_period) {
    Emit(traces_.begin(), Reason::kQuiet);
  }
}

void TreeExporter::Flush() noexcept {
  while (!traces_.empty()) Emit(traces_.begin(), Reason::kQuiet);
}

}  // namespace hoptrace
