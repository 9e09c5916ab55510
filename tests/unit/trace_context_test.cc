// One test per rule of W3C Trace Context (https://www.w3.org/TR/trace-context/);
// many inputs are the ones the W3C test suite (w3c/trace-context test/test.py)
// sends, so a failure here is a failure there.
#include "agent/trace/trace_context.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace hoptrace {
namespace {

constexpr char kSpecSample[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kTraceHex[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kParentHex[] = "00f067aa0ba902b7";
constexpr char kSuiteTp[] = "00-12345678901234567890123456789012-1234567890123456-00";

bool Accepted(std::string_view traceparent) { return ParseTraceparent(traceparent).has_value(); }

// The tracestate a valid traceparent ends up with.
std::string StateOf(std::string_view tracestate) {
  auto ctx = ParseTraceparent(kSuiteTp, tracestate);
  EXPECT_TRUE(ctx.has_value());
  return ctx ? ctx->tracestate : "<traceparent rejected>";
}

// --- traceparent ---------------------------------------------------------

TEST(TraceparentTest, ParsesSpecSample) {
  auto ctx = ParseTraceparent(kSpecSample);
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->trace_id.Hex(), kTraceHex);
  EXPECT_EQ(ctx->parent_id.Hex(), kParentHex);
  EXPECT_EQ(ctx->trace_id.bytes[0], 0x4b);
  EXPECT_EQ(ctx->parent_id.bytes[7], 0xb7);
  EXPECT_EQ(ctx->flags, 0x01);
  EXPECT_TRUE(ctx->sampled());
  EXPECT_EQ(ctx->tracestate, "");
}

TEST(TraceparentTest, NotSampledWhenFlagsAreZero) {
  auto ctx = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->flags, 0x00);
  EXPECT_FALSE(ctx->sampled());
}

// "a flag 00000001 could be encoded as 01 in hex, or 09 in hex if present with
// the flag 00001000. A common mistake in bit fields is forgetting to mask".
TEST(TraceparentTest, SampledIsBitZeroWhateverTheOtherBits) {
  auto with_other_bit = ParseTraceparent("00-12345678901234567890123456789012-1234567890123456-09");
  ASSERT_TRUE(with_other_bit.has_value());
  EXPECT_TRUE(with_other_bit->sampled());
  auto without = ParseTraceparent("00-12345678901234567890123456789012-1234567890123456-fe");
  ASSERT_TRUE(without.has_value());
  EXPECT_FALSE(without->sampled());
}

TEST(TraceparentTest, Version00KeepsUnknownFlagBitsAsSent) {
  auto ctx = ParseTraceparent("00-12345678901234567890123456789012-1234567890123456-fb");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->flags, 0xfb);
}

TEST(TraceparentTest, RejectsEmptyAndGarbage) {
  EXPECT_FALSE(Accepted(""));
  EXPECT_FALSE(Accepted("   "));
  EXPECT_FALSE(Accepted("-"));
  EXPECT_FALSE(Accepted("00"));
  EXPECT_FALSE(Accepted("00-"));
  EXPECT_FALSE(Accepted("hello world, this is not a traceparent header at all!!!"));
}

// version-format for 00 is exactly trace-id "-" parent-id "-" trace-flags.
TEST(TraceparentTest, Version00MustBeExactly55Chars) {
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-01."));
  EXPECT_FALSE(Accepted(
      "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-01-"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-0"));
}

TEST(TraceparentTest, RejectsVersionOfWrongLength) {
  EXPECT_FALSE(Accepted("0-12345678901234567890123456789012-1234567890123456-01"));
  EXPECT_FALSE(Accepted("000-12345678901234567890123456789012-1234567890123456-01"));
  EXPECT_FALSE(Accepted("0000-12345678901234567890123456789012-1234567890123456-01"));
}

TEST(TraceparentTest, RejectsTraceIdOfWrongLength) {
  EXPECT_FALSE(Accepted("00-123456789012345678901234567890123-1234567890123456-01"));
  EXPECT_FALSE(Accepted("00-1234567890123456789012345678901-1234567890123456-01"));
}

TEST(TraceparentTest, RejectsParentIdOfWrongLength) {
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-12345678901234567-01"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-123456789012345-01"));
}

TEST(TraceparentTest, RejectsFlagsOfWrongLength) {
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-001"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-1"));
}

// HEXDIGLC = DIGIT / "a" / "b" / "c" / "d" / "e" / "f" ; lowercase hex character
TEST(TraceparentTest, RejectsUpperCaseHexInEveryField) {
  EXPECT_FALSE(Accepted("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(Accepted("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"));
  EXPECT_FALSE(Accepted("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A"));
  EXPECT_FALSE(Accepted("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  // One upper-case digit is enough.
  EXPECT_FALSE(Accepted("00-4bf92f3577b34da6a3ce929d0e0e473F-00f067aa0ba902b7-01"));
}

TEST(TraceparentTest, RejectsNonHexCharacters) {
  EXPECT_FALSE(Accepted(".0-12345678901234567890123456789012-1234567890123456-01"));
  EXPECT_FALSE(Accepted("0.-12345678901234567890123456789012-1234567890123456-01"));
  EXPECT_FALSE(Accepted("00-.2345678901234567890123456789012-1234567890123456-01"));
  EXPECT_FALSE(Accepted("00-1234567890123456789012345678901.-1234567890123456-01"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-.234567890123456-01"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-123456789012345.-01"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-.0"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-0."));
  EXPECT_FALSE(Accepted("00-1234567890123456789012345678901g-1234567890123456-01"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-12345678901234 6-01"));
}

TEST(TraceparentTest, RejectsWrongSeparators) {
  EXPECT_FALSE(Accepted("00_12345678901234567890123456789012-1234567890123456-01"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012_1234567890123456-01"));
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456_01"));
  EXPECT_FALSE(Accepted("00 12345678901234567890123456789012 1234567890123456 01"));
  // Right length, dashes moved.
  EXPECT_FALSE(Accepted("00-1234567890123456789012345678901-21234567890123456-01"));
}

// trace-id: "All bytes as zero (00000000000000000000000000000000) is
// considered an invalid value."
TEST(TraceparentTest, RejectsAllZeroTraceId) {
  EXPECT_FALSE(Accepted("00-00000000000000000000000000000000-1234567890123456-01"));
}

// parent-id: "All bytes as zero (0000000000000000) is considered an invalid value."
TEST(TraceparentTest, RejectsAllZeroParentId) {
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-0000000000000000-01"));
}

TEST(TraceparentTest, AcceptsIdsWithOnlyOneNonZeroByte) {
  EXPECT_TRUE(Accepted("00-00000000000000000000000000000001-0000000000000001-00"));
}

// "Version ff is invalid."
TEST(TraceparentTest, RejectsVersionFf) {
  EXPECT_FALSE(Accepted("ff-12345678901234567890123456789012-1234567890123456-01"));
  EXPECT_FALSE(Accepted("ff-12345678901234567890123456789012-1234567890123456-01-extra"));
}

// "If a higher version is detected, the implementation SHOULD try to parse it".
TEST(TraceparentTest, FutureVersionWithExactly55CharsIsParsed) {
  auto ctx = ParseTraceparent("cc-12345678901234567890123456789012-1234567890123456-01");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->trace_id.Hex(), "12345678901234567890123456789012");
  EXPECT_EQ(ctx->parent_id.Hex(), "1234567890123456");
  EXPECT_TRUE(ctx->sampled());
  EXPECT_TRUE(Accepted("01-12345678901234567890123456789012-1234567890123456-00"));
  EXPECT_TRUE(Accepted("fe-12345678901234567890123456789012-1234567890123456-00"));
}

// "Vendors MUST check that the 2 characters are either at the end of the
// string or followed by a dash." Fields after it are not parsed.
TEST(TraceparentTest, FutureVersionWithExtraFieldsIsParsed) {
  auto ctx = ParseTraceparent(
      "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->trace_id.Hex(), "12345678901234567890123456789012");
  EXPECT_EQ(ctx->parent_id.Hex(), "1234567890123456");
  EXPECT_TRUE(Accepted("cc-12345678901234567890123456789012-1234567890123456-01-"));
  // What follows the dash is opaque, even characters a 00 header may not hold.
  EXPECT_TRUE(Accepted("cc-12345678901234567890123456789012-1234567890123456-01-XYZ.!"));
}

TEST(TraceparentTest, FutureVersionWithoutDashAfterFlagsIsRejected) {
  EXPECT_FALSE(Accepted(
      "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like"));
  EXPECT_FALSE(Accepted("cc-12345678901234567890123456789012-1234567890123456-012"));
}

// "If the size of the header is shorter than 55 characters, the vendor should
// not parse the header and should restart the trace."
TEST(TraceparentTest, FutureVersionShorterThan55IsRejected) {
  EXPECT_FALSE(Accepted("cc-12345678901234567890123456789012-1234567890123456-0"));
  EXPECT_FALSE(Accepted("cc-12345678901234567890123456789012-1234567890123456"));
}

TEST(TraceparentTest, FutureVersionFieldsAreCheckedLikeVersion00) {
  EXPECT_FALSE(Accepted("cc-00000000000000000000000000000000-1234567890123456-01-x"));
  EXPECT_FALSE(Accepted("cc-12345678901234567890123456789012-0000000000000000-01-x"));
  EXPECT_FALSE(Accepted("cc-1234567890123456789012345678901A-1234567890123456-01-x"));
  EXPECT_FALSE(Accepted("cc-12345678901234567890123456789012.1234567890123456-01-x"));
}

// A higher version only has "the sampled bit of flags" parsed; its other bits
// may mean something else there, and we re-emit as version 00.
TEST(TraceparentTest, FutureVersionKeepsOnlyTheSampledBit) {
  auto ctx = ParseTraceparent("cc-12345678901234567890123456789012-1234567890123456-ff");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->flags, kTraceFlagSampled);
  ctx = ParseTraceparent("cc-12345678901234567890123456789012-1234567890123456-fe");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->flags, 0);
}

// An HTTP field value may carry leading and trailing OWS; the W3C suite sends these.
TEST(TraceparentTest, TrimsSpacesAndTabsAroundTheValue) {
  for (const char* tp : {" 00-12345678901234567890123456789012-1234567890123456-01",
                         "\t00-12345678901234567890123456789012-1234567890123456-01",
                         "00-12345678901234567890123456789012-1234567890123456-01 ",
                         "00-12345678901234567890123456789012-1234567890123456-01\t",
                         "\t 00-12345678901234567890123456789012-1234567890123456-01 \t"}) {
    auto ctx = ParseTraceparent(tp);
    ASSERT_TRUE(ctx.has_value()) << "'" << tp << "'";
    EXPECT_EQ(ctx->trace_id.Hex(), "12345678901234567890123456789012");
  }
}

TEST(TraceparentTest, OtherWhitespaceIsNotTrimmed) {
  EXPECT_FALSE(Accepted("00-12345678901234567890123456789012-1234567890123456-01\r\n"));
  EXPECT_FALSE(Accepted("\n00-12345678901234567890123456789012-1234567890123456-01"));
}

// --- tracestate ----------------------------------------------------------

TEST(TracestateTest, ValidTracestatePassesThroughUnchanged) {
  EXPECT_EQ(StateOf("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
}

TEST(TracestateTest, SurroundingOwsIsTrimmedInnerOwsKept) {
  EXPECT_EQ(StateOf(" \tfoo=1 \t , \t bar=2, \t baz=3\t "), "foo=1 \t , \t bar=2, \t baz=3");
  EXPECT_TRUE(IsValidTracestate("foo=1\t \t,\t \tbar=2,\t \tbaz=3"));
}

TEST(TracestateTest, AbsentOrEmptyTracestateIsEmpty) {
  EXPECT_EQ(StateOf(""), "");
  EXPECT_EQ(StateOf("   "), "");
  EXPECT_TRUE(IsValidTracestate(""));
}

// "Empty and whitespace-only list members are allowed."
TEST(TracestateTest, EmptyListMembersAreAllowed) {
  EXPECT_TRUE(IsValidTracestate("foo=1,,bar=2"));
  EXPECT_TRUE(IsValidTracestate(",foo=1, \t ,bar=2,"));
  EXPECT_TRUE(IsValidTracestate(",,,"));
}

// "Only one entry per key is allowed", but the receiver of a list that
// repeats a key may keep the duplicates or drop one (the W3C suite's
// test_tracestate_duplicated_keys); the list itself stays valid.
TEST(TracestateTest, DuplicateKeysDoNotInvalidateTheList) {
  EXPECT_TRUE(IsValidTracestate("foo=1,foo=1"));
  EXPECT_TRUE(IsValidTracestate("foo=1,bar=2,foo=2"));
  EXPECT_TRUE(IsValidTracestate("t@v=1,t@v=2"));
}

// "There can be a maximum of 32 list-members in a list."
TEST(TracestateTest, AtMost32Members) {
  std::string list;
  for (int i = 1; i <= 32; ++i) {
    if (i > 1) list += ',';
    list += "bar" + std::to_string(i) + "=" + std::to_string(i);
  }
  EXPECT_TRUE(IsValidTracestate(list));
  EXPECT_TRUE(IsValidTracestate(list + ",,")) << "empty members do not count";
  EXPECT_FALSE(IsValidTracestate(list + ",bar33=33"));
}

// key = ( lcalpha / DIGIT ) 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@" )
TEST(TracestateTest, KeyGrammar) {
  EXPECT_TRUE(IsValidTracestate("abcdefghijklmnopqrstuvwxyz0123456789_-*/@=1"));
  EXPECT_TRUE(IsValidTracestate(std::string(256, 'z') + "=1"));
  EXPECT_FALSE(IsValidTracestate(std::string(257, 'z') + "=1"));
  EXPECT_TRUE(IsValidTracestate("1foo=1")) << "a key may start with a digit";
  EXPECT_FALSE(IsValidTracestate("FOO=1"));
  EXPECT_FALSE(IsValidTracestate("foo.bar=1"));
  EXPECT_FALSE(IsValidTracestate("foo =1"));
  EXPECT_FALSE(IsValidTracestate("_foo=1"));
  EXPECT_FALSE(IsValidTracestate("=1"));
}

// "@" anywhere after the first character (test_tracestate_key_illegal_vendor_format and
// test_tracestate_key_length_limit of the W3C suite).
TEST(TracestateTest, AtSignsInKeys) {
  EXPECT_TRUE(IsValidTracestate("1tenant@vendor=1"));
  EXPECT_TRUE(IsValidTracestate("foo@=1,bar=2"));
  EXPECT_TRUE(IsValidTracestate("foo@@bar=1,bar=2"));
  EXPECT_TRUE(IsValidTracestate("foo@bar@baz=1,bar=2"));
  EXPECT_TRUE(IsValidTracestate("t@1v=1"));
  EXPECT_TRUE(IsValidTracestate(std::string(241, 't') + "@" + std::string(14, 'v') + "=1"));
  EXPECT_TRUE(IsValidTracestate(std::string(242, 't') + "@v=1"));
  EXPECT_TRUE(IsValidTracestate("t@" + std::string(15, 'v') + "=1"));
  EXPECT_TRUE(IsValidTracestate(std::string(255, 't') + "@=1"));
  EXPECT_FALSE(IsValidTracestate(std::string(256, 't') + "@=1"));
  EXPECT_FALSE(IsValidTracestate("@foo=1,bar=2"));
}

// value = 0*255(chr) nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E; chr = %x20 / nblk-chr
TEST(TracestateTest, ValueGrammar) {
  std::string all;
  for (char c = 0x20; c <= 0x7e; ++c) {
    if (c != ',' && c != '=') all += c;
  }
  // Leading spaces "MUST be preserved as part of the value".
  EXPECT_EQ(StateOf("foo=" + all), "foo=" + all);
  EXPECT_TRUE(IsValidTracestate("foo=" + std::string(256, 'v')));
  EXPECT_FALSE(IsValidTracestate("foo=" + std::string(257, 'v')));
  EXPECT_TRUE(IsValidTracestate("foo= x")) << "leading space is part of the value";
  EXPECT_FALSE(IsValidTracestate("foo=bar=baz"));
  EXPECT_FALSE(IsValidTracestate("foo=,bar=3")) << "value has at least one nblk-chr";
  EXPECT_FALSE(IsValidTracestate("foo= ")) << "only a space, which is trailing OWS";
  EXPECT_FALSE(IsValidTracestate("foo=a\tb"));
  EXPECT_FALSE(IsValidTracestate("foo=a\x7f"));
  EXPECT_FALSE(IsValidTracestate("foo=caf\xc3\xa9"));
  EXPECT_FALSE(IsValidTracestate("foo"));
}

// "failure to parse tracestate MUST NOT affect the parsing of traceparent".
TEST(TracestateTest, InvalidTracestateIsDroppedButTraceparentKept) {
  auto ctx = ParseTraceparent(kSpecSample, "foo=1,FOO=2");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(ctx->trace_id.Hex(), kTraceHex);
  EXPECT_TRUE(ctx->sampled());
  EXPECT_EQ(ctx->tracestate, "");
}

// "If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate."
TEST(TracestateTest, InvalidTraceparentDiscardsValidTracestate) {
  EXPECT_FALSE(
      ParseTraceparent("00-00000000000000000000000000000000-1234567890123456-01", "foo=1"));
}

// --- formatting and ids --------------------------------------------------

TEST(FormatTraceparentTest, FormatsVersion00LowerCase) {
  auto ctx = ParseTraceparent(kSpecSample);
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(FormatTraceparent(ctx->trace_id, ctx->parent_id, ctx->flags), kSpecSample);
  EXPECT_EQ(FormatTraceparent(ctx->trace_id, ctx->parent_id, 0xab),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ab");
}

// "Vendors MUST use these fields to construct the new traceparent field
// according to the highest version ... known to the implementation".
TEST(FormatTraceparentTest, FutureVersionIsDowngradedTo00) {
  auto ctx = ParseTraceparent("cc-12345678901234567890123456789012-1234567890123456-01-x");
  ASSERT_TRUE(ctx.has_value());
  EXPECT_EQ(FormatTraceparent(ctx->trace_id, ctx->parent_id, ctx->flags),
            "00-12345678901234567890123456789012-1234567890123456-01");
}

TEST(FormatTraceparentTest, RoundTripsGeneratedIdsAndEveryFlagsByte) {
  IdGenerator gen(42);
  for (int flags = 0; flags <= 0xff; ++flags) {
    const TraceId trace_id = gen.NewTraceId();
    const SpanId span_id = gen.NewSpanId();
    const std::string tp = FormatTraceparent(trace_id, span_id, static_cast<uint8_t>(flags));
    ASSERT_EQ(tp.size(), 55u);
    auto ctx = ParseTraceparent(tp);
    ASSERT_TRUE(ctx.has_value()) << tp;
    EXPECT_EQ(ctx->trace_id, trace_id);
    EXPECT_EQ(ctx->parent_id, span_id);
    EXPECT_EQ(ctx->flags, flags);
  }
}

TEST(IdGeneratorTest, SameSeedGivesSameIds) {
  IdGenerator a(7), b(7), c(8);
  const TraceId ta = a.NewTraceId();
  const SpanId sa = a.NewSpanId();
  EXPECT_EQ(ta, b.NewTraceId());
  EXPECT_EQ(sa, b.NewSpanId());
  EXPECT_NE(ta, c.NewTraceId());
}

TEST(IdGeneratorTest, IdsAreValidAndDistinct) {
  IdGenerator gen(0);  // seed 0 included on purpose: it must not mean "zero ids"
  std::set<std::string> trace_ids, span_ids;
  for (int i = 0; i < 10000; ++i) {
    const TraceId t = gen.NewTraceId();
    const SpanId s = gen.NewSpanId();
    ASSERT_TRUE(t.IsValid());
    ASSERT_TRUE(s.IsValid());
    trace_ids.insert(t.Hex());
    span_ids.insert(s.Hex());
  }
  EXPECT_EQ(trace_ids.size(), 10000u);
  EXPECT_EQ(span_ids.size(), 10000u);
}

TEST(IdGeneratorTest, DefaultGeneratorsAreSeededDifferently) {
  IdGenerator a, b;
  EXPECT_TRUE(a.NewTraceId().IsValid());
  EXPECT_NE(a.NewTraceId(), b.NewTraceId());
}

}  // namespace
}  // namespace hoptrace
