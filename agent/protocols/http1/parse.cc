// HTTP/1.x head parsing (RFC 9112 sections 2-5, RFC 9110 section 5).
//
// The parser is stateless: it rescans from the start of the head on every
// call, so it never has to remember a half-parsed line. Each line is found
// by one scan for LF, CR and NUL (16 octets a step), and fields are checked
// through a 256-entry table. Kept fields are collected as views of the input;
// only a head that parsed is copied out, fields and text in one block
// (Message::text): one allocation.
#include "agent/protocols/http1/parse.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace hoptrace::http1 {
namespace {

// Kept fields past this many are not stored (a head of repeated "Host:" lines
// would otherwise cost a vector entry per 6 bytes); framing still applies.
constexpr size_t kMaxKeptHeaders = 64;
// 18 decimal digits always fit in int64_t.
constexpr size_t kMaxContentLengthDigits = 18;

constexpr std::array<bool, 256> MakeTcharTable() {
  // RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
  //   / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kTchar = MakeTcharTable();

bool IsTchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }
// VCHAR / obs-text: every octet above SP except DEL.
bool IsVisible(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f;
}
bool IsOws(char c) { return c == ' ' || c == '\t'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
constexpr char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// b must be lower case.
constexpr bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != b[i]) return false;
  }
  return true;
}

// The length of the token (RFC 9110 5.6.2) at the front of s. Four octets a
// step: field names are most of what a head's bytes are checked one by one.
[[gnu::always_inline]] inline size_t TokenLength(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i + 4 <= n && (kTchar[p[i]] & kTchar[p[i + 1]] & kTchar[p[i + 2]] & kTchar[p[i + 3]])) {
    i += 4;
  }
  while (i < n && kTchar[p[i]]) ++i;
  return i;
}

[[gnu::always_inline]] inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

struct Line {
  std::string_view text;  // without the LF and a CR right before it
  size_t next = 0;        // offset just past the LF
  bool complete = false;  // an LF was found
  // RFC 9110 5.5: "Field values containing CR, LF, or NUL characters are
  // invalid and dangerous": text holds a CR or a NUL. (LF cannot occur inside
  // a line; other CTLs "MAY" be retained, so they are. A start line with
  // either is invalid anyway: neither is a token, target or reason octet.)
  bool has_cr_or_nul = false;
};

// The offset of the first LF, CR or NUL in data[pos..], or data.size(): the
// one scan of a line, where memchr took three (the LF, then CR and NUL in the
// field value), 16 octets a step.
[[gnu::always_inline]] inline size_t FindLineSpecial(std::string_view data, size_t pos) {
  const char* p = data.data();
  const size_t n = data.size();
  size_t i = pos;
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i nul = _mm_setzero_si128();
  auto specials = [&](size_t at) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at));
    const __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)),
                                   _mm_cmpeq_epi8(v, nul));
    return static_cast<unsigned>(_mm_movemask_epi8(m));
  };
  for (; i + 16 <= n; i += 16) {
    if (const unsigned bits = specials(i)) return i + static_cast<size_t>(__builtin_ctz(bits));
  }
  if (i < n && n >= 16) {
    // The 16 octets that end the data, those before i (scanned, or before
    // pos) masked out: no read past the end, none byte by byte.
    const unsigned skip = static_cast<unsigned>(16 - (n - i));
    if (const unsigned bits = (specials(n - 16) >> skip) << skip) {
      return n - 16 + static_cast<size_t>(__builtin_ctz(bits));
    }
    return n;
  }
#endif
  for (; i < n; ++i) {
    if (p[i] == '\n' || p[i] == '\r' || p[i] == '\0') return i;
  }
  return n;
}

// RFC 9112 2.2: "a recipient MAY recognize a single LF as a line terminator
// and ignore any preceding CR". An incomplete line also loses a trailing CR:
// its LF may be the next byte to arrive. Forced inline (as ParseFieldLine):
// returning the struct through memory costs ~10% of a whole parse.
[[gnu::always_inline]] inline Line NextLine(std::string_view data, size_t pos) {
  Line line;
  const size_t n = data.size();
  const size_t first = FindLineSpecial(data, pos);
  if (first == n || data[first] == '\n') {  // no CR or NUL before the LF, if any
    line.complete = first < n;
    line.text = data.substr(pos, first - pos);
    line.next = first + (line.complete ? 1 : 0);
    return line;
  }
  if (data[first] == '\r' && first + 1 < n && data[first + 1] == '\n') {  // CRLF: most lines
    line.complete = true;
    line.text = data.substr(pos, first - pos);
    line.next = first + 2;
    return line;
  }
  // A CR or NUL first, not the CR of a CRLF: find the LF, and whether that
  // CR or NUL is the CR the text loses.
  const void* lf = std::memchr(data.data() + first, '\n', n - first);
  line.complete = lf != nullptr;
  const size_t end = lf ? static_cast<size_t>(static_cast<const char*>(lf) - data.data()) : n;
  line.next = end + (lf ? 1 : 0);
  size_t text_end = end;
  if (text_end > pos && data[text_end - 1] == '\r') --text_end;
  line.text = data.substr(pos, text_end - pos);
  line.has_cr_or_nul = first < text_end;
  return line;
}

struct StartLine {
  std::string_view method, target, reason;
  int status = 0;
  int minor = 1;
};

// RFC 9112 2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT; only major 1
// is HTTP/1.x. `s` is everything from the version to the end of the line.
ParseState ParseVersion(std::string_view s, bool complete, int* minor) {
  constexpr std::string_view kName = "HTTP/1.";
  const size_t n = std::min(s.size(), kName.size());
  if (s.substr(0, n) != kName.substr(0, n)) return ParseState::kInvalid;
  if (s.size() <= kName.size()) return complete ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  if (!IsDigit(s[kName.size()]) || s.size() > kName.size() + 1) return ParseState::kInvalid;
  *minor = s[kName.size()] - '0';
  return complete ? ParseState::kSuccess : ParseState::kNeedsMoreData;
}

// RFC 9112 3: request-line = method SP request-target SP HTTP-version
// method = token; the request-target has no whitespace in any of its forms.
ParseState ParseRequestLine(std::string_view line, bool complete, StartLine* out) {
  const ParseState short_line = complete ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  size_t i = 0;
  while (i < line.size() && IsTchar(line[i])) ++i;
  if (i == line.size()) return short_line;
  if (i == 0 || line[i] != ' ') return ParseState::kInvalid;
  out->method = line.substr(0, i);
  const size_t target = ++i;
  while (i < line.size() && IsVisible(line[i])) ++i;
  if (i == line.size()) return short_line;
  if (i == target || line[i] != ' ') return ParseState::kInvalid;
  out->target = line.substr(target, i - target);
  return ParseVersion(line.substr(i + 1), complete, &out->minor);
}

// RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
// status-code = 3DIGIT; reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
// "HTTP/1.1 204" (no SP before an empty reason) is accepted: servers send it.
ParseState ParseStatusLine(std::string_view line, bool complete, StartLine* out) {
  constexpr size_t kVersionLen = 8;  // "HTTP/1.x"
  constexpr size_t kCodeEnd = kVersionLen + 4;
  if (line.size() <= kVersionLen) {
    if (complete) return ParseState::kInvalid;
    return ParseVersion(line, false, &out->minor) == ParseState::kInvalid
               ? ParseState::kInvalid
               : ParseState::kNeedsMoreData;
  }
  if (ParseVersion(line.substr(0, kVersionLen), true, &out->minor) != ParseState::kSuccess ||
      line[kVersionLen] != ' ') {
    return ParseState::kInvalid;
  }
  int code = 0;
  size_t i = kVersionLen + 1;
  for (; i < kCodeEnd && i < line.size(); ++i) {
    // RFC 9110 15: "All valid status codes are within the range of 100 to
    // 599"; 600-999 are let through because some servers use them.
    if (!IsDigit(line[i]) || (i == kVersionLen + 1 && line[i] == '0')) {
      return ParseState::kInvalid;
    }
    code = code * 10 + (line[i] - '0');
  }
  if (i < kCodeEnd) return complete ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  out->status = code;
  if (line.size() > kCodeEnd) {
    if (line[kCodeEnd] != ' ') return ParseState::kInvalid;
    out->reason = line.substr(kCodeEnd + 1);
    for (char c : out->reason) {
      if (!IsVisible(c) && !IsOws(c)) return ParseState::kInvalid;
    }
  }
  return complete ? ParseState::kSuccess : ParseState::kNeedsMoreData;
}

ParseState ParseStartLine(MessageType type, std::string_view line, bool complete, StartLine* out) {
  return type == MessageType::kRequest ? ParseRequestLine(line, complete, out)
                                       : ParseStatusLine(line, complete, out);
}

// RFC 9112 5: field-line = field-name ":" OWS field-value OWS
// RFC 9112 5.1: "No whitespace is allowed between the field name and colon.
// ... A server MUST reject ... any received request message that contains
// whitespace between a header field name and colon." Responses get the same
// treatment: such bytes are more likely garbage than a real response.
[[gnu::always_inline]] inline ParseState ParseFieldLine(const Line& l, std::string_view* name,
                                                        std::string_view* value) {
  const std::string_view line = l.text;
  const size_t i = TokenLength(line);
  if (i == line.size()) return l.complete ? ParseState::kInvalid : ParseState::kNeedsMoreData;
  if (i == 0 || line[i] != ':' || l.has_cr_or_nul) return ParseState::kInvalid;
  const std::string_view raw = line.substr(i + 1);
  *name = line.substr(0, i);
  *value = TrimOws(raw);
  return l.complete ? ParseState::kSuccess : ParseState::kNeedsMoreData;
}

// kKeptHeaders indices by name length: most field names are rejected by their
// length alone, the rest by their first letter, before a full comparison.
constexpr size_t kMaxKeptNameLength = 17;
constexpr size_t kMaxKeptPerLength = 4;
using KeptByLength = std::array<std::array<int, kMaxKeptPerLength>, kMaxKeptNameLength + 1>;
constexpr KeptByLength MakeKeptByLength() {
  KeptByLength table{};
  for (auto& row : table) row.fill(-1);
  for (size_t k = 0; k < std::size(kKeptHeaders); ++k) {
    auto& row = table[kKeptHeaders[k].size()];
    size_t i = 0;
    while (row[i] != -1) ++i;
    row[i] = static_cast<int>(k);
  }
  return table;
}
constexpr KeptByLength kKeptByLength = MakeKeptByLength();

// name (a token) equals kept (one of kKeptHeaders, same size) but for case.
// Eight octets a step: OR-ing 0x20 into an octet of a token lower-cases a
// letter and changes nothing else that could then equal a lower-case letter,
// a digit or '-' (only '^' and '_' change: into '~' and DEL), and kept names
// hold nothing else.
[[gnu::always_inline]] inline bool EqualsKeptName(std::string_view name, std::string_view kept) {
  constexpr uint64_t kCase = 0x2020202020202020ull;
  const size_t n = name.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t a, b;
    std::memcpy(&a, name.data() + i, 8);
    std::memcpy(&b, kept.data() + i, 8);
    if ((a | kCase) != b) return false;
  }
  for (; i < n; ++i) {
    if ((name[i] | 0x20) != kept[i]) return false;
  }
  return true;
}

// KeptIndex at compile time.
constexpr int ConstKeptIndex(std::string_view name) {
  if (name.size() > kMaxKeptNameLength) return -1;
  for (int k : kKeptByLength[name.size()]) {
    if (k < 0) break;
    if (IEquals(name, kKeptHeaders[k])) return k;
  }
  return -1;
}

// name: a token.
int KeptIndex(std::string_view name) {
  if (name.size() > kMaxKeptNameLength) return -1;
  for (int k : kKeptByLength[name.size()]) {
    if (k < 0) break;
    if (Lower(name[0]) == kKeptHeaders[k][0] && EqualsKeptName(name, kKeptHeaders[k])) return k;
  }
  return -1;
}
constexpr int kContentLengthIndex = ConstKeptIndex("content-length");
constexpr int kTransferEncodingIndex = ConstKeptIndex("transfer-encoding");
static_assert(kContentLengthIndex >= 0 && kTransferEncodingIndex >= 0);

// Calls f on each OWS-trimmed element of a comma-separated list (empty ones
// only if keep_empty); stops and returns false as soon as f does.
template <typename F>
bool ForEachListElement(std::string_view value, bool keep_empty, F f) {
  while (true) {
    const size_t comma = value.find(',');
    const std::string_view element = TrimOws(value.substr(0, comma));
    if ((keep_empty || !element.empty()) && !f(element)) return false;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

struct Framing {
  int64_t content_length = -1;
  bool has_transfer_encoding = false;
  bool last_coding_chunked = false;
};

// RFC 9110 8.6: Content-Length = 1*DIGIT. "a recipient MAY either reject the
// message as invalid or replace the duplicated field values with a single
// valid Content-Length field" when a list has identical values; differing
// values (in one field or across fields) make the framing invalid.
bool ApplyContentLength(std::string_view value, Framing* f) {
  return ForEachListElement(value, /*keep_empty=*/true, [f](std::string_view e) {
    if (e.empty() || e.size() > kMaxContentLengthDigits) return false;
    int64_t v = 0;
    for (char c : e) {
      if (!IsDigit(c)) return false;
      v = v * 10 + (c - '0');
    }
    if (f->content_length >= 0 && f->content_length != v) return false;
    f->content_length = v;
    return true;
  });
}

// RFC 9112 6.3: "If a Transfer-Encoding header field is present and the
// chunked transfer coding is the final encoding, the message body length is
// determined by reading and decoding the chunked data". Several fields form
// one list; parameters (";q=...") do not change the coding's name.
void ApplyTransferEncoding(std::string_view value, Framing* f) {
  f->has_transfer_encoding = true;
  ForEachListElement(value, /*keep_empty=*/false, [f](std::string_view e) {
    f->last_coding_chunked = IEquals(TrimOws(e.substr(0, e.find(';'))), "chunked");
    return true;
  });
}

// A field line and its obs-fold continuation lines, until the next field.
struct OpenField {
  bool open = false;
  int kept = -1;  // index in kKeptHeaders, -1 if dropped
  std::string_view value;
  std::string folded;  // only written when a kept field is folded
  bool has_fold = false;
};

// The kept fields of a head being parsed, before anything is copied out.
struct KeptFields {
  // Plain data, left uninitialised until used: 64 string_views would be
  // constructed on every parse.
  struct Field {
    int kept;           // index in kKeptHeaders
    bool folded;
    const char* value;  // into the input (unfolded)
    size_t size;
    size_t fold_at;     // offset in `folds` (folded)
  };
  Field fields[kMaxKeptHeaders];
  size_t size = 0;
  size_t value_bytes = 0;
  // Values of folded fields (rare), one after the other: views into a string
  // that still grows would not stay valid, so offsets are kept until the end.
  std::string folds;
};

[[gnu::always_inline]] inline bool CloseField(OpenField* field, Framing* framing,
                                              KeptFields* kept) {
  if (!field->open) return true;
  field->open = false;
  const std::string_view value = field->has_fold ? std::string_view(field->folded) : field->value;
  if (field->kept == kContentLengthIndex && !ApplyContentLength(value, framing)) return false;
  if (field->kept == kTransferEncodingIndex) ApplyTransferEncoding(value, framing);
  if (field->kept >= 0 && kept->size < kMaxKeptHeaders) {
    KeptFields::Field& f = kept->fields[kept->size++];
    f.kept = field->kept;
    f.folded = field->has_fold;
    f.value = value.data();
    f.size = value.size();
    if (field->has_fold) {
      f.fold_at = kept->folds.size();
      kept->folds.append(value);
    }
    kept->value_bytes += value.size();
  }
  return true;
}

// Copies what msg keeps of a parsed head (start line, kept fields) into one
// block that msg owns: the kept fields' array first, then their bytes; msg's
// views point into it.
void StoreHead(const StartLine& start, const KeptFields& kept, Message* msg) {
  static_assert(std::is_trivially_destructible_v<HeaderField>,
                "the fields are never destroyed: the block is freed as bytes");
  const size_t text_bytes =
      start.method.size() + start.target.size() + start.reason.size() + kept.value_bytes;
  // Room to align the array wherever the block starts.
  const size_t array_bytes =
      kept.size == 0 ? 0 : kept.size * sizeof(HeaderField) + alignof(HeaderField) - 1;
  // Nothing to copy for e.g. "HTTP/1.1 204" without kept fields.
  if (text_bytes + array_bytes == 0) return;
  std::shared_ptr<char[]> block = std::make_shared_for_overwrite<char[]>(array_bytes + text_bytes);
  char* out = block.get();
  HeaderField* fields = nullptr;
  if (kept.size > 0) {
    void* at = out;
    size_t room = array_bytes;
    at = std::align(alignof(HeaderField), kept.size * sizeof(HeaderField), at, room);
    fields = static_cast<HeaderField*>(at);
    out = block.get() + array_bytes;
  }
  auto put = [&out](std::string_view s) -> std::string_view {
    if (s.empty()) return {};
    std::memcpy(out, s.data(), s.size());
    const std::string_view stored(out, s.size());
    out += s.size();
    return stored;
  };
  msg->method = put(start.method);
  msg->target = put(start.target);
  msg->reason = put(start.reason);
  for (size_t i = 0; i < kept.size; ++i) {
    const KeptFields::Field& f = kept.fields[i];
    const std::string_view value = f.folded
                                       ? std::string_view(kept.folds).substr(f.fold_at, f.size)
                                       : std::string_view(f.value, f.size);
    new (&fields[i]) HeaderField(kKeptHeaders[f.kept], put(value));
  }
  msg->headers = std::span<const HeaderField>(fields, kept.size);
  msg->text = std::move(block);
}

void ResetMessage(MessageType type, Message* msg) {
  msg->type = type;
  msg->method = {};
  msg->target = {};
  msg->status_code = 0;
  msg->reason = {};
  msg->minor_version = 1;
  msg->headers = {};
  msg->text.reset();
  msg->head_truncated = false;
  msg->head_bytes = 0;
  msg->content_length = -1;
  msg->chunked = false;
  msg->body_bytes = 0;
  msg->body_complete = false;
  msg->body_framing_lost = false;
  msg->first_byte_ts_enter = msg->first_byte_ts_exit = 0;
  msg->last_byte_ts_enter = msg->last_byte_ts_exit = 0;
  msg->tid = 0;
}

// Framing from the fields seen; false if it is invalid.
bool FinishFraming(MessageType type, const Framing& framing, Message* msg) {
  if (framing.has_transfer_encoding) {
    // RFC 9112 6.3 item 3: "If a message is received with both a
    // Transfer-Encoding and a Content-Length header field, the
    // Transfer-Encoding overrides the Content-Length."
    msg->chunked = framing.last_coding_chunked;
    msg->content_length = -1;
    // RFC 9112 6.3 item 4: "If a Transfer-Encoding header field is present in
    // a request and the chunked transfer coding is not the final encoding, the
    // message body length cannot be determined reliably". (In a response the
    // body then runs until close, which the stitcher does for -1/unchunked.)
    return type == MessageType::kResponse || msg->chunked;
  }
  msg->content_length = framing.content_length;
  return true;
}

ParseState ParseHeadImpl(MessageType type, std::string_view data, Message* msg, bool truncated) {
  ResetMessage(type, msg);
  Line line = NextLine(data, 0);
  StartLine start;
  if (!line.complete) {
    return ParseStartLine(type, line.text, false, &start) == ParseState::kInvalid
               ? ParseState::kInvalid
               : ParseState::kNeedsMoreData;
  }
  if (ParseStartLine(type, line.text, true, &start) != ParseState::kSuccess) {
    return ParseState::kInvalid;
  }
  size_t pos = line.next;
  Framing framing;
  OpenField field;
  KeptFields kept;
  bool any_field = false;
  while (true) {
    if (pos == data.size() && !truncated) return ParseState::kNeedsMoreData;
    line = NextLine(data, pos);
    if (!line.complete) {
      if (truncated) break;  // the partial last line is unknown, not wrong
      if (!line.text.empty() && IsOws(line.text.front())) {
        return line.has_cr_or_nul ? ParseState::kInvalid : ParseState::kNeedsMoreData;
      }
      std::string_view name, value;
      return ParseFieldLine(line, &name, &value) == ParseState::kInvalid
                 ? ParseState::kInvalid
                 : ParseState::kNeedsMoreData;
    }
    pos = line.next;
    if (line.text.empty()) {
      truncated = false;  // the whole head was there after all
      break;
    }
    if (IsOws(line.text.front())) {
      // RFC 9112 2.2: "A recipient that receives whitespace between the
      // start-line and the first header field MUST either reject the message
      // as invalid or consume each whitespace-preceded line".
      if (!any_field || line.has_cr_or_nul) return ParseState::kInvalid;
      // RFC 9112 5.2: obs-fold = OWS CRLF RWS; a recipient may "replace each
      // received obs-fold with one or more SP octets".
      if (field.kept >= 0) {
        if (!field.has_fold) field.folded.assign(field.value);
        field.has_fold = true;
        const std::string_view more = TrimOws(line.text);
        if (!more.empty() && !field.folded.empty()) field.folded.push_back(' ');
        field.folded.append(more);
      }
      continue;
    }
    if (!CloseField(&field, &framing, &kept)) return ParseState::kInvalid;
    std::string_view name, value;
    if (ParseFieldLine(line, &name, &value) != ParseState::kSuccess) {
      return ParseState::kInvalid;
    }
    any_field = true;
    field.open = true;
    field.kept = KeptIndex(name);
    field.value = value;
    field.has_fold = false;
  }
  if (!CloseField(&field, &framing, &kept) || !FinishFraming(type, framing, msg)) {
    return ParseState::kInvalid;
  }
  StoreHead(start, kept, msg);
  msg->status_code = start.status;
  msg->minor_version = start.minor;
  msg->head_truncated = truncated;
  msg->head_bytes = truncated ? data.size() : pos;
  return ParseState::kSuccess;
}

constexpr std::string_view kKnownMethods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

}  // namespace

std::optional<std::string_view> Message::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    // Callers name it in lower case, as it is stored: most often equal as is.
    if (key.size() == name.size() && (key == name || IEquals(name, key))) return value;
  }
  return std::nullopt;
}

ParseState ParseHead(MessageType type, std::string_view* buf, Message* msg) {
  const ParseState state = ParseHeadImpl(type, *buf, msg, /*truncated=*/false);
  if (state == ParseState::kSuccess) buf->remove_prefix(msg->head_bytes);
  return state;
}

ParseState ParseTruncatedHead(MessageType type, std::string_view data, Message* msg) {
  return ParseHeadImpl(type, data, msg, /*truncated=*/true);
}

bool LooksLikeStart(MessageType type, std::string_view data) {
  const Line line = NextLine(data, 0);
  if (line.text.empty()) return false;
  StartLine start;
  if (ParseStartLine(type, line.text, line.complete, &start) == ParseState::kInvalid) return false;
  if (type == MessageType::kResponse) return true;
  // A request needs a known method; while the method is still arriving, a
  // prefix of one will do.
  const size_t sp = line.text.find(' ');
  const std::string_view method = line.text.substr(0, sp);
  for (std::string_view known : kKnownMethods) {
    if (sp == std::string_view::npos ? known.starts_with(method) : known == method) return true;
  }
  return false;
}

ParseState ChunkedDecoder::Consume(std::string_view data, size_t* consumed) {
  size_t i = 0;
  while (i < data.size()) {
    if (phase_ == Phase::kData) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
      i += n;
      remaining_ -= n;
      if (remaining_ == 0) phase_ = Phase::kDataCr;
      continue;
    }
    if (phase_ == Phase::kExtension || phase_ == Phase::kTrailerLine) {
      const void* lf = std::memchr(data.data() + i, '\n', data.size() - i);
      if (lf == nullptr) break;
      i = static_cast<size_t>(static_cast<const char*>(lf) - data.data()) + 1;
      if (phase_ == Phase::kExtension) {
        EndSizeLine();
      } else {
        phase_ = Phase::kTrailerLineStart;
      }
      continue;
    }
    const char c = data[i++];
    bool ok = true;
    switch (phase_) {
      case Phase::kSize:
        ok = SizeByte(c);
        break;
      case Phase::kSizeLf:
        ok = c == '\n';
        EndSizeLine();
        break;
      case Phase::kDataCr:  // a bare LF ends the line too (RFC 9112 2.2)
        ok = c == '\r' || c == '\n';
        phase_ = c == '\r' ? Phase::kDataLf : Phase::kSize;
        break;
      case Phase::kDataLf:
        ok = c == '\n';
        phase_ = Phase::kSize;
        break;
      case Phase::kTrailerLineStart:
        if (c == '\n') {
          *consumed = i;
          return ParseState::kSuccess;
        }
        phase_ = c == '\r' ? Phase::kTrailerEndLf : Phase::kTrailerLine;
        break;
      case Phase::kTrailerEndLf:
        *consumed = i;
        return c == '\n' ? ParseState::kSuccess : ParseState::kInvalid;
      default:
        break;
    }
    if (!ok) {
      *consumed = i;
      return ParseState::kInvalid;
    }
  }
  *consumed = data.size();
  return ParseState::kNeedsMoreData;
}

bool ChunkedDecoder::Skip(uint64_t n) {
  if (phase_ != Phase::kData || n > remaining_) return false;
  remaining_ -= n;
  if (remaining_ == 0) phase_ = Phase::kDataCr;
  return true;
}

// chunk-size = 1*HEXDIG. "Recipients MUST anticipate potentially large
// hexadecimal numerals and prevent software errors due to integer conversion
// overflows or precision loss due to integer representation." (7.1)
bool ChunkedDecoder::SizeByte(char c) {
  int digit = -1;
  if (c >= '0' && c <= '9') digit = c - '0';
  if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
  if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
  if (digit >= 0) {
    if (size_ > (UINT64_MAX >> 4)) return false;
    size_ = (size_ << 4) | static_cast<uint64_t>(digit);
    ++digits_;
    return true;
  }
  if (digits_ == 0) return false;
  // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
  if (c == ';' || IsOws(c)) {
    phase_ = Phase::kExtension;
  } else if (c == '\r') {
    phase_ = Phase::kSizeLf;
  } else if (c == '\n') {
    EndSizeLine();
  } else {
    return false;
  }
  return true;
}

// last-chunk = 1*("0") [ chunk-ext ] CRLF, then the trailer section.
void ChunkedDecoder::EndSizeLine() {
  remaining_ = size_;
  phase_ = size_ == 0 ? Phase::kTrailerLineStart : Phase::kData;
  size_ = 0;
  digits_ = 0;
}

size_t HeadEndScanner::Feed(std::string_view data) {
  size_t i = 0;
  while (i < data.size()) {
    if (state_ == State::kInLine) {
      const void* lf = std::memchr(data.data() + i, '\n', data.size() - i);
      if (lf == nullptr) return std::string_view::npos;
      i = static_cast<size_t>(static_cast<const char*>(lf) - data.data()) + 1;
      state_ = State::kLineStart;
      continue;
    }
    const char c = data[i++];
    if (c == '\n') {
      state_ = State::kInLine;
      return i;
    }
    state_ = (c == '\r' && state_ == State::kLineStart) ? State::kLineStartCr : State::kInLine;
  }
  return std::string_view::npos;
}

}  // namespace hoptrace::http1
