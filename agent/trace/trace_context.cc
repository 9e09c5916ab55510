// W3C Trace Context, https://www.w3.org/TR/trace-context/ (Level 1, a W3C
// Recommendation). Where Level 2 (https://www.w3.org/TR/trace-context-2/)
// agrees with Level 1 we follow both; where they differ we follow Level 1 and
// say so below.
#include "agent/trace/trace_context.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <functional>
#include <string_view>
#include <vector>

namespace hoptrace {
namespace {

// A version 00 traceparent is exactly this long: 2 + 1 + 32 + 1 + 16 + 1 + 2.
constexpr size_t kTraceparentLength = 55;
constexpr size_t kTraceIdOffset = 3;
constexpr size_t kParentIdOffset = 36;
constexpr size_t kFlagsOffset = 53;

// "There can be a maximum of 32 list-members in a list."
constexpr size_t kMaxTracestateMembers = 32;

// Optional whitespace, RFC 7230 section 3.2.3: OWS = *( SP / HTAB ).
bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// HEXDIGLC = DIGIT / "a" / "b" / "c" / "d" / "e" / "f" ; lowercase hex character
// Upper-case hex is not HEXDIGLC, so it is rejected, not folded.
int HexDigitLc(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes 2*N lower-case hex digits into bytes; false on any other character.
template <size_t N>
bool DecodeHex(std::string_view hex, std::array<uint8_t, N>* out) {
  if (hex.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    const int hi = HexDigitLc(hex[2 * i]);
    const int lo = HexDigitLc(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The key grammar of the current specification (Level 2, and Level 1 as
// amended; the W3C test suite checks it since w3c/trace-context#584):
//   key = ( lcalpha / DIGIT ) 0*255( keychar )
//   keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"
// It replaced Level 1's simple-key / tenant-id "@" system-id split, which
// rejected keys such as "foo@" and "t@" followed by 15 characters.
bool IsKeyChar(char c) {
  return IsLcAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '*' || c == '/' || c == '@';
}

bool IsValidKey(std::string_view key) {
  if (key.empty() || key.size() > 256 || !(IsLcAlpha(key[0]) || IsDigit(key[0]))) return false;
  return std::all_of(key.begin() + 1, key.end(), IsKeyChar);
}

// value    = 0*255(chr) nblk-chr
// nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
// chr      = %x20 / nblk-chr
// "all leading spaces MUST be preserved as part of the value and all trailing
// spaces are considered to be optional whitespace": the caller has already
// trimmed the list member, so a trailing space cannot reach here, but the check
// stays so the function matches the grammar on its own.
bool IsValidValue(std::string_view value) {
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; });
}

}  // namespace

bool IsValidTracestate(std::string_view value) {
  // list = list-member 0*31( OWS "," OWS list-member )
  // list-member = key "=" value
  // list-member = OWS
  // "Empty and whitespace-only list members are allowed"; like the W3C test
  // suite we do not count them towards the 32-member limit, since they carry
  // nothing and appear when several tracestate fields are joined.
  size_t members = 0;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    const std::string_view member = TrimOws(value.substr(pos, comma - pos));
    pos = comma + 1;
    if (member.empty()) continue;

    // The key never contains "=", so the first one separates key from value;
    // any later "=" makes the value invalid.
    const size_t eq = member.find('=');
    if (eq == std::string_view::npos) return false;
    const std::string_view key = member.substr(0, eq);
    if (!IsValidKey(key) || !IsValidValue(member.substr(eq + 1))) return false;
    // A list that repeats a key is passed on as it is: "Only one entry per key
    // is allowed", but a receiver may either keep the duplicates or drop one
    // (what the W3C suite accepts); dropping the whole list is not allowed.
    if (++members > kMaxTracestateMembers) return false;
  }
  return true;
}

std::optional<TraceContext> ParseTraceparent(std::string_view traceparent,
                                             std::string_view tracestate) {
  // A header field value may carry leading and trailing OWS (RFC 7230 3.2.4);
  // it is not part of the value. The W3C test suite sends " 00-...-01\t".
  const std::string_view tp = TrimOws(traceparent);

  // version = 2HEXDIGLC ; this document assumes version 00. Version ff is forbidden
  // "When the version prefix cannot be parsed (it's not 2 hex characters
  // followed by a dash (-)), the implementation should restart the trace."
  if (tp.size() < 3 || tp[2] != '-') return std::nullopt;
  std::array<uint8_t, 1> version;
  if (!DecodeHex(tp.substr(0, 2), &version) || version[0] == 0xff) return std::nullopt;

  if (version[0] == 0x00) {
    // version-format = trace-id "-" parent-id "-" trace-flags, nothing more.
    if (tp.size() != kTraceparentLength) return std::nullopt;
  } else {
    // "If a higher version is detected ... If the size of the header is
    // shorter than 55 characters, the vendor should not parse the header and
    // should restart the trace." and for flags: "Vendors MUST check that the 2
    // characters are either at the end of the string or followed by a dash."
    if (tp.size() < kTraceparentLength) return std::nullopt;
    if (tp.size() > kTraceparentLength && tp[kTraceparentLength] != '-') return std::nullopt;
  }

  // The same checks serve version 00 and the first 55 characters of a higher
  // version: the later version is "additive to the current one".
  if (tp[kParentIdOffset - 1] != '-' || tp[kFlagsOffset - 1] != '-') return std::nullopt;
  TraceContext ctx;
  std::array<uint8_t, 1> flags;
  if (!DecodeHex(tp.substr(kTraceIdOffset, 32), &ctx.trace_id.bytes) ||
      !DecodeHex(tp.substr(kParentIdOffset, 16), &ctx.parent_id.bytes) ||
      !DecodeHex(tp.substr(kFlagsOffset, 2), &flags)) {
    return std::nullopt;
  }
  // trace-id: "All bytes as zero ... is considered an invalid value."
  // parent-id: "All bytes as zero ... is considered an invalid value."
  if (!ctx.trace_id.IsValid() || !ctx.parent_id.IsValid()) return std::nullopt;

  // Version 00: the flags byte is kept as sent. Bit 0 is "sampled"; Level 2
  // gives bit 1 a meaning ("random"), and the context records what the caller
  // said, so nothing is masked here. Whoever builds an outgoing traceparent
  // decides which bits to send ("Vendors MUST set those [other flags] to zero").
  // A higher version: "Parse the sampled bit of flags" and "Vendors MUST NOT
  // parse or assume anything about unknown fields for this version"; the other
  // bits may mean something else there, and we re-emit as 00, so keep only
  // the sampled bit.
  ctx.flags = version[0] == 0x00 ? flags[0] : (flags[0] & kTraceFlagSampled);

  // "failure to parse tracestate MUST NOT affect the parsing of traceparent":
  // an invalid list is dropped whole, a valid one passes through unchanged.
  const std::string_view ts = TrimOws(tracestate);
  if (IsValidTracestate(ts)) ctx.tracestate = std::string(ts);
  return ctx;
}

std::string FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(kTraceparentLength);
  // "Vendors MUST use these fields to construct the new traceparent field
  // according to the highest version of the specification known to the
  // implementation (in this specification it is 00)."
  out += "00-";
  out += trace_id.Hex();
  out += '-';
  out += span_id.Hex();
  out += '-';
  out += kDigits[flags >> 4];
  out += kDigits[flags & 0xf];
  return out;
}

namespace {

// mt19937_64 has 312 words of state; seeding it from one 64-bit value would
// let only 2^64 of its streams ever be used, so feed it several words.
std::mt19937_64 SeededFromRandomDevice() {
  std::random_device rd;
  std::array<std::random_device::result_type, 16> words;
  std::generate(words.begin(), words.end(), std::ref(rd));
  std::seed_seq seq(words.begin(), words.end());
  return std::mt19937_64(seq);
}

template <size_t N>
void FillNonZero(std::mt19937_64& rng, std::array<uint8_t, N>* bytes) {
  static_assert(N % 8 == 0, "whole 64-bit draws");
  // All-zero ids are invalid on the wire; the chance of drawing one is
  // 2^-64 or less, so redrawing costs nothing in practice.
  uint64_t any = 0;
  do {
    for (size_t i = 0; i < N; i += 8) {
      uint64_t word = rng();
      any |= word;
      // Least significant byte first, as a byte loop would store them.
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(bytes->data() + i, &word, 8);
      } else {
        for (size_t j = i; j < i + 8; ++j, word >>= 8) (*bytes)[j] = static_cast<uint8_t>(word);
      }
    }
  } while (any == 0);
}

}  // namespace

IdGenerator::IdGenerator() : rng_(SeededFromRandomDevice()) {}

IdGenerator::IdGenerator(uint64_t seed) : rng_(seed) {}

TraceId IdGenerator::NewTraceId() {
  // Level 2's "random" flag asks for at least the right-most 7 bytes to be
  // random; all 16 are, so callers may set that flag on ids from here.
  TraceId id;
  FillNonZero(rng_, &id.bytes);
  return id;
}

SpanId IdGenerator::NewSpanId() {
  SpanId id;
  FillNonZero(rng_, &id.bytes);
  return id;
}

}  // namespace hoptrace
