#include "exporters/console/tree_exporter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace hoptrace {
namespace {

using std::chrono::milliseconds;
using Clock = TreeExporter::Clock;

constexpr uint64_t kT0 = 1'700'000'000'000'000'000ull;
constexpr uint64_t kMs = 1'000'000;

template <typename Id>
Id IdFromHex(std::string_view hex) {
  Id id;
  for (size_t i = 0; i < id.bytes.size(); ++i) {
    id.bytes[i] = static_cast<uint8_t>(std::stoi(std::string(hex.substr(2 * i, 2)), nullptr, 16));
  }
  return id;
}

class MemFile {
 public:
  MemFile() : f_(open_memstream(&buf_, &size_)) {}
  ~MemFile() {
    std::fclose(f_);
    std::free(buf_);
  }
  std::FILE* get() { return f_; }
  std::string Text() {
    std::fflush(f_);
    return std::string(buf_, size_);
  }

 private:
  char* buf_ = nullptr;
  size_t size_ = 0;
  std::FILE* f_;
};

std::shared_ptr<const Resource> Service(const std::string& name) {
  auto r = std::make_shared<Resource>();
  r->attributes = {{"service.name", name}};
  return r;
}

Span HttpSpan(std::string_view trace, std::string_view id, std::string_view parent, SpanKind kind,
              const std::string& service, uint64_t start, uint64_t end) {
  Span s;
  s.trace_id = IdFromHex<TraceId>(trace);
  s.span_id = IdFromHex<SpanId>(id);
  if (!parent.empty()) s.parent_span_id = IdFromHex<SpanId>(parent);
  s.kind = kind;
  s.start_unix_nano = start;
  s.end_unix_nano = end;
  s.resource = Service(service);
  s.attributes = {{"http.request.method", std::string("GET")},
                  {"http.response.status_code", int64_t{200}}};
  return s;
}

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";

// frontend SERVER → frontend CLIENT → backend SERVER.
std::vector<Span> ThreeSpanTrace() {
  Span server = HttpSpan(kTrace, "1111111111111111", "", SpanKind::kServer, "frontend", kT0,
                         kT0 + 152'300'000);
  server.attributes.push_back({"url.path", std::string("/api")});
  Span client = HttpSpan(kTrace, "2222222222222222", "1111111111111111", SpanKind::kClient,
                         "frontend", kT0 + 10 * kMs, kT0 + 111'100'000);
  client.attributes.push_back({"url.full", std::string("http://backend:8080/work")});
  client.attributes.push_back({"network.peer.address", std::string("10.0.0.2")});
  client.attributes.push_back({"network.peer.port", int64_t{8080}});
  Span backend = HttpSpan(kTrace, "3333333333333333", "2222222222222222", SpanKind::kServer,
                          "backend", kT0 + 10'300'000, kT0 + 110'700'000);
  backend.attributes.push_back({"url.path", std::string("/work")});
  // Arrival order is not tree order: the deepest span finishes first.
  return {backend, client, server};
}

constexpr char kThreeSpanTree[] =
    "trace 4bf92f3577b34da6a3ce929d0e0e4736  3 spans  152.3 ms\n"
    "└─ frontend  SERVER GET /api  200  152.3 ms\n"
    "   └─ frontend  CLIENT GET http://backend:8080/work  200  101.1 ms  → 10.0.0.2:8080\n"
    "      └─ backend  SERVER GET /work  200  100.4 ms\n"
    "\n";

// A TreeExporter writing to memory with a clock the test moves.
struct Harness {
  explicit Harness(TreeExporter::Options options = {}) {
    options.clock = [this] { return now; };
    options.color = TreeExporter::Color::kNever;
    exporter = std::make_unique<TreeExporter>(out.get(), std::move(options));
  }
  Clock::time_point now{std::chrono::seconds(1000)};
  MemFile out;
  std::unique_ptr<TreeExporter> exporter;
};

TEST(FormatDurationTest, MillisecondsWithOneDecimalMicrosecondsBelowOneMs) {
  EXPECT_EQ(FormatDuration(152'300'000), "152.3 ms");
  EXPECT_EQ(FormatDuration(152'349'999), "152.3 ms");
  EXPECT_EQ(FormatDuration(152'350'000), "152.4 ms");
  EXPECT_EQ(FormatDuration(1'000'000), "1.0 ms");
  EXPECT_EQ(FormatDuration(999'949), "999.9 µs");
  EXPECT_EQ(FormatDuration(999'950), "1.0 ms");
  EXPECT_EQ(FormatDuration(850'200), "850.2 µs");
  EXPECT_EQ(FormatDuration(40), "0.0 µs");
  EXPECT_EQ(FormatDuration(0), "0.0 µs");
  EXPECT_EQ(FormatDuration(65'000'000'000), "65000.0 ms");
}

TEST(TreeExporterTest, PrintsThreeSpanTraceAsTreeInParentChildOrder) {
  Harness h;
  ASSERT_EQ(h.exporter->Export(ThreeSpanTrace()), ExportResult::kSuccess);
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(), kThreeSpanTree);
}

TEST(TreeExporterTest, SiblingsAreOrderedByStartAndDrawnWithBranchGlyphs) {
  constexpr std::string_view kRoot = "aaaaaaaaaaaaaaaa";
  Span root = HttpSpan(kTrace, kRoot, "", SpanKind::kServer, "gw", kT0, kT0 + 50 * kMs);
  root.attributes.push_back({"url.path", std::string("/")});
  Span late = HttpSpan(kTrace, "000000000000000c", kRoot, SpanKind::kClient, "gw", kT0 + 30 * kMs,
                       kT0 + 40 * kMs);
  late.attributes.push_back({"url.full", std::string("http://c/")});
  Span early = HttpSpan(kTrace, "000000000000000b", kRoot, SpanKind::kClient, "gw", kT0 + 1 * kMs,
                        kT0 + 20 * kMs);
  early.attributes.push_back({"url.full", std::string("http://b/")});
  Span under_early = HttpSpan(kTrace, "00000000000000bb", "000000000000000b", SpanKind::kServer,
                              "b", kT0 + 2 * kMs, kT0 + 19 * kMs);
  under_early.attributes.push_back({"url.path", std::string("/")});
  Span under_late = HttpSpan(kTrace, "00000000000000cc", "000000000000000c", SpanKind::kServer, "c",
                             kT0 + 31 * kMs, kT0 + 39'500'000);
  under_late.attributes.push_back({"url.path", std::string("/")});

  Harness h;
  h.exporter->Export({under_late, late, root, under_early, early});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  5 spans  50.0 ms\n"
            "└─ gw  SERVER GET /  200  50.0 ms\n"
            "   ├─ gw  CLIENT GET http://b/  200  19.0 ms\n"
            "   │  └─ b  SERVER GET /  200  17.0 ms\n"
            "   └─ gw  CLIENT GET http://c/  200  10.0 ms\n"
            "      └─ c  SERVER GET /  200  8.5 ms\n"
            "\n");
}

TEST(TreeExporterTest, SpanWithUnseenParentIsARootWithNote) {
  // The caller is untraced (curl) but sent a traceparent: our server span's parent is remote.
  Span server = HttpSpan(kTrace, "3333333333333333", "00f067aa0ba902b7", SpanKind::kServer,
                         "backend", kT0, kT0 + 100'400'000);
  server.attributes.push_back({"url.path", std::string("/work")});
  server.attributes.push_back({"url.query", std::string("id=REDACTED")});
  Span client = HttpSpan(kTrace, "4444444444444444", "3333333333333333", SpanKind::kClient,
                         "backend", kT0 + 1 * kMs, kT0 + 2 * kMs);
  client.attributes.push_back({"url.full", std::string("http://db:5984/x")});

  Harness h;
  h.exporter->Export({server, client});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  2 spans  100.4 ms\n"
            "└─ backend  SERVER GET /work?id=REDACTED  200  100.4 ms  "
            "(parent 00f067aa0ba902b7 not seen)\n"
            "   └─ backend  CLIENT GET http://db:5984/x  200  1.0 ms\n"
            "\n");
}

TEST(TreeExporterTest, SeveralRootsShareTheTopLevelWithBranchGlyphs) {
  Span a = HttpSpan(kTrace, "000000000000000a", "", SpanKind::kServer, "a", kT0, kT0 + 1 * kMs);
  a.attributes.push_back({"url.path", std::string("/a")});
  Span b = HttpSpan(kTrace, "000000000000000b", "00000000000000ff", SpanKind::kServer, "b",
                    kT0 + 500'000, kT0 + 700'000);
  b.attributes.push_back({"url.path", std::string("/b")});
  Harness h;
  h.exporter->Export({b, a});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  2 spans  1.0 ms\n"
            "├─ a  SERVER GET /a  200  1.0 ms\n"
            "└─ b  SERVER GET /b  200  200.0 µs  (parent 00000000000000ff not seen)\n"
            "\n");
}

TEST(TreeExporterTest, ErrorSpanShowsErrorTypeAndMessage) {
  Span s =
      HttpSpan(kTrace, "1111111111111111", "", SpanKind::kClient, "frontend", kT0, kT0 + 3 * kMs);
  s.attributes = {{"http.request.method", std::string("POST")},
                  {"url.full", std::string("http://backend/pay")},
                  {"http.response.status_code", int64_t{503}},
                  {"error.type", std::string("503")},
                  {"network.peer.address", std::string("fd00::2")},
                  {"network.peer.port", int64_t{80}}};
  s.status = StatusCode::kError;
  s.status_message = "Service Unavailable";
  Harness h;
  h.exporter->Export({s});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  1 span  3.0 ms\n"
            "└─ frontend  CLIENT POST http://backend/pay  503  3.0 ms  → [fd00::2]:80  "
            "ERROR 503: Service Unavailable\n"
            "\n");
}

TEST(TreeExporterTest, NonHttpSpanShowsItsName) {
  Span s;
  s.trace_id = IdFromHex<TraceId>(kTrace);
  s.span_id = IdFromHex<SpanId>("1111111111111111");
  s.name = "connect";
  s.start_unix_nano = kT0;
  s.end_unix_nano = kT0 + 1500;
  Harness h;
  h.exporter->Export({s});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  1 span  1.5 µs\n"
            "└─ unknown_service  INTERNAL connect  1.5 µs\n"
            "\n");
}

TEST(TreeExporterTest, EscapesControlCharactersFromTheWire) {
  Span s = HttpSpan(kTrace, "1111111111111111", "", SpanKind::kServer, "svc", kT0, kT0 + kMs);
  s.attributes.push_back({"url.path", std::string("/\x1b]0;pwned\x07\n")});
  Harness h;
  h.exporter->Export({s});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  1 span  1.0 ms\n"
            "└─ svc  SERVER GET /\\x1b]0;pwned\\x07\\x0a  200  1.0 ms\n"
            "\n");
}

TEST(TreeExporterTest, ParentCycleStillPrintsEverySpanOnce) {
  Span a = HttpSpan(kTrace, "000000000000000a", "000000000000000b", SpanKind::kServer, "a", kT0,
                    kT0 + kMs);
  Span b = HttpSpan(kTrace, "000000000000000b", "000000000000000a", SpanKind::kServer, "b", kT0 + 1,
                    kT0 + kMs);
  a.name = "A";
  b.name = "B";
  a.attributes.clear();
  b.attributes.clear();
  Harness h;
  h.exporter->Export({a, b});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  2 spans  1.0 ms\n"
            "└─ a  SERVER A  1.0 ms  (parent 000000000000000b is its own descendant)\n"
            "   └─ b  SERVER B  1.0 ms\n"
            "\n");
}

TEST(TreeExporterTest, WaitsForQuietPeriodBeforePrinting) {
  TreeExporter::Options options;
  options.quiet_period = milliseconds(500);
  Harness h(options);
  auto spans = ThreeSpanTrace();
  h.exporter->Export({spans[0]});
  h.now += milliseconds(400);
  h.exporter->Tick(h.now);
  // A new span of the trace restarts its quiet period.
  h.exporter->Export({spans[1], spans[2]});
  h.now += milliseconds(499);
  h.exporter->Tick(h.now);
  EXPECT_EQ(h.out.Text(), "");
  EXPECT_EQ(h.exporter->buffered_traces(), 1u);

  h.now += milliseconds(1);
  h.exporter->Tick(h.now);
  EXPECT_EQ(h.out.Text(), kThreeSpanTree);
  EXPECT_EQ(h.exporter->buffered_traces(), 0u);
  EXPECT_EQ(h.exporter->stats().traces_printed, 1u);
  EXPECT_EQ(h.exporter->stats().spans_received, 3u);

  h.exporter->Tick(h.now + std::chrono::seconds(10));
  EXPECT_EQ(h.out.Text(), kThreeSpanTree);  // printed once only
}

TEST(TreeExporterTest, TickPrintsOnlyTheTracesThatAreQuiet) {
  Harness h;  // default quiet_period: 1 s
  Span first = ThreeSpanTrace()[2];
  Span second = first;
  second.trace_id = IdFromHex<TraceId>("0af7651916cd43dd8448eb211c80319c");
  h.exporter->Export({first});
  h.now += milliseconds(600);
  h.exporter->Export({second});
  h.now += milliseconds(400);
  h.exporter->Tick(h.now);
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  1 span  152.3 ms\n"
            "└─ frontend  SERVER GET /api  200  152.3 ms\n"
            "\n");
  EXPECT_EQ(h.exporter->buffered_traces(), 1u);
}

TEST(TreeExporterTest, FlushPrintsEveryBufferedTraceAtOnce) {
  Harness h;
  Span other = ThreeSpanTrace()[2];
  other.trace_id = IdFromHex<TraceId>("0af7651916cd43dd8448eb211c80319c");
  h.exporter->Export(ThreeSpanTrace());
  h.exporter->Export({other});
  h.exporter->Flush();
  EXPECT_EQ(h.out.Text(), std::string(kThreeSpanTree) +
                              "trace 0af7651916cd43dd8448eb211c80319c  1 span  152.3 ms\n"
                              "└─ frontend  SERVER GET /api  200  152.3 ms\n"
                              "\n");
  EXPECT_EQ(h.exporter->buffered_traces(), 0u);
  EXPECT_EQ(h.exporter->stats().traces_printed, 2u);
  EXPECT_EQ(h.exporter->stats().traces_printed_early_max_traces, 0u);
}

TEST(TreeExporterTest, MaxTracesPrintsLeastRecentlyActiveTraceEarlyAndCountsIt) {
  TreeExporter::Options options;
  options.max_traces = 2;
  Harness h(options);
  auto one_span = [](std::string_view trace) {
    Span s = HttpSpan(trace, "1111111111111111", "", SpanKind::kServer, "svc", kT0, kT0 + kMs);
    s.attributes.push_back({"url.path", std::string("/")});
    return s;
  };
  constexpr std::string_view kA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  constexpr std::string_view kB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
  constexpr std::string_view kC = "cccccccccccccccccccccccccccccccc";
  h.exporter->Export({one_span(kA)});
  h.exporter->Export({one_span(kB)});
  Span a2 = one_span(kA);
  a2.span_id = IdFromHex<SpanId>("2222222222222222");
  a2.parent_span_id = IdFromHex<SpanId>("1111111111111111");
  h.exporter->Export({a2});  // A is now the most recently active; B is the oldest
  EXPECT_EQ(h.out.Text(), "");

  h.exporter->Export({one_span(kC)});
  EXPECT_EQ(h.out.Text(),
            "trace bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  1 span  1.0 ms  "
            "[printed early: max_traces=2 buffered]\n"
            "└─ svc  SERVER GET /  200  1.0 ms\n"
            "\n");
  EXPECT_EQ(h.exporter->buffered_traces(), 2u);
  EXPECT_EQ(h.exporter->stats().traces_printed_early_max_traces, 1u);
  EXPECT_EQ(h.exporter->stats().traces_printed, 1u);

  h.exporter->Flush();
  EXPECT_EQ(h.exporter->stats().traces_printed, 3u);
  EXPECT_EQ(h.exporter->stats().spans_received, 4u);
  EXPECT_EQ(h.exporter->stats().spans_failed, 0u);
}

TEST(TreeExporterTest, MaxSpansPerTracePrintsTheFullTraceAndStartsAnother) {
  TreeExporter::Options options;
  options.max_spans_per_trace = 2;
  Harness h(options);
  auto spans = ThreeSpanTrace();  // backend, client, server
  h.exporter->Export({spans[2], spans[1]});
  EXPECT_EQ(h.out.Text(), "");  // at the limit, not over it
  h.exporter->Export({spans[0]});
  EXPECT_EQ(h.out.Text(),
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  2 spans  152.3 ms  "
            "[printed early: max_spans_per_trace=2 reached, more follow]\n"
            "└─ frontend  SERVER GET /api  200  152.3 ms\n"
            "   └─ frontend  CLIENT GET http://backend:8080/work  200  101.1 ms  → 10.0.0.2:8080\n"
            "\n");
  EXPECT_EQ(h.exporter->stats().traces_printed_early_max_spans, 1u);
  h.exporter->Flush();
  EXPECT_NE(h.out.Text().find("└─ backend  SERVER GET /work  200  100.4 ms  "
                              "(parent 2222222222222222 not seen)\n"),
            std::string::npos);
  EXPECT_EQ(h.exporter->stats().traces_printed, 2u);
}

TEST(TreeExporterTest, ColorAlwaysAddsAnsiCodesAndAutoOmitsThemForNonTerminals) {
  MemFile colored;
  TreeExporter::Options always;
  always.color = TreeExporter::Color::kAlways;
  TreeExporter a(colored.get(), always);
  a.Export(ThreeSpanTrace());
  a.Flush();
  EXPECT_NE(colored.Text().find("\x1b[1mfrontend\x1b[0m"), std::string::npos);

  MemFile plain;
  TreeExporter b(plain.get(), TreeExporter::Options{});  // kAuto; a memstream is no terminal
  b.Export(ThreeSpanTrace());
  b.Flush();
  EXPECT_EQ(plain.Text(), kThreeSpanTree);
}

TEST(TreeExporterTest, CountsTracesTheOutputRejected) {
  std::FILE* full = std::fopen("/dev/full", "w");
  ASSERT_NE(full, nullptr);
  {
    TreeExporter exporter(full, TreeExporter::Options{});
    exporter.Export(ThreeSpanTrace());
    exporter.Flush();
    EXPECT_EQ(exporter.stats().write_failures, 1u);
    EXPECT_EQ(exporter.stats().spans_failed, 3u);
    EXPECT_EQ(exporter.stats().traces_printed, 0u);
    EXPECT_EQ(exporter.buffered_traces(), 0u);
  }
  std::fclose(full);
}

}  // namespace
}  // namespace hoptrace
