#include "exporters/console/span_json.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "exporters/console/jsonl_exporter.h"

namespace hoptrace {
namespace {

using nlohmann::json;

template <typename Id>
Id IdFromHex(std::string_view hex) {
  Id id;
  for (size_t i = 0; i < id.bytes.size(); ++i) {
    id.bytes[i] = static_cast<uint8_t>(std::stoi(std::string(hex.substr(2 * i, 2)), nullptr, 16));
  }
  return id;
}

// An in-memory FILE*, so the exporters' real stdio path is what the tests exercise.
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

Span KnownSpan() {
  auto resource = std::make_shared<Resource>();
  resource->attributes = {{"service.name", std::string("frontend")},
                          {"process.pid", int64_t{4242}}};
  Span s;
  s.trace_id = IdFromHex<TraceId>("4bf92f3577b34da6a3ce929d0e0e4736");
  s.span_id = IdFromHex<SpanId>("00f067aa0ba902b7");
  s.parent_span_id = IdFromHex<SpanId>("b7ad6b7169203331");
  s.trace_state = "congo=t61rcWkgMzE";
  s.flags = 1;
  s.kind = SpanKind::kServer;
  s.name = "GET /api";
  // Above 2^63, so a signed or floating-point encoding would show.
  s.start_unix_nano = 10'000'000'000'000'000'000ull;
  s.end_unix_nano = 10'000'000'000'152'300'000ull;
  s.status = StatusCode::kError;
  s.status_message = "upstream reset";
  s.attributes = {{"http.request.method", std::string("GET")},
                  {"http.response.status_code", int64_t{503}},
                  {"hoptrace.network_ratio", 0.25},
                  {"hoptrace.injected", true}};
  s.events = {{"retransmit", 10'000'000'000'050'000'000ull, {{"tcp.rto_ms", int64_t{200}}}}};
  s.resource = resource;
  return s;
}

TEST(SpanJsonTest, WritesEveryFieldWithItsType) {
  const json j = SpanToJson(KnownSpan());
  const json expected = {
      {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
      {"span_id", "00f067aa0ba902b7"},
      {"parent_span_id", "b7ad6b7169203331"},
      {"trace_state", "congo=t61rcWkgMzE"},
      {"flags", 1},
      {"kind", "SERVER"},
      {"name", "GET /api"},
      {"start_time_unix_nano", 10'000'000'000'000'000'000ull},
      {"end_time_unix_nano", 10'000'000'000'152'300'000ull},
      {"duration_ns", 152'300'000ull},
      {"status", {{"code", "ERROR"}, {"message", "upstream reset"}}},
      {"attributes",
       {{"http.request.method", "GET"},
        {"http.response.status_code", 503},
        {"hoptrace.network_ratio", 0.25},
        {"hoptrace.injected", true}}},
      {"events", json::array({{{"name", "retransmit"},
                               {"time_unix_nano", 10'000'000'000'050'000'000ull},
                               {"attributes", {{"tcp.rto_ms", 200}}}}})},
      {"resource", {{"attributes", {{"service.name", "frontend"}, {"process.pid", 4242}}}}},
  };
  EXPECT_EQ(j, expected) << j.dump(2);

  // json's == compares numbers across types; pin the types separately.
  EXPECT_TRUE(j["start_time_unix_nano"].is_number_unsigned());
  EXPECT_EQ(j["start_time_unix_nano"].get<uint64_t>(), 10'000'000'000'000'000'000ull);
  EXPECT_TRUE(j["end_time_unix_nano"].is_number_unsigned());
  EXPECT_TRUE(j["duration_ns"].is_number_unsigned());
  EXPECT_TRUE(j["flags"].is_number_unsigned());
  EXPECT_TRUE(j["events"][0]["time_unix_nano"].is_number_unsigned());
  EXPECT_TRUE(j["attributes"]["http.response.status_code"].is_number_integer());
  EXPECT_TRUE(j["attributes"]["hoptrace.network_ratio"].is_number_float());
  EXPECT_TRUE(j["attributes"]["hoptrace.injected"].is_boolean());
  EXPECT_TRUE(j["attributes"]["http.request.method"].is_string());
  EXPECT_EQ(j.size(), 14u);
}

TEST(SpanJsonTest, RootSpanHasEmptyParentSpanId) {
  Span s = KnownSpan();
  s.parent_span_id = SpanId{};
  const json j = SpanToJson(s);
  ASSERT_TRUE(j.contains("parent_span_id"));
  EXPECT_EQ(j["parent_span_id"], "");
}

TEST(SpanJsonTest, DefaultSpanHasEmptyCollectionsAndNoResourceAttributes) {
  const json j = SpanToJson(Span{});
  EXPECT_EQ(j["trace_id"], "00000000000000000000000000000000");
  EXPECT_EQ(j["kind"], "INTERNAL");
  EXPECT_EQ(j["status"], json({{"code", "UNSET"}, {"message", ""}}));
  EXPECT_EQ(j["attributes"], json::object());
  EXPECT_EQ(j["events"], json::array());
  EXPECT_EQ(j["resource"], json({{"attributes", json::object()}}));
}

TEST(SpanJsonTest, ClientKindAndOkStatusUseTheirNames) {
  Span s = KnownSpan();
  s.kind = SpanKind::kClient;
  s.status = StatusCode::kOk;
  s.status_message.clear();
  const json j = SpanToJson(s);
  EXPECT_EQ(j["kind"], "CLIENT");
  EXPECT_EQ(j["status"]["code"], "OK");
}

TEST(SpanJsonTest, RepeatedAttributeKeyKeepsFirstValueLikeFindAttribute) {
  Span s;
  s.attributes = {{"k", std::string("first")}, {"k", std::string("second")}};
  EXPECT_EQ(SpanToJson(s)["attributes"], json({{"k", "first"}}));
}

TEST(SpanJsonTest, DurationIsZeroWhenEndPrecedesStart) {
  Span s;
  s.start_unix_nano = 2000;
  s.end_unix_nano = 1000;
  EXPECT_EQ(SpanToJson(s)["duration_ns"], 0u);
}

TEST(SpanJsonTest, JsonLineReplacesInvalidUtf8InsteadOfThrowing) {
  Span s;
  s.name = "GET /\xff\xfe";
  std::string line;
  ASSERT_NO_THROW(line = SpanToJsonLine(s));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(json::parse(line)["name"], "GET /\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(SpanJsonTest, NonFiniteDoubleBecomesNull) {
  Span s;
  s.attributes = {{"x", std::numeric_limits<double>::quiet_NaN()}};
  EXPECT_TRUE(json::parse(SpanToJsonLine(s))["attributes"]["x"].is_null());
}

// The direct writer must say exactly what the DOM says, for every kind of value.
TEST(SpanJsonTest, JsonLineEqualsTheDomForAwkwardValues) {
  Span s = KnownSpan();
  s.name = std::string("q\"uo\\te\n\t\x01\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 27);
  s.trace_state = "a=1,b=2";
  s.status_message = "bad \r\f\b";
  s.attributes = {{"d", 2.0}, {"e", 1.5e-300}, {"f", -0.125}, {"i", int64_t{-42}},
                  {"m", std::numeric_limits<int64_t>::min()}, {"t", true}, {"n", false},
                  {"u", std::string("\xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 \xe2\x82")}};
  SpanEvent ev;
  ev.name = "exception";
  ev.time_unix_nano = 18446744073709551615ull;
  ev.attributes = {{"exception.type", std::string("E")}};
  s.events = {ev, ev};
  json dom = SpanToJson(s);
  // dump() with replace, as the old writer did, gives the reference for invalid bytes.
  const json reference = json::parse(
      dom.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace));
  EXPECT_EQ(json::parse(SpanToJsonLine(s)), reference) << SpanToJsonLine(s);
  EXPECT_EQ(json::parse(SpanToJsonLine(Span{})), SpanToJson(Span{}));
}

TEST(JsonlExporterTest, WritesOneParseableLinePerSpan) {
  MemFile out;
  JsonlExporter exporter(out.get());
  Span a = KnownSpan();
  Span b = KnownSpan();
  b.name = "second";
  EXPECT_EQ(exporter.Export({a, b}), ExportResult::kSuccess);
  EXPECT_EQ(exporter.Export({}), ExportResult::kSuccess);

  std::istringstream lines(out.Text());
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(json::parse(line), SpanToJson(a));
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(json::parse(line)["name"], "second");
  EXPECT_FALSE(std::getline(lines, line));
  EXPECT_EQ(exporter.stats().spans_written, 2u);
  EXPECT_EQ(exporter.stats().spans_failed, 0u);
}

TEST(JsonlExporterTest, AppendsToFileAndSpansAreReadableBeforeFlush) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("hoptrace_jsonl_test_" + std::to_string(getpid()) + ".jsonl");
  { std::ofstream(path) << "earlier line\n"; }
  {
    JsonlExporter exporter(path);
    ASSERT_EQ(exporter.Export({KnownSpan()}), ExportResult::kSuccess);
    // Read while the exporter is alive and unflushed: a test tailing the file must see the span.
    std::ifstream in(path);
    std::string first, second;
    ASSERT_TRUE(std::getline(in, first));
    ASSERT_TRUE(std::getline(in, second));
    EXPECT_EQ(first, "earlier line");
    EXPECT_EQ(json::parse(second)["span_id"], "00f067aa0ba902b7");
  }
  std::filesystem::remove(path);
}

TEST(JsonlExporterTest, ThrowsWithPathWhenFileCannotBeOpened) {
  try {
    JsonlExporter exporter(std::filesystem::path("/nonexistent-dir/spans.jsonl"));
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/spans.jsonl"), std::string::npos);
  }
}

TEST(JsonlExporterTest, CountsSpansLostToWriteErrors) {
  std::FILE* full = std::fopen("/dev/full", "w");
  ASSERT_NE(full, nullptr);
  {
    JsonlExporter exporter(full);
    EXPECT_EQ(exporter.Export({KnownSpan(), KnownSpan()}), ExportResult::kFailure);
    EXPECT_EQ(exporter.stats().spans_failed, 2u);
    EXPECT_EQ(exporter.stats().spans_written, 0u);
  }
  std::fclose(full);
}

}  // namespace
}  // namespace hoptrace
