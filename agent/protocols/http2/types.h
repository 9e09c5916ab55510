// HTTP/2 messages as the agent keeps them: the header fields a span needs,
// the body only counted (bodies are never kept, see DESIGN.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocols/protocol.h"

namespace hoptrace::http2 {

// Header names whose values the agent keeps. Every other field is decoded
// (the HPACK state needs it) and dropped: Authorization, Cookie, Set-Cookie
// and Proxy-Authorization values never leave the decoder.
bool IsKeptHeader(std::string_view name);

struct Message {
  // Request pseudo-headers (RFC 9113 8.3.1) and fields.
  std::string method;
  std::string path;  // as sent, query included
  std::string scheme;
  std::string authority;  // :authority, else Host
  std::string user_agent;
  std::string traceparent;  // the first one
  std::string tracestate;   // comma-joined, as RFC 9110 5.3 allows
  // Both directions.
  std::string content_type;
  // Response.
  int status = 0;        // :status, 0 if not known
  int grpc_status = -1;  // grpc-status of the trailers (or Trailers-Only headers)

  // Some header fields could not be decoded (HPACK state unknown, bytes lost):
  // a missing value above may exist on the wire.
  bool headers_incomplete = false;
  bool headers_seen = false;  // a (non-informational) header block arrived
  bool ended = false;         // END_STREAM seen
  uint64_t body_bytes = 0;    // DATA payload bytes, padding included
  MessageTiming timing;

  // Keeps the value of a kept field; ignores the rest.
  void SetField(std::string_view name, std::string_view value);
  // Takes what trailers (a later header block) say.
  void MergeTrailers(const Message& trailers);
};

}  // namespace hoptrace::http2
