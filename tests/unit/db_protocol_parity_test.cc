// The kernel recognises PostgreSQL and Redis at a stream's first bytes
// (bpf/db_protocols.bpf.h); the agent does the same when the kernel's open
// event was lost (LooksLikeStart of each protocol). Both must agree on the
// first 8 bytes, which is what the kernel reads. The BPF header is compiled
// here as plain C++ and both are fed hand-picked cases and mutations of them.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "agent/protocols/postgres/postgres_parser.h"
#include "agent/protocols/redis/redis_parser.h"

#include <linux/types.h>
#undef __always_inline
#define __always_inline inline
#include "db_protocols.bpf.h"

namespace hoptrace {
namespace {

std::string U32(uint32_t v) {
  const uint32_t n = htonl(v);
  return std::string(reinterpret_cast<const char*>(&n), 4);
}

void ExpectParity(const std::string& input) {
  const std::string head = input.substr(0, 8);
  std::string padded = head;  // the kernel's copy is 8 bytes, n of them read
  padded.resize(8, '\0');
  const auto* b = reinterpret_cast<const __u8*>(padded.data());
  const __u32 n = static_cast<__u32>(head.size());
  const std::string shown = testing::PrintToString(head);
  EXPECT_EQ(ht_looks_like_postgres(b, n), postgres::LooksLikeStart(head)) << shown;
  EXPECT_EQ(ht_looks_like_resp(b, n), redis::LooksLikeStart(head)) << shown;
}

std::vector<std::string> Seeds() {
  return {
      U32(41) + U32(196608) + "user\0app\0database\0shop\0\0",
      U32(8) + U32(80877103),
      U32(8) + U32(80877104),
      U32(16) + U32(80877102) + U32(1) + U32(2),
      U32(9) + U32(196608),
      U32(10001) + U32(196608),
      "*1\r\n$4\r\nPING\r\n",
      "*3\r\n$3\r\nSET\r\n",
      "*12345\r\n$",
      "*123456\r\n",
      "*0\r\n",
      "*01\r\n$4",
      "*2\r\n*1\r\n",
      "*1\r\n",
      "GET / HTTP/1.1\r\n",
      "PING\r\n",
  };
}

TEST(DbProtocolParity, KernelAndAgentAgreeOnSeeds) {
  for (const std::string& s : Seeds()) {
    for (size_t len = 0; len <= s.size(); ++len) ExpectParity(s.substr(0, len));
  }
}

TEST(DbProtocolParity, KernelAndAgentAgreeOnMutations) {
  std::mt19937 rng(1234);
  const std::string alphabet = std::string("*$\r\n0123456789\0\x04\xd2\x16\x2f\x03", 21);
  for (const std::string& seed : Seeds()) {
    for (int i = 0; i < 2000; ++i) {
      std::string s = seed.substr(0, 8);
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        s[rng() % s.size()] = alphabet[rng() % alphabet.size()];
      }
      ExpectParity(s);
    }
  }
}

TEST(DbProtocolParity, RecognisesWhatItShould) {
  auto pg = [](const std::string& s) {
    return ht_looks_like_postgres(reinterpret_cast<const __u8*>(s.data()), s.size());
  };
  auto resp = [](std::string s) {
    const auto n = static_cast<__u32>(s.size());
    s.resize(8, '\0');
    return ht_looks_like_resp(reinterpret_cast<const __u8*>(s.data()), n);
  };
  EXPECT_TRUE(pg(U32(8) + U32(80877103)));
  EXPECT_TRUE(pg(U32(41) + U32(196608)));
  EXPECT_FALSE(pg(U32(16) + U32(80877102)));  // CancelRequest: no queries
  EXPECT_TRUE(resp("*1\r\n$4\r\n"));
  EXPECT_FALSE(resp("GET / HT"));
}

}  // namespace
}  // namespace hoptrace
