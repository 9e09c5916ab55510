// An incremental reader of RESP2 and RESP3 values (the Redis serialization
// protocol specification, redis.io/docs/reference/protocol-spec). It frames
// values without keeping them: of a top-level value it keeps only what a span
// may show (the first bulk strings of a command, the prefix of an error).
//
//   simple: + - : _ # , (     line up to CRLF
//   bulk:   $ = !             "<len>\r\n" then len bytes and CRLF; "$-1\r\n" is null
//   aggregate: * ~ >          "<n>\r\n" then n values; "*-1\r\n" is null
//              % |            "<n>\r\n" then n key/value pairs (2n values)
// A '>' push and a '|' attribute at the top level are not replies: the
// caller sees them flagged. Requests may also be inline commands ("PING\r\n").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hoptrace::redis {

inline constexpr size_t kKeptArgs = 2;       // command name and first argument
inline constexpr size_t kKeptArgBytes = 64;  // of each kept argument / error
inline constexpr size_t kMaxDepth = 32;      // nesting of aggregates
inline constexpr size_t kMaxLine = 64 * 1024;  // an inline command or simple string

// A top-level value, as much as is kept of it.
struct RespValue {
  char type = 0;
  bool push = false;       // RESP3 '>': out-of-band, answers no command
  bool attribute = false;  // RESP3 '|': metadata before the real reply
  bool error = false;      // '-' or '!'
  std::string error_prefix;  // first word of the error ("ERR", "WRONGTYPE")
  size_t argc = 0;          // elements of a top-level array (or inline words)
  std::vector<std::string> args;  // first kKeptArgs bulk strings of that array
};

class RespReader {
 public:
  // requests: the stream carries commands (inline commands allowed).
  explicit RespReader(bool requests) : requests_(requests) {}

  enum class Result { kNeedMore, kValue, kInvalid };
  // Consumes bytes of *data up to the end of a top-level value (kValue: see
  // value()), or all of them (kNeedMore). kInvalid: not RESP at this byte;
  // the reader must be Reset() before it is fed again.
  Result Feed(std::string_view* data);
  // n bytes were not captured. True when they fell inside a bulk payload and
  // were skipped by its length (may complete a value: then value_ready()).
  bool Skip(uint64_t n);

  bool idle() const;  // between top-level values
  bool value_ready() const { return ready_; }
  // The value Feed / Skip completed; valid until the next call.
  const RespValue& value() const { return value_; }
  void Reset();

 private:
  bool OnLine(std::string_view line);
  bool OnAggregate(char type, int64_t n);
  void CompleteElement();

  struct Frame {
    char type;
    int64_t remaining;
  };
  bool requests_;
  bool in_bulk_ = false;
  uint64_t bulk_remaining_ = 0;  // payload + CRLF
  std::string* bulk_keep_ = nullptr;  // where the payload's first bytes go
  size_t bulk_kept_limit_ = 0;
  std::string line_;
  bool started_ = false;  // a top-level value has begun
  std::vector<Frame> stack_;
  RespValue value_;
  bool ready_ = false;
  bool inline_ = false;  // the value being read is an inline command
};

// True when b starts with what begins a RESP value: a command ("*<n>\r\n$",
// n of 1 to 5 digits)
// for requests, any reply type and a well-formed first line otherwise.
bool LooksLikeRespStart(bool requests, std::string_view b);

}  // namespace hoptrace::redis
