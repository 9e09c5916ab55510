// HPACK decoding: RFC 7541 Appendix C examples byte for byte, Huffman edge
// cases, and the degraded mode of a decoder that lost its encoder's state.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "agent/protocols/http2/hpack_decoder.h"
#include "agent/protocols/http2/huffman.h"

namespace hoptrace::http2 {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string Hex(std::string_view hex) {
  std::string out;
  std::string digits;
  for (char c : hex) {
    if (c != ' ') digits.push_back(c);
  }
  for (size_t i = 0; i + 1 < digits.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

Fields Decode(HpackDecoder& d, std::string_view hex,
              HpackDecoder::Result expect = HpackDecoder::Result::kOk) {
  Fields out;
  const std::string block = Hex(hex);
  EXPECT_EQ(d.Decode(block, [&](std::string_view n, std::string_view v) {
    out.emplace_back(std::string(n), std::string(v));
  }), expect);
  return out;
}

const Fields kRequest1 = {
    {":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}};
const Fields kRequest2 = {{":method", "GET"},
                          {":scheme", "http"},
                          {":path", "/"},
                          {":authority", "www.example.com"},
                          {"cache-control", "no-cache"}};
const Fields kRequest3 = {{":method", "GET"},
                          {":scheme", "https"},
                          {":path", "/index.html"},
                          {":authority", "www.example.com"},
                          {"custom-key", "custom-value"}};

TEST(HpackRfc7541, C2LiteralAndIndexedFields) {
  HpackDecoder d;
  EXPECT_EQ(Decode(d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
            (Fields{{"custom-key", "custom-header"}}));
  EXPECT_EQ(d.table_size(), 55u);
  HpackDecoder d2;
  EXPECT_EQ(Decode(d2, "040c 2f73 616d 706c 652f 7061 7468"), (Fields{{":path", "/sample/path"}}));
  EXPECT_EQ(Decode(d2, "1008 7061 7373 776f 7264 0673 6563 7265 74"),
            (Fields{{"password", "secret"}}));
  EXPECT_EQ(d2.table_entries(), 0u);
  EXPECT_EQ(Decode(d2, "82"), (Fields{{":method", "GET"}}));
  EXPECT_EQ(d2.table_entries(), 0u);
}

TEST(HpackRfc7541, C3RequestsWithoutHuffman) {
  HpackDecoder d;
  EXPECT_EQ(Decode(d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"), kRequest1);
  EXPECT_EQ(d.table_size(), 57u);
  EXPECT_EQ(Decode(d, "8286 84be 5808 6e6f 2d63 6163 6865"), kRequest2);
  EXPECT_EQ(d.table_size(), 110u);
  EXPECT_EQ(Decode(d, "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
            kRequest3);
  EXPECT_EQ(d.table_size(), 164u);
  EXPECT_EQ(d.table_entries(), 3u);
}

TEST(HpackRfc7541, C4RequestsWithHuffman) {
  HpackDecoder d;
  EXPECT_EQ(Decode(d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), kRequest1);
  EXPECT_EQ(d.table_size(), 57u);
  EXPECT_EQ(Decode(d, "8286 84be 5886 a8eb 1064 9cbf"), kRequest2);
  EXPECT_EQ(d.table_size(), 110u);
  EXPECT_EQ(Decode(d, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"), kRequest3);
  EXPECT_EQ(d.table_size(), 164u);
}

// C.5 and C.6 use a 256-octet table; the examples assume it from the start,
// here a size update (001 11111 + 225 = 256, "3fe101") says it first.
constexpr std::string_view kSize256 = "3fe101 ";

const Fields kResponse1 = {{":status", "302"},
                           {"cache-control", "private"},
                           {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                           {"location", "https://www.example.com"}};
const Fields kResponse2 = {{":status", "307"},
                           {"cache-control", "private"},
                           {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                           {"location", "https://www.example.com"}};
const Fields kResponse3 = {{":status", "200"},
                           {"cache-control", "private"},
                           {"date", "Mon, 21 Oct 2013 20:13:22 GMT"},
                           {"location", "https://www.example.com"},
                           {"content-encoding", "gzip"},
                           {"set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"}};

TEST(HpackRfc7541, C5ResponsesWithoutHuffmanEvict) {
  HpackDecoder d;
  EXPECT_EQ(Decode(d, std::string(kSize256) +
                          "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 "
                          "3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 "
                          "7777 2e65 7861 6d70 6c65 2e63 6f6d"),
            kResponse1);
  EXPECT_EQ(d.max_table_size(), 256u);
  EXPECT_EQ(d.table_size(), 222u);
  EXPECT_EQ(Decode(d, "4803 3330 37c1 c0bf"), kResponse2);
  EXPECT_EQ(d.table_size(), 222u);  // ":status: 302" evicted
  EXPECT_EQ(d.table_entries(), 4u);
  EXPECT_EQ(Decode(d, "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 "
                      "474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 "
                      "454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 "
                      "6572 7369 6f6e 3d31"),
            kResponse3);
  EXPECT_EQ(d.table_size(), 215u);
  EXPECT_EQ(d.table_entries(), 3u);
}

TEST(HpackRfc7541, C6ResponsesWithHuffmanEvict) {
  HpackDecoder d;
  EXPECT_EQ(Decode(d, std::string(kSize256) +
                          "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 "
                          "66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"),
            kResponse1);
  EXPECT_EQ(d.table_size(), 222u);
  EXPECT_EQ(Decode(d, "4883 640e ffc1 c0bf"), kResponse2);
  EXPECT_EQ(d.table_size(), 222u);
  EXPECT_EQ(Decode(d, "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b "
                      "d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 "
                      "0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"),
            kResponse3);
  EXPECT_EQ(d.table_size(), 215u);
}

TEST(Huffman, RejectsEosLongPaddingAndZeroPadding) {
  std::string out;
  EXPECT_TRUE(HuffmanDecode(Hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), &out));
  EXPECT_EQ(out, "www.example.com");
  out.clear();
  // 'a' is 00011 (5 bits): 00011 111 is 'a' + 3 bits of EOS prefix.
  EXPECT_TRUE(HuffmanDecode(Hex("1f"), &out));
  EXPECT_EQ(out, "a");
  EXPECT_FALSE(HuffmanDecode(Hex("18"), &out));       // padding 000: not EOS's prefix
  EXPECT_FALSE(HuffmanDecode(Hex("1fff"), &out));     // 11 bits of padding
  EXPECT_FALSE(HuffmanDecode(Hex("ffff fffc"), &out));  // the EOS code itself
}

TEST(HpackDecoder, InvalidIndexForgetsTheTable) {
  HpackDecoder d;
  Decode(d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
  Decode(d, "80", HpackDecoder::Result::kInvalid);  // index 0
  EXPECT_FALSE(d.state_known());
  HpackDecoder fresh;
  Decode(fresh, "c0", HpackDecoder::Result::kInvalid);  // dynamic index 63 of an empty table
}

TEST(HpackDecoder, TruncatedBlockSaysSoAfterTheCompleteFields) {
  HpackDecoder d;
  // Request 1 of C.3 cut inside the :authority literal.
  EXPECT_EQ(Decode(d, "8286 8441 0f77 7777", HpackDecoder::Result::kTruncated),
            (Fields{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}));
}

TEST(HpackDecoder, LostStateDecodesStaticAndLiteralFieldsOnly) {
  HpackDecoder d;
  d.LoseState();
  // Request 2 of C.3 references :authority at 62 (be), unknown now; the
  // literal cache-control it inserts becomes index 62 and is known.
  EXPECT_EQ(Decode(d, "8286 84be 5808 6e6f 2d63 6163 6865"),
            (Fields{{":method", "GET"}, {":scheme", "http"}, {":path", "/"},
                    {"cache-control", "no-cache"}}));
  EXPECT_EQ(d.unknown_fields(), 1u);
  EXPECT_EQ(Decode(d, "be"), (Fields{{"cache-control", "no-cache"}}));
  Decode(d, "bf");  // index 63: older than anything seen, unknown
  EXPECT_EQ(d.unknown_fields(), 2u);
  EXPECT_FALSE(d.state_known());
}

TEST(HpackDecoder, EvictionOfAKnownEntryProvesTheStateKnownAgain) {
  HpackDecoder d;
  d.LoseState();
  Decode(d, "3f e101");  // size update to 256
  EXPECT_FALSE(d.state_known());
  // Two entries of 32 + 10 + 100 = 142 octets: the second evicts the first,
  // so every older unknown entry is gone too.
  const std::string value(100, 'x');
  std::string hex = "400a 6375 7374 6f6d 2d6b 6579 64";
  for (char c : value) {
    (void)c;
    hex += "78";
  }
  Decode(d, hex);
  EXPECT_FALSE(d.state_known());
  Decode(d, hex);
  EXPECT_TRUE(d.state_known());
  EXPECT_EQ(d.table_entries(), 1u);
  Decode(d, "bf", HpackDecoder::Result::kInvalid);  // beyond a known table: invalid
}

TEST(HpackDecoder, SizeUpdateToZeroEmptiesAnUnknownTable) {
  HpackDecoder d;
  d.LoseState();
  Decode(d, "20");
  EXPECT_TRUE(d.state_known());
  EXPECT_EQ(d.table_entries(), 0u);
}

TEST(HpackDecoder, ValuesOfUnkeptNamesAreNotStored) {
  HpackDecoder d([](std::string_view name) { return name != "cookie"; });
  // Literal with incremental indexing, indexed name 32 (cookie), value "secret".
  Fields first = Decode(d, "60 06 7365 6372 6574");
  EXPECT_EQ(first, (Fields{{"cookie", "secret"}}));  // the block's own field is passed once
  EXPECT_EQ(Decode(d, "be"), (Fields{{"cookie", ""}}));
  EXPECT_EQ(d.table_size(), 32u + 6 + 6);  // size accounting still exact
}

TEST(HpackDecoder, TableMemoryIsBoundedWhateverThePeersAgree) {
  HpackDecoder d(nullptr, /*max_tracked_size=*/100);
  Decode(d, "3f e11f");  // size update to 4096
  for (int i = 0; i < 5; ++i) Decode(d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
  EXPECT_LE(d.table_size(), 100u);
  EXPECT_FALSE(d.state_known());  // the forgotten ones still exist for the peer
}

}  // namespace
}  // namespace hoptrace::http2
