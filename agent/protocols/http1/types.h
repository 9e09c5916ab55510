// HTTP/1.x messages as the agent sees them: heads parsed in full, bodies
// only counted (bodies are never kept, see DESIGN.md).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hoptrace::http1 {

enum class MessageType { kRequest, kResponse };

// Result of parsing one frame, in the style of Pixie's ParseFrame.
enum class ParseState {
  kNeedsMoreData,  // a prefix of a valid frame; call again with more bytes
  kInvalid,        // not a valid frame at this position
  kSuccess,        // a frame was parsed and consumed
};

// Header names the agent keeps (lower-cased). Everything else is dropped at
// parse time; in particular Authorization, Cookie, Set-Cookie and
// Proxy-Authorization values never leave the parser.
inline constexpr std::string_view kKeptHeaders[] = {
    "host",       "user-agent", "content-length", "transfer-encoding", "connection",
    "traceparent", "tracestate", "upgrade",        "content-type",
    // RFC 7540 3.2.1: the client's SETTINGS for a connection upgraded to h2c.
    "http2-settings",
};

// A kept header field: (name, value). The name is one of kKeptHeaders (static
// storage); the value is a view of the message's text.
using HeaderField = std::pair<std::string_view, std::string_view>;

// One parsed head. Its strings are views: what the parser keeps of a head
// (start-line parts and kept header values) is copied once into `text`, a
// block that every copy of the Message co-owns and nobody changes, so the
// views stay valid for as long as any copy of the Message lives, and moving
// or copying a Message copies no bytes. The kept fields' array lives in that
// block too: one allocation per head (a vector of them was a second). (Per field std::strings cost a heap
// allocation or an inline copy per field per move, and a Message moves ~6
// times on its way to a span.) Code that fills a Message by hand (tests)
// points the views at storage that outlives it, e.g. string literals.
struct Message {
  MessageType type = MessageType::kRequest;

  // Request line.
  std::string_view method;  // as sent, e.g. "GET"
  std::string_view target;  // request-target as sent, e.g. "/a/b?x=1"
  // Status line.
  int status_code = 0;
  std::string_view reason;

  int minor_version = 1;  // HTTP/1.<minor_version>

  // Kept headers only (see kKeptHeaders), names lower-cased, in order; the
  // array is in `text`'s block.
  std::span<const HeaderField> headers;
  // The bytes method, target, reason and the header values view, and the
  // array `headers` views (null when there are none, or when they view
  // static storage).
  std::shared_ptr<const char[]> text;
  // The head did not fit in what was captured: headers after the cut are unknown.
  bool head_truncated = false;

  uint64_t head_bytes = 0;       // bytes of start line + headers + CRLF
  int64_t content_length = -1;   // -1: no Content-Length
  bool chunked = false;          // Transfer-Encoding ends in "chunked"
  uint64_t body_bytes = 0;       // body bytes seen so far (captured or not), as
                                 // on the wire: chunked framing included
  bool body_complete = false;    // framing says the body ended
  bool body_framing_lost = false;  // bytes missing where framing was needed

  // Timestamps (CLOCK_MONOTONIC ns) of the syscalls that moved the message.
  uint64_t first_byte_ts_enter = 0;  // entry of the syscall with the first byte
  uint64_t first_byte_ts_exit = 0;   // exit of that syscall
  uint64_t last_byte_ts_enter = 0;   // entry of the syscall with the last byte seen
  uint64_t last_byte_ts_exit = 0;    // exit of that syscall
  uint32_t tid = 0;                  // thread that moved the first byte
  uint64_t seq = 0;  // requests: their number on the connection, from 1

  // First value of a kept header (name lower-case), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
};

// One exchange on a connection.
struct Record {
  enum class Outcome {
    kComplete,            // request and full response
    kResponseIncomplete,  // response head seen, body cut short (close, reset)
    kNoResponse,          // connection ended before any response
  };
  Message request;
  std::optional<Message> response;
  Outcome outcome = Outcome::kComplete;
};

}  // namespace hoptrace::http1
