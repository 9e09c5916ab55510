// Parsing of HTTP/1.x message heads (RFC 9112 sections 2-5).
#pragma once

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

}  // namespace hoptrace::http1
