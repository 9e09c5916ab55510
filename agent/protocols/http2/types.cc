#include "agent/protocols/http2/types.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace hoptrace::http2 {
namespace {

constexpr std::array<std::string_view, 11> kKept = {
    ":method",    ":path",       ":scheme",     ":authority",   ":status",     "host",
    "user-agent", "traceparent", "tracestate",  "content-type", "grpc-status",
};

int ParseInt(std::string_view s) {
  int v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && v >= 0 ? v : -1;
}

}  // namespace

bool IsKeptHeader(std::string_view name) {
  return std::find(kKept.begin(), kKept.end(), name) != kKept.end();
}

void Message::SetField(std::string_view name, std::string_view value) {
  if (name.empty()) return;
  if (name[0] == ':') {
    if (name == ":method") {
      method.assign(value);
    } else if (name == ":path") {
      path.assign(value);
    } else if (name == ":scheme") {
      scheme.assign(value);
    } else if (name == ":authority") {
      authority.assign(value);
    } else if (name == ":status") {
      const int v = ParseInt(value);
      status = v >= 100 && v <= 999 ? v : 0;
    }
    return;
  }
  if (name == "host") {
    // RFC 9113 8.3.1: ":authority" is preferred; Host is its stand-in.
    if (authority.empty()) authority.assign(value);
  } else if (name == "user-agent") {
    user_agent.assign(value);
  } else if (name == "content-type") {
    content_type.assign(value);
  } else if (name == "traceparent") {
    if (traceparent.empty()) traceparent.assign(value);
  } else if (name == "tracestate") {
    if (!tracestate.empty()) tracestate.push_back(',');
    tracestate.append(value);
  } else if (name == "grpc-status") {
    grpc_status = ParseInt(value);
  }
}

void Message::MergeTrailers(const Message& trailers) {
  if (trailers.grpc_status >= 0) grpc_status = trailers.grpc_status;
  headers_incomplete = headers_incomplete || trailers.headers_incomplete;
}

}  // namespace hoptrace::http2
