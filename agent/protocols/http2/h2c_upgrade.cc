#include "agent/protocols/http2/h2c_upgrade.h"

#include <string>
#include <utility>

#include "agent/protocols/http2/frame.h"
#include "agent/protocols/http2/parser.h"
#include "agent/protocols/http2/types.h"

namespace hoptrace::http2 {
namespace {

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// RFC 4648 section 5; padding tolerated though RFC 7540 omits it.
std::optional<std::string> DecodeBase64Url(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = Base64UrlValue(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// The HTTP/1 request as the stream's request message: pseudo-headers from
// its request line and Host (RFC 9113 8.3.1), then its kept fields.
Message AsStreamRequest(const http1::Message& r) {
  Message m;
  m.SetField(":method", r.method);
  m.SetField(":path", r.target);
  m.SetField(":scheme", "http");  // h2c is HTTP/2 over cleartext TCP
  for (const auto& [name, value] : r.headers) {
    if (name == "host") {
      m.SetField(":authority", value);
    } else if (IsKeptHeader(name)) {
      m.SetField(name, value);
    }
  }
  m.headers_incomplete = r.head_truncated;
  m.body_bytes = r.body_bytes;
  m.timing = MessageTiming{r.first_byte_ts_enter, r.first_byte_ts_exit, r.last_byte_ts_enter,
                           r.last_byte_ts_exit, r.tid};
  return m;
}

}  // namespace

std::optional<uint32_t> HeaderTableSizeOf(std::string_view http2_settings) {
  const auto payload = DecodeBase64Url(http2_settings);
  if (!payload || payload->size() % 6 != 0) return std::nullopt;
  std::optional<uint32_t> size;
  for (std::string_view p = *payload; !p.empty(); p.remove_prefix(6)) {
    const uint16_t id = static_cast<uint16_t>(static_cast<uint8_t>(p[0]) << 8 |
                                              static_cast<uint8_t>(p[1]));
    if (id != kSettingsHeaderTableSize) continue;
    size = uint32_t{static_cast<uint8_t>(p[2])} << 24 | uint32_t{static_cast<uint8_t>(p[3])} << 16 |
           uint32_t{static_cast<uint8_t>(p[4])} << 8 | uint32_t{static_cast<uint8_t>(p[5])};
  }
  return size;
}

std::unique_ptr<ProtocolParser> AdoptH2cUpgrade(const http1::Record& upgraded, Role role,
                                                ExchangeSink* sink, const ParserLimits& limits) {
  if (role == Role::kUnknown) return nullptr;
  auto parser = std::make_unique<Http2Parser>(role, sink, limits);
  std::optional<uint32_t> table_size;
  if (auto settings = upgraded.request.Header("http2-settings")) {
    table_size = HeaderTableSizeOf(*settings);
  }
  parser->AdoptUpgradedRequest(AsStreamRequest(upgraded.request), table_size);
  return parser;
}

}  // namespace hoptrace::http2
