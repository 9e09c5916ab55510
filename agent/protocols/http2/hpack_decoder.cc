#include "agent/protocols/http2/hpack_decoder.h"

#include <array>
#include <utility>

#include "agent/protocols/http2/huffman.h"

namespace hoptrace::http2 {
namespace {

struct StaticEntry {
  std::string_view name;
  std::string_view value;
};

// RFC 7541 Appendix A; index 1 is the first element.
constexpr std::array<StaticEntry, 61> kStaticTable = {{
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
}};
constexpr uint64_t kStaticEntries = kStaticTable.size();

// RFC 7541 4.1: "The size of an entry is the sum of its name's length in
// octets, its value's length in octets, and 32."
constexpr size_t kEntryOverhead = 32;

enum class Step { kOk, kTruncated, kInvalid };

// RFC 7541 5.1 integer with an N-bit prefix. Values past 2^32 are rejected:
// no index, length or size HPACK carries is that large in practice, and the
// bound keeps the shifts defined.
Step DecodeInt(std::string_view* in, int prefix_bits, uint64_t* out) {
  if (in->empty()) return Step::kTruncated;
  const uint64_t mask = (1u << prefix_bits) - 1;
  uint64_t value = static_cast<uint8_t>((*in)[0]) & mask;
  size_t i = 1;
  if (value == mask) {
    for (int shift = 0;; shift += 7) {
      if (i >= in->size()) return Step::kTruncated;
      const auto b = static_cast<uint8_t>((*in)[i++]);
      if (shift > 28) return Step::kInvalid;
      value += uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) break;
    }
    if (value > 0xffffffffu) return Step::kInvalid;
  }
  in->remove_prefix(i);
  *out = value;
  return Step::kOk;
}

// RFC 7541 5.2 string literal: H bit, 7-bit prefix length, octets.
Step DecodeString(std::string_view* in, std::string* out) {
  if (in->empty()) return Step::kTruncated;
  const bool huffman = static_cast<uint8_t>((*in)[0]) & 0x80;
  std::string_view rest = *in;
  uint64_t length = 0;
  if (Step s = DecodeInt(&rest, 7, &length); s != Step::kOk) return s;
  if (rest.size() < length) return Step::kTruncated;
  out->clear();
  const std::string_view octets = rest.substr(0, length);
  if (huffman) {
    if (!HuffmanDecode(octets, out)) return Step::kInvalid;
  } else {
    out->assign(octets);
  }
  rest.remove_prefix(length);
  *in = rest;
  return Step::kOk;
}

HpackDecoder::Result ToResult(Step s) {
  return s == Step::kTruncated ? HpackDecoder::Result::kTruncated : HpackDecoder::Result::kInvalid;
}

}  // namespace

HpackDecoder::HpackDecoder(bool (*keep_value)(std::string_view name), size_t max_tracked_size)
    : keep_value_(keep_value), max_tracked_size_(max_tracked_size) {}

HpackDecoder::Lookup HpackDecoder::Find(uint64_t index, std::string_view* name,
                                        std::string_view* value) const {
  // 2.3.3: "Indices strictly greater than the sum of the lengths of both
  // tables MUST be treated as a decoding error"; index 0 likewise (6.1).
  if (index == 0) return Lookup::kInvalid;
  if (index <= kStaticEntries) {
    *name = kStaticTable[index - 1].name;
    *value = kStaticTable[index - 1].value;
    return Lookup::kFound;
  }
  const uint64_t dynamic = index - kStaticEntries - 1;
  if (dynamic < entries_.size()) {
    *name = entries_[dynamic].name;
    *value = entries_[dynamic].value;
    return Lookup::kFound;
  }
  return unknown_tail_ ? Lookup::kUnknown : Lookup::kInvalid;
}

void HpackDecoder::EvictTo(size_t limit) {
  while (size_ > limit && !entries_.empty()) {
    size_ -= entries_.back().size;
    entries_.pop_back();
  }
}

void HpackDecoder::Insert(std::string_view name, std::string_view value) {
  const size_t size = name.size() + value.size() + kEntryOverhead;
  // 4.4: entries are evicted from the end until the new one fits. If the
  // known entries alone leave no room, every older (unknown) entry went first.
  if (size_ + size > max_size_) unknown_tail_ = false;
  if (size > max_size_) {
    // "an attempt to add an entry larger than the maximum size causes the
    // table to be emptied of all existing entries and results in an empty table"
    entries_.clear();
    size_ = 0;
    return;
  }
  EvictTo(max_size_ - size);
  const bool keep = keep_value_ == nullptr || keep_value_(name);
  entries_.push_front(Entry{std::string(name), keep ? std::string(value) : std::string(), size});
  size_ += size;
  if (size_ > max_tracked_size_) {
    EvictTo(max_tracked_size_);
    unknown_tail_ = true;  // forgotten, not evicted: they still exist for the peer
  }
}

void HpackDecoder::SetMaxSize(uint64_t size) {
  max_size_ = static_cast<uint32_t>(size);
  if (size_ > max_size_) unknown_tail_ = false;  // eviction reached the known entries
  if (size_ > max_size_) EvictTo(max_size_);
  if (max_size_ == 0) unknown_tail_ = false;
}

void HpackDecoder::LoseState() {
  entries_.clear();
  size_ = 0;
  unknown_tail_ = true;
}

HpackDecoder::Result HpackDecoder::Decode(std::string_view block, const FieldFn& on_field) {
  // Past an invalid representation nothing about the encoder can be trusted.
  const auto fail = [this](Step s) {
    if (s == Step::kInvalid) LoseState();
    return ToResult(s);
  };
  while (!block.empty()) {
    const auto first = static_cast<uint8_t>(block[0]);
    std::string_view rest = block;
    uint64_t index = 0;
    if (first & 0x80) {
      // 6.1 Indexed Header Field: 1xxxxxxx, 7-bit index.
      if (Step s = DecodeInt(&rest, 7, &index); s != Step::kOk) return fail(s);
      std::string_view name, value;
      switch (Find(index, &name, &value)) {
        case Lookup::kFound:
          on_field(name, value);
          break;
        case Lookup::kUnknown:
          ++unknown_fields_;
          break;
        case Lookup::kInvalid:
          LoseState();
          return Result::kInvalid;
      }
      block = rest;
      continue;
    }
    if ((first & 0xe0) == 0x20) {
      // 6.3 Dynamic Table Size Update: 001xxxxx, 5-bit max size. A peer may
      // not exceed the SETTINGS value; a size we did not see announced is
      // believed (SETTINGS may have been lost) within the memory bound.
      if (Step s = DecodeInt(&rest, 5, &index); s != Step::kOk) return fail(s);
      if (index > settings_max_) settings_max_ = static_cast<uint32_t>(index);
      SetMaxSize(index);
      block = rest;
      continue;
    }
    // 6.2 Literal Header Field: with incremental indexing 01xxxxxx (6-bit
    // index), without indexing 0000xxxx, never indexed 0001xxxx (4-bit).
    const bool indexing = (first & 0xc0) == 0x40;
    if (Step s = DecodeInt(&rest, indexing ? 6 : 4, &index); s != Step::kOk) return fail(s);
    bool name_known = true;
    if (index == 0) {
      if (Step s = DecodeString(&rest, &name_buf_); s != Step::kOk) return fail(s);
    } else {
      std::string_view name, unused;
      switch (Find(index, &name, &unused)) {
        case Lookup::kFound:
          name_buf_.assign(name);
          break;
        case Lookup::kUnknown:
          name_known = false;
          break;
        case Lookup::kInvalid:
          LoseState();
          return Result::kInvalid;
      }
    }
    if (Step s = DecodeString(&rest, &value_buf_); s != Step::kOk) return fail(s);
    if (name_known) {
      on_field(name_buf_, value_buf_);
    } else {
      ++unknown_fields_;
    }
    if (indexing) {
      if (name_known) {
        Insert(name_buf_, value_buf_);
      } else {
        // An entry of unknown size: eviction can no longer be followed.
        LoseState();
      }
    }
    block = rest;
  }
  return Result::kOk;
}

}  // namespace hoptrace::http2
