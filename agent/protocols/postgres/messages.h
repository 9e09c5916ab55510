// PostgreSQL frontend/backend protocol 3.0 framing ("Message Formats" and
// "Message Flow" of the PostgreSQL documentation, protocol chapter).
//
//   typed message:  Byte1 type | Int32 length (counts itself, not the type) | body
//   first message:  Int32 length | Int32 code | body   (StartupMessage, SSLRequest,
//                   GSSENCRequest, CancelRequest: no type byte)
//
// Only the bodies a span needs are decoded here; every other message is
// skipped by its length without being buffered.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hoptrace::postgres {

// Which end sent a message: frontend = client, backend = server.
enum class Side { kFrontend, kBackend };

inline constexpr uint32_t kProtocolV3 = 196608;          // 3 << 16 | 0
inline constexpr uint32_t kCancelRequestCode = 80877102;  // 1234 << 16 | 5678
inline constexpr uint32_t kSslRequestCode = 80877103;     // 1234 << 16 | 5679
inline constexpr uint32_t kGssEncRequestCode = 80877104;  // 1234 << 16 | 5680

inline constexpr size_t kHeaderSize = 5;        // type + length
inline constexpr size_t kStartupHeaderSize = 8;  // length + code
// PostgreSQL refuses messages past 1 GB (PQ_LARGE_MESSAGE_LIMIT); the startup
// packet past 10000 bytes (MAX_STARTUP_PACKET_LENGTH).
inline constexpr uint32_t kMaxMessageLength = 1u << 30;
inline constexpr uint32_t kMaxStartupLength = 10000;

enum class StartupKind { kNone, kStartup, kSsl, kGssEnc, kCancel };

struct StartupHeader {
  StartupKind kind = StartupKind::kNone;
  uint32_t length = 0;  // whole message, the length field included
};

// The first 8 bytes of a connection as an untyped first message.
StartupHeader ParseStartupHeader(std::string_view b);

struct Header {
  char type = 0;
  uint32_t length = 0;  // as on the wire: body size + 4
  uint32_t body_size() const { return length - 4; }
};

// The 5 bytes of a typed header; nullopt when they cannot start a message
// sent by `side` (unknown type, or a length impossible for that type).
std::optional<Header> ParseHeader(Side side, std::string_view b);

// True when b, read from its first byte on, is a run of plausible messages of
// `side` up to its end (the last one may be cut), or for max_headers headers.
// Used to find message boundaries again after bytes were lost; needs at least
// one full header.
bool LooksLikeMessages(Side side, std::string_view b, int max_headers);

// The side that sends messages of this type, when only one does ('Q' is the
// frontend's, 'Z' the backend's; 'D', 'E', 'C' are both sides').
std::optional<Side> SideOfType(char type);

// Reads a NUL-terminated string from the front of *b. False if no NUL.
bool ReadCString(std::string_view* b, std::string_view* out);

// StartupMessage body after the code: name/value pairs up to an empty name.
struct StartupParams {
  std::string database;  // "database", defaulting to "user" as the server does
};
StartupParams ParseStartupParams(std::string_view body);

// ErrorResponse / NoticeResponse: Byte1 field code, String value, ..., 0.
// Only the SQLSTATE (code 'C') is kept: messages and details quote values.
std::string ParseSqlState(std::string_view body);

// Rows a CommandComplete says were returned: "SELECT 3" / "FETCH 3" -> 3;
// -1 for other commands ("INSERT 0 1" counts rows written, not returned).
int64_t ReturnedRows(std::string_view body);

}  // namespace hoptrace::postgres
