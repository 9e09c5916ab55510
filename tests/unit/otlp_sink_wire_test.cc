// ht_otlp_sink's wire walker (tests/bench/sink_counters.h, --parse wire): it must count what
// libprotobuf counts and refuse what libprotobuf refuses, on the agent's own encoder output.
#include <gtest/gtest.h>

#include <string>

#include "exporters/otlp/otlp_translator.h"
#include "exporters/otlp/otlp_wire_encoder.h"
#include "tests/bench/sink_counters.h"
#include "tests/unit/otlp_test_spans.h"

namespace hoptrace {
namespace {

using bench::CountWire;

uint64_t SpansOf(const OtlpExportRequest& request) {
  uint64_t n = 0;
  for (const auto& rs : request.resource_spans()) {
    for (const auto& ss : rs.scope_spans()) n += static_cast<uint64_t>(ss.spans_size());
  }
  return n;
}

TEST(SinkWireCountTest, CountsWhatLibprotobufCounts) {
  const std::vector<Span> spans = otlp_test::SampleBatch();
  OtlpWireEncoder encoder;
  const std::string bytes(encoder.Encode(spans, "hoptrace", "1.2.3"));
  OtlpExportRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  ASSERT_GT(parsed.resource_spans_size(), 1);  // the sample has several processes
  const auto counts = CountWire(bytes);
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(counts->spans, spans.size());
  EXPECT_EQ(counts->spans, SpansOf(parsed));
  EXPECT_EQ(counts->resource_spans, static_cast<uint64_t>(parsed.resource_spans_size()));
  EXPECT_EQ(CountWire("")->spans, 0u);  // an empty request is a valid one
}

// A cut anywhere but between two ResourceSpans leaves a length that runs past the end.
TEST(SinkWireCountTest, RefusesEveryPrefixLibprotobufRefuses) {
  OtlpWireEncoder encoder;
  const std::string bytes(encoder.Encode(otlp_test::SampleBatch(), "hoptrace", "1.2.3"));
  int refused = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string prefix = bytes.substr(0, n);
    OtlpExportRequest parsed;
    const bool ok = parsed.ParseFromString(prefix);
    const auto counts = CountWire(prefix);
    ASSERT_EQ(counts.has_value(), ok) << "prefix of " << n << " bytes";
    if (ok) {
      EXPECT_EQ(counts->spans, SpansOf(parsed)) << n;
    } else {
      ++refused;
    }
  }
  EXPECT_GT(refused, static_cast<int>(bytes.size()) / 2);
}

TEST(SinkWireCountTest, RefusesBadFraming) {
  EXPECT_FALSE(CountWire(std::string("\x0b", 1)).has_value());          // a group (wire type 3)
  EXPECT_FALSE(CountWire(std::string("\x02\x00", 2)).has_value());      // field number 0
  EXPECT_FALSE(CountWire(std::string("\x0a\x05\x01", 3)).has_value());  // length past the end
  EXPECT_FALSE(CountWire(std::string("\x08\xff", 2)).has_value());      // varint never ends
  const auto one = CountWire(std::string("\x0a\x04\x12\x02\x12\x00", 6));  // {rs{ss{span{}}}}
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->spans, 1u);
  EXPECT_EQ(one->resource_spans, 1u);
  // The same with a span that is not a message (a group tag inside it).
  EXPECT_FALSE(CountWire(std::string("\x0a\x05\x12\x03\x12\x01\x0b", 7)).has_value());
}

}  // namespace
}  // namespace hoptrace
