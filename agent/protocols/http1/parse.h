// Parsing of HTTP/1.x message heads (RFC 9112 sections 2-5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/protocols/http1/types.h"

namespace hoptrace::http1 {

// Parses the start line and header fields at the front of *buf, up to and
// including the empty line that ends the head. On kSuccess, *buf is advanced
// past the head and msg holds the request/status line, kept headers,
// head_bytes, content_length and chunked. On kNeedsMoreData and kInvalid,
// *buf is left as it was. msg is reset first (every field, timestamps
// included), reusing its string capacity.
//
// Choices where RFC 9112 lets the recipient pick:
// - bare LF ends a line (2.2 "a recipient MAY recognize a single LF as a line
//   terminator and ignore any preceding CR"); a bare CR anywhere is invalid;
// - obsolete line folding is replaced by one SP (5.2 "replace each received
//   obs-fold with one or more SP octets"), for requests and responses alike;
// - whitespace between the start line and the first field is invalid (2.2);
// - Content-Length is 1*DIGIT, a list of identical values ("42, 42") counts
//   as one value (RFC 9110 8.6), differing values are invalid;
// - Transfer-Encoding overrides Content-Length (content_length is then -1);
//   a request whose last coding is not chunked is invalid (6.3 item 4);
// - at most 64 kept header fields are stored; framing headers beyond that
//   still take effect.
ParseState ParseHead(MessageType type, std::string_view* buf, Message* msg);

// For a head known to be cut short (bytes after `data` were lost, or the head
// outgrew the buffer bound): parses the start line and every complete header
// field line in data, drops a trailing partial line, and sets
// msg->head_truncated. kSuccess if the start line is complete and valid
// (head_bytes = data.size(): all of it is head); kNeedsMoreData if the start line is an
// incomplete but valid prefix; kInvalid otherwise. If data in fact holds a
// whole head this is exactly ParseHead (head_truncated stays false).
ParseState ParseTruncatedHead(MessageType type, std::string_view data, Message* msg);

// True if data starts like a message of that type (request line with a known
// method and "HTTP/1.", or "HTTP/1.x NNN"), possibly only its first bytes.
// Used to find the next message after bytes were lost.
bool LooksLikeStart(MessageType type, std::string_view data);

// Follows the chunked transfer coding (RFC 9112 7.1) of a body arriving piece
// by piece, keeping none of its bytes: chunk sizes (hex), chunk extensions
// (ignored), chunk data, and the trailer section up to its empty line.
class ChunkedDecoder {
 public:
  // Consumes bytes from the front of data. kSuccess: the body ended, after
  // *consumed bytes. kNeedsMoreData: all of data was body. kInvalid: framing is
  // broken; *consumed includes the offending byte.
  ParseState Consume(std::string_view data, size_t* consumed);
  // n body bytes were not captured. True if they all fell inside chunk data,
  // whose length is known, so framing goes on; false if framing is lost.
  bool Skip(uint64_t n);

 private:
  bool SizeByte(char c);
  void EndSizeLine();

  enum class Phase {
    kSize,       // chunk-size hex digits
    kExtension,  // chunk-ext, skipped up to LF
    kSizeLf,     // CR seen after the size line
    kData,       // chunk-data, remaining_ bytes
    kDataCr,     // CRLF after chunk-data
    kDataLf,
    kTrailerLineStart,  // an empty line here ends the body
    kTrailerLine,       // a trailer field, skipped up to LF
    kTrailerEndLf,      // CR of the final empty line seen
  };
  Phase phase_ = Phase::kSize;
  uint64_t remaining_ = 0;  // chunk-data bytes to come (kData)
  uint64_t size_ = 0;       // chunk-size read so far (kSize)
  int digits_ = 0;
};

// Finds the empty line that ends a head in bytes arriving piece by piece: an
// LF, an optional CR, an LF (the lines ParseHead splits on).
class HeadEndScanner {
 public:
  // The next bytes do not follow the previous ones (bytes were lost).
  void Reset() { state_ = State::kInLine; }
  // Offset just past the end of the head in data, or std::string_view::npos.
  size_t Feed(std::string_view data);

 private:
  enum class State { kInLine, kLineStart, kLineStartCr };
  State state_ = State::kInLine;
};

}  // namespace hoptrace::http1
