// Fuzzes the Redis parser (script of syscalls: protocol_fuzz.h) and the RESP
// reader on the whole input, both as commands and as replies.
#include "agent/protocols/redis/redis_parser.h"
#include "agent/protocols/redis/resp_reader.h"
#include "tests/fuzz/protocol_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hoptrace;
  fuzz::FuzzParser(redis::kProtocol, data, size);

  for (bool requests : {true, false}) {
    redis::RespReader reader(requests);
    std::string_view in(reinterpret_cast<const char*>(data), size);
    while (!in.empty()) {
      const auto r = reader.Feed(&in);
      if (r == redis::RespReader::Result::kInvalid) break;
      if (r == redis::RespReader::Result::kValue) {
        const redis::RespValue& v = reader.value();
        fuzz::Check(v.args.size() <= redis::kKeptArgs);
        for (const auto& a : v.args) fuzz::Check(a.size() <= redis::kKeptArgBytes);
        fuzz::Check(v.error_prefix.size() <= redis::kKeptArgBytes);
        fuzz::Check(reader.idle());
      }
    }
  }
  return 0;
}
