// Parsing of HTTP/1.x message heads (RFC 9112 sections 2-5).
#pragma once

#include <string_view>

#include "agent/protocols/http1/types.h"

namespace hoptrace::http1 {

// Parses the start line and header fields at the front of *buf, up to and
// including the empty line that ends the head. On kSuccess, *buf is advanced
// past the head and msg holds the request/status line, kept headers,
// head_bytes, content_length and chunked. On kNeedsMoreData and kInvalid,
// *buf is left as it was.
ParseState ParseHead(MessageType type, std::string_view* buf, Message* msg);

// True if data starts like a message of that type (request line with a known
// method and "HTTP/1.", or "HTTP/1.x NNN"), possibly only its first bytes.
// Used to find the next message after bytes were lost.
bool LooksLikeStart(MessageType type, std::string_view data);

}  // namespace hoptrace::http1
