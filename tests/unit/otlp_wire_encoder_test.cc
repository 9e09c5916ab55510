// The wire encoder against the libprotobuf translator it replaces on the export path: for
// every batch, its bytes must parse into the message BuildExportRequest builds, and be the
// bytes libprotobuf serializes for it (libprotobuf writes fields in field-number order, with
// minimal varints; so does the encoder).
#include "exporters/otlp/otlp_wire_encoder.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include "exporters/otlp/otlp_translator.h"
#include "tests/unit/otlp_test_spans.h"

namespace hoptrace {
namespace {

using google::protobuf::util::MessageDifferencer;
using otlp_test::MakeSpanId;
using otlp_test::MakeTraceId;

std::string Differences(const OtlpExportRequest& expected, const OtlpExportRequest& actual) {
  std::string report;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&report);
  differencer.Compare(expected, actual);
  return report;
}

// Encodes `spans` with `encoder` and checks the bytes against the translator's message.
void ExpectSameAsTranslator(OtlpWireEncoder& encoder, const std::vector<Span>& spans,
                            std::string_view scope_name = "hoptrace",
                            std::string_view scope_version = "1.2.3") {
  const std::string_view bytes = encoder.Encode(spans, scope_name, scope_version);
  const OtlpExportRequest expected = BuildExportRequest(spans, scope_name, scope_version);
  OtlpExportRequest parsed;
  ASSERT_TRUE(parsed.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      << "not a valid ExportTraceServiceRequest (" << bytes.size() << " bytes)";
  EXPECT_TRUE(MessageDifferencer::Equals(expected, parsed)) << Differences(expected, parsed);
  EXPECT_TRUE(bytes == expected.SerializeAsString())
      << "bytes differ from libprotobuf's (" << bytes.size() << " vs "
      << expected.ByteSizeLong() << ")";
}

std::shared_ptr<const Resource> MakeResource(Attributes attributes) {
  return std::make_shared<Resource>(Resource{std::move(attributes)});
}

TEST(OtlpWireEncoderTest, SampleBatchIsTheTranslatorsRequest) {
  OtlpWireEncoder encoder;
  ExpectSameAsTranslator(encoder, otlp_test::SampleBatch());
}

TEST(OtlpWireEncoderTest, EmptyBatchIsAnEmptyRequest) {
  OtlpWireEncoder encoder;
  EXPECT_TRUE(encoder.Encode({}, "hoptrace", "1").empty());
}

TEST(OtlpWireEncoderTest, EveryAttributeTypeAndEdgeValue) {
  Span span = otlp_test::SampleBatch()[0];
  span.attributes = {
      {"s", std::string("plain")},
      {"s.empty", std::string()},
      {"s.unicode", std::string("caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x99\x82")},
      {"s.nul", std::string("a\0b", 3)},
      {"i.zero", int64_t{0}},
      {"i.one", int64_t{1}},
      {"i.127", int64_t{127}},
      {"i.128", int64_t{128}},
      {"i.minus1", int64_t{-1}},
      {"i.min", std::numeric_limits<int64_t>::min()},
      {"i.max", std::numeric_limits<int64_t>::max()},
      {"d.zero", 0.0},
      {"d.negzero", -0.0},
      {"d.frac", -1234.5678},
      {"d.inf", std::numeric_limits<double>::infinity()},
      {"d.denorm", std::numeric_limits<double>::denorm_min()},
      {"b.true", true},
      {"b.false", false},
      {AttrKey(), std::string("empty key")},
  };
  OtlpWireEncoder encoder;
  ExpectSameAsTranslator(encoder, {span});
}

TEST(OtlpWireEncoderTest, NaNKeepsItsBits) {
  Span span = otlp_test::SampleBatch()[0];
  // MessageDifferencer finds NaN unequal to itself, so only the bytes are compared.
  const double nan = std::bit_cast<double>(uint64_t{0x7ff8000000000123});
  span.attributes = {{"d.nan", nan}};
  OtlpWireEncoder encoder;
  const std::string_view bytes = encoder.Encode({span}, "hoptrace", "1");
  EXPECT_TRUE(bytes == BuildExportRequest({span}, "hoptrace", "1").SerializeAsString());
}

TEST(OtlpWireEncoderTest, SpanFieldsPresentAndAbsent) {
  std::vector<Span> spans(6);
  for (size_t i = 0; i < spans.size(); ++i) {
    spans[i].trace_id = MakeTraceId(static_cast<uint8_t>(i));
    spans[i].span_id = MakeSpanId(static_cast<uint8_t>(0x80 + i));
  }
  // 0: a root span with nothing but ids (kind INTERNAL, no times, no name).
  // 1: every field, flags with bits above sampled, ERROR with a message, events.
  Span& full = spans[1];
  full.parent_span_id = MakeSpanId(0x33);
  full.trace_state = "vendor=opaque,other=\xc3\xa9";
  full.flags = 0xff;
  full.kind = SpanKind::kClient;
  full.name = "GET /x";
  full.start_unix_nano = std::numeric_limits<uint64_t>::max();
  full.end_unix_nano = std::numeric_limits<uint64_t>::max() - 1;
  full.status = StatusCode::kError;
  full.status_message = "boom";
  full.attributes = {{"k", int64_t{1}}};
  full.events = {
      {"first", 1, {{"a", std::string("x")}, {"b", false}}},
      {"", 0, {}},  // an event with nothing in it is still an event
      {"\xe2\x9c\x93", std::numeric_limits<uint64_t>::max(), {{"c", 2.5}}},
  };
  // 2: OK without a message; 3: UNSET with a message (passed through); 4: ERROR, no message.
  spans[2].status = StatusCode::kOk;
  spans[3].status_message = "unset but said";
  spans[4].status = StatusCode::kError;
  // 5: an all-zero trace id and a sampled root (the translator writes the ids as they are).
  spans[5].trace_id = TraceId{};
  spans[5].flags = 0x01;
  spans[5].kind = SpanKind::kServer;
  OtlpWireEncoder encoder;
  ExpectSameAsTranslator(encoder, spans);
}

TEST(OtlpWireEncoderTest, GroupsResourcesLikeTheTranslator) {
  const auto a = MakeResource({{"service.name", std::string("a")}});
  const auto a_again = MakeResource({{"service.name", std::string("a")}});
  const auto b = MakeResource({{"service.name", std::string("b")}, {"process.pid", int64_t{7}}});
  const auto unknown = MakeResource({{"service.name", std::string("unknown_service")}});
  const auto empty = MakeResource({});
  std::vector<std::shared_ptr<const Resource>> order = {a,       b,     nullptr, a_again, empty,
                                                        unknown, b,     a,       nullptr, empty};
  std::vector<Span> spans(order.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    spans[i].trace_id = MakeTraceId(1);
    spans[i].span_id = MakeSpanId(static_cast<uint8_t>(i + 1));
    spans[i].resource = order[i];
  }
  OtlpWireEncoder encoder;
  ExpectSameAsTranslator(encoder, spans);
  // a, b, unknown_service (spans without a Resource and the explicit one), empty.
  OtlpExportRequest parsed;
  const std::string_view bytes = encoder.Encode(spans, "hoptrace", "1.2.3");
  ASSERT_TRUE(parsed.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
  ASSERT_EQ(parsed.resource_spans_size(), 4);
  EXPECT_EQ(parsed.resource_spans(2).scope_spans(0).spans_size(), 3);
  EXPECT_TRUE(parsed.resource_spans(3).has_resource());
  EXPECT_EQ(parsed.resource_spans(3).resource().attributes_size(), 0);
}

TEST(OtlpWireEncoderTest, ScopeWithoutNameOrVersion) {
  OtlpWireEncoder encoder;
  ExpectSameAsTranslator(encoder, otlp_test::SampleBatch(), "", "");
  ExpectSameAsTranslator(encoder, otlp_test::SampleBatch(), "hoptrace", "");
  ExpectSameAsTranslator(encoder, otlp_test::SampleBatch(), "", "0.0.1");
}

// Lengths that take 2, 3 and 4 varint bytes, in every enclosing message at once, and a
// buffer that must grow well past its first size.
TEST(OtlpWireEncoderTest, LongValuesTakeMultiByteLengths) {
  OtlpWireEncoder encoder;
  for (size_t size : {127u, 128u, 300u, 16383u, 16384u, 20000u, 2097151u, 2097152u, 3000000u}) {
    std::vector<Span> spans = otlp_test::SampleBatch();
    spans[0].attributes.push_back({"long", std::string(size, 'x')});
    spans[1].name = std::string(size / 2, 'n');
    spans[1].events[0].attributes.push_back({"long", std::string(size, 'e')});
    spans[2].status_message = std::string(size / 3, 'm');
    ExpectSameAsTranslator(encoder, spans);
    if (HasFailure()) {
      ADD_FAILURE() << "with values of " << size << " bytes";
      return;
    }
  }
}

// One encoder, reused: a large batch, then a small one (the buffer holds the old bytes
// behind the new ones), then large again.
TEST(OtlpWireEncoderTest, ReusedEncoderGivesEachBatchItsOwnBytes) {
  std::vector<Span> large;
  for (int i = 0; i < 200; ++i) {
    for (Span& s : otlp_test::SampleBatch()) large.push_back(std::move(s));
  }
  large[7].attributes.push_back({"big", std::string(100000, 'b')});
  OtlpWireEncoder encoder;
  ExpectSameAsTranslator(encoder, large);
  ExpectSameAsTranslator(encoder, otlp_test::SampleBatch());
  ExpectSameAsTranslator(encoder, {otlp_test::SampleBatch()[2]});
  ExpectSameAsTranslator(encoder, large);
}

// Random batches from a fixed seed: valid UTF-8 strings of lengths around the varint
// boundaries, every value type, events, statuses, shared/equal/missing Resources.
class RandomBatches {
 public:
  explicit RandomBatches(uint64_t seed) : rng_(seed) {
    for (int i = 0; i < 6; ++i) {
      Attributes attrs;
      const size_t n = Below(5);
      for (size_t k = 0; k < n; ++k) attrs.emplace_back(Key(), Value());
      resources_.push_back(MakeResource(attrs));
      // A distinct object with equal attributes joins the same group.
      if (Below(2) == 0) resources_.push_back(MakeResource(attrs));
    }
    resources_.push_back(nullptr);
    resources_.push_back(MakeResource({{"service.name", std::string("unknown_service")}}));
  }

  std::vector<Span> Batch() {
    std::vector<Span> spans(Below(40));
    for (Span& s : spans) {
      for (auto& b : s.trace_id.bytes) b = static_cast<uint8_t>(rng_());
      for (auto& b : s.span_id.bytes) b = static_cast<uint8_t>(rng_());
      if (Below(3) != 0) {
        for (auto& b : s.parent_span_id.bytes) b = static_cast<uint8_t>(rng_());
      }
      if (Below(4) == 0) s.trace_state = String();
      s.flags = static_cast<uint8_t>(Below(3) == 0 ? rng_() : Below(2));
      s.kind = static_cast<SpanKind>(1 + Below(3));
      s.name = String();
      s.start_unix_nano = Time();
      s.end_unix_nano = Time();
      s.status = static_cast<StatusCode>(Below(3));
      if (Below(3) == 0) s.status_message = String();
      const size_t attrs = Below(20);
      for (size_t i = 0; i < attrs; ++i) s.attributes.emplace_back(Key(), Value());
      const size_t events = Below(4) == 0 ? Below(4) : 0;
      for (size_t i = 0; i < events; ++i) {
        SpanEvent e{String(), Time(), {}};
        const size_t n = Below(4);
        for (size_t k = 0; k < n; ++k) e.attributes.emplace_back(Key(), Value());
        s.events.push_back(std::move(e));
      }
      s.resource = resources_[Below(resources_.size())];
    }
    return spans;
  }

 private:
  size_t Below(size_t n) { return static_cast<size_t>(rng_() % n); }

  std::string String() {
    static constexpr std::string_view kPieces[] = {
        "a", "Z", "/", " ", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x99\x82", {"\0", 1}};
    const size_t r = Below(100);
    const size_t length = r < 30 ? 0 : r < 90 ? Below(20) : r < 98 ? 100 + Below(200) : 17000;
    std::string s;
    while (s.size() < length) s += kPieces[Below(std::size(kPieces))];
    return s;
  }

  AttrKey Key() {
    static const AttrKey kKeys[] = {"http.request.method",
                                    "url.path",
                                    "k",
                                    AttrKey(),
                                    *AttrKey::Intern("cl\xc3\xa9.\xe4\xb8\xad"),
                                    *AttrKey::Intern(std::string(200, 'k'))};
    return kKeys[Below(std::size(kKeys))];
  }

  AttrValue Value() {
    switch (Below(4)) {
      case 0:
        return String();
      case 1: {
        static constexpr int64_t kInts[] = {0, 1, -1, 127, 128, 16383, 16384,
                                            std::numeric_limits<int64_t>::min(),
                                            std::numeric_limits<int64_t>::max()};
        return Below(2) == 0 ? kInts[Below(std::size(kInts))] : static_cast<int64_t>(rng_());
      }
      case 2: {
        double d = std::bit_cast<double>(rng_());
        if (std::isnan(d)) d = -0.0;  // NaN != NaN for MessageDifferencer
        return Below(2) == 0 ? d : static_cast<double>(Below(1000)) / 8;
      }
      default:
        return Below(2) == 0;
    }
  }

  uint64_t Time() {
    switch (Below(4)) {
      case 0:
        return 0;
      case 1:
        return std::numeric_limits<uint64_t>::max();
      default:
        return 1700000000000000000ull + rng_() % 1000000000000ull;
    }
  }

  std::mt19937_64 rng_;
  std::vector<std::shared_ptr<const Resource>> resources_;
};

TEST(OtlpWireEncoderTest, RandomBatchesFromAFixedSeed) {
  RandomBatches random(20261207);
  OtlpWireEncoder encoder;
  for (int round = 0; round < 300; ++round) {
    const std::vector<Span> spans = random.Batch();
    ExpectSameAsTranslator(encoder, spans);
    if (HasFailure()) {
      ADD_FAILURE() << "round " << round << " (" << spans.size() << " spans)";
      return;
    }
  }
}

}  // namespace
}  // namespace hoptrace
