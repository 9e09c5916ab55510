// HTTP/1.1 connections upgraded to h2c (RFC 7540 3.2), through the
// registry's HTTP/1 parser as the connection tracker gets it: the upgraded
// request becomes HTTP/2 stream 1, answered in HTTP/2; later streams follow;
// the 101 itself is no exchange. Fed whole, split and with the 101 and the
// first frames in one syscall, as real clients and servers write them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/protocols/http1/protocol.h"
#include "agent/protocols/http2/exchange_details.h"
#include "agent/protocols/http2/h2c_upgrade.h"
#include "agent/protocols/protocol.h"
#include "tests/unit/http2_frames.h"

namespace hoptrace::http2 {
namespace {

using namespace test;  // NOLINT

constexpr std::string_view kTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
// curl 7.88's HTTP2-Settings: MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE
// 32 MiB, ENABLE_PUSH 0 (no header table size).
constexpr std::string_view kCurlSettings = "AAMAAABkAAQCAAAAAAIAAAAA";

std::string UpgradeRequest(std::string_view path, std::string_view upgrade = "h2c") {
  return "GET " + std::string(path) +
         " HTTP/1.1\r\nHost: 10.0.0.2:8083\r\nUser-Agent: h2c-test/1\r\n"
         "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: " +
         std::string(upgrade) + "\r\nHTTP2-Settings: " + std::string(kCurlSettings) +
         "\r\ntraceparent: " + std::string(kTraceparent) + "\r\n\r\n";
}

constexpr std::string_view kSwitching =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

// GET path on stream id (static table: 2 = :method GET, 6 = :scheme http,
// 4 = :path, 1 = :authority).
std::string GetBlock(std::string_view path) {
  return Indexed(2) + Indexed(6) + LiteralNameRef(4, path) + LiteralNameRef(1, "10.0.0.2:8083");
}
std::string Status(int code) { return code == 200 ? Indexed(8) : Indexed(13); }  // 8: 200, 13: 404

struct Sink : ExchangeSink {
  void OnRequestStart(const RequestStart& r) override {
    starts.push_back(r.exchange_id);
    traceparents.emplace_back(r.traceparent.value_or(""));
  }
  void OnExchange(Exchange e) override { exchanges.push_back(std::move(e)); }
  std::vector<uint64_t> starts;
  std::vector<std::string> traceparents;
  std::vector<Exchange> exchanges;
};

class H2cUpgradeTest : public ::testing::Test {
 protected:
  void Make(Role role) { parser = ProtocolForTag(HT_PROTO_HTTP1)->new_parser(role, &sink, {}); }
  void Feed(Direction dir, std::string_view bytes, uint64_t gap = 0) {
    now += 10;
    parser->OnData(dir, bytes, bytes.size() + gap, now, now + 1, 7);
  }
  void In(std::string_view b) { Feed(Direction::kIngress, b); }
  void Out(std::string_view b) { Feed(Direction::kEgress, b); }
  const Message& Req(size_t i) {
    return static_cast<const Http2ExchangeDetails&>(*sink.exchanges.at(i).details).request();
  }
  const Message& Resp(size_t i) {
    return *static_cast<const Http2ExchangeDetails&>(*sink.exchanges.at(i).details).response();
  }

  Sink sink;
  std::unique_ptr<ProtocolParser> parser;
  uint64_t now = 1000;
};

TEST_F(H2cUpgradeTest, ServerFollowsTheUpgradedRequestAsStreamOneAndLaterStreams) {
  Make(Role::kUnknown);
  In(UpgradeRequest("/hello"));
  ASSERT_EQ(sink.starts, std::vector<uint64_t>{1});
  EXPECT_EQ(sink.traceparents[0], kTraceparent);
  // python3-h2 and nghttp2 write the 101, their SETTINGS and stream 1's
  // response in one go.
  Out(std::string(kSwitching) + Settings() + Headers(1, Status(200)) + Data(1, 6, true));
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].exchange_id, 1u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kComplete);
  EXPECT_EQ(sink.exchanges[0].request.first_byte_ts_enter, 1010u);
  EXPECT_EQ(sink.exchanges[0].response->first_byte_ts_enter, 1020u);
  EXPECT_EQ(Req(0).method, "GET");
  EXPECT_EQ(Req(0).path, "/hello");
  EXPECT_EQ(Req(0).scheme, "http");
  EXPECT_EQ(Req(0).authority, "10.0.0.2:8083");
  EXPECT_EQ(Req(0).user_agent, "h2c-test/1");
  EXPECT_EQ(Req(0).traceparent, kTraceparent);
  EXPECT_EQ(Resp(0).status, 200);
  EXPECT_EQ(Resp(0).body_bytes, 6u);
  EXPECT_EQ(sink.exchanges[0].details->SpanName(), "GET");

  // The client's preface, then two more requests as HTTP/2 streams.
  In(std::string(kClientPreface) + Settings() + MakeFrame(FrameType::kSettings, kFlagAck, 0, ""));
  In(Headers(3, GetBlock("/missing") + Literal("traceparent", kTraceparent), true));
  In(Headers(5, GetBlock("/hello"), true));
  EXPECT_EQ(sink.starts, (std::vector<uint64_t>{1, 3, 5}));
  EXPECT_EQ(sink.traceparents[1], kTraceparent);
  Out(Headers(5, Status(200)) + Data(5, 6, true));  // answered out of order
  Out(Headers(3, Status(404), true));
  ASSERT_EQ(sink.exchanges.size(), 3u);
  EXPECT_EQ(sink.exchanges[1].exchange_id, 5u);
  EXPECT_EQ(Req(1).path, "/hello");
  EXPECT_EQ(sink.exchanges[2].exchange_id, 3u);
  EXPECT_EQ(Req(2).path, "/missing");
  EXPECT_EQ(Resp(2).status, 404);
  EXPECT_EQ(parser->role(), Role::kServer);
  EXPECT_EQ(parser->pending_requests(), 0u);
  EXPECT_EQ(parser->stats().records, 3u);
  EXPECT_EQ(parser->stats().degraded, 0u);
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(H2cUpgradeTest, ClientWhoseReadSplitsThe101FromItsFrames) {
  Make(Role::kUnknown);
  Out(UpgradeRequest("/hello"));
  const std::string in = std::string(kSwitching) + Settings() + Headers(1, Status(200)) +
                         Data(1, 6, true);
  // The 101's head ends inside the second read, frames follow in it and
  // in a third one.
  In(in.substr(0, 20));
  In(in.substr(20, kSwitching.size() - 20 + 12));
  EXPECT_TRUE(sink.exchanges.empty());
  In(in.substr(kSwitching.size() + 12));
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].exchange_id, 1u);
  EXPECT_EQ(Resp(0).status, 200);
  Out(std::string(kClientPreface) + Settings() + Headers(3, GetBlock("/missing"), true));
  In(Headers(3, Status(404), true));
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(sink.exchanges[1].exchange_id, 3u);
  EXPECT_EQ(Resp(1).status, 404);
  EXPECT_EQ(parser->role(), Role::kClient);
  EXPECT_EQ(parser->stats().degraded, 0u);
}

TEST_F(H2cUpgradeTest, UpgradeOnALaterKeepAliveRequestKeepsIdsUnique) {
  Make(Role::kServer);
  In("GET /first HTTP/1.1\r\nHost: h\r\n\r\n");
  Out("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  In(UpgradeRequest("/second"));
  Out(std::string(kSwitching) + Settings());
  Out(Headers(1, Status(200), true));
  In(std::string(kClientPreface) + Settings() + Headers(3, GetBlock("/third"), true));
  Out(Headers(3, Status(200), true));
  // HTTP/1 ids 1 and 2 (the upgraded request); stream 3 after them.
  EXPECT_EQ(sink.starts, (std::vector<uint64_t>{1, 2, 4}));
  ASSERT_EQ(sink.exchanges.size(), 3u);
  EXPECT_EQ(sink.exchanges[0].exchange_id, 1u);
  EXPECT_EQ(sink.exchanges[1].exchange_id, 2u);
  EXPECT_EQ(Req(1).path, "/second");
  EXPECT_EQ(sink.exchanges[2].exchange_id, 4u);
  EXPECT_EQ(Req(2).path, "/third");
}

TEST_F(H2cUpgradeTest, RequestPipelinedAfterTheUpgradeRequestEndsUnansweredAtThe101) {
  Make(Role::kServer);
  // RFC 7540 3.2 forbids it; a broken client may still do it.
  In(UpgradeRequest("/hello") + "GET /pipelined HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(sink.starts, (std::vector<uint64_t>{1, 2}));
  Out(std::string(kSwitching) + Settings() + Headers(1, Status(200), true));
  In(std::string(kClientPreface) + Settings() + Headers(3, GetBlock("/third"), true));
  Out(Headers(3, Status(200), true));
  // Stream 3 gets an id above every HTTP/1 one.
  EXPECT_EQ(sink.starts, (std::vector<uint64_t>{1, 2, 4}));
  ASSERT_EQ(sink.exchanges.size(), 3u);
  EXPECT_EQ(sink.exchanges[0].exchange_id, 2u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kNoResponse);
  EXPECT_EQ(sink.exchanges[1].exchange_id, 1u);
  EXPECT_EQ(Req(1).path, "/hello");
  EXPECT_EQ(sink.exchanges[2].exchange_id, 4u);
  EXPECT_EQ(Req(2).path, "/third");
  EXPECT_EQ(parser->pending_requests(), 0u);
}

TEST_F(H2cUpgradeTest, UpgradeTheServerDeclinesStaysHttp1) {
  Make(Role::kServer);
  In(UpgradeRequest("/hello"));
  Out("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  In("GET /again HTTP/1.1\r\nHost: h\r\n\r\n");
  Out("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(sink.exchanges.size(), 2u);
  for (const Exchange& e : sink.exchanges) {
    EXPECT_NE(dynamic_cast<const http1::HttpExchangeDetails*>(e.details.get()), nullptr);
  }
  EXPECT_EQ(sink.exchanges[1].details->SpanName(), "GET");
}

TEST_F(H2cUpgradeTest, SwitchToAnotherProtocolIsNotFollowed) {
  Make(Role::kServer);
  In("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  Out("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
      std::string("\x81\x05hello", 7));
  In(std::string("\x81\x85\0\0\0\0hello", 11));
  ASSERT_EQ(sink.exchanges.size(), 1u);  // the 101 itself, as before
  const auto* d = dynamic_cast<const http1::HttpExchangeDetails*>(sink.exchanges[0].details.get());
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->record().response->status_code, 101);
  EXPECT_EQ(parser->stats().degraded, 0u);
}

TEST_F(H2cUpgradeTest, A101ToH2cTheClientDidNotOfferIsNotFollowed) {
  Make(Role::kServer);
  In("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  Out(std::string(kSwitching) + Settings());
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_NE(dynamic_cast<const http1::HttpExchangeDetails*>(sink.exchanges[0].details.get()),
            nullptr);
}

TEST_F(H2cUpgradeTest, ConnectionClosedBeforeStreamOneIsAnsweredReportsItOnce) {
  Make(Role::kServer);
  In(UpgradeRequest("/slow"));
  Out(std::string(kSwitching) + Settings());
  EXPECT_EQ(parser->pending_requests(), 1u);
  parser->OnClose(2000);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].exchange_id, 1u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kNoResponse);
  EXPECT_EQ(Req(0).path, "/slow");
}

TEST(H2cSettings, HeaderTableSizeFromHttp2Settings) {
  EXPECT_EQ(HeaderTableSizeOf(kCurlSettings), std::nullopt);
  // SETTINGS_HEADER_TABLE_SIZE (0x1) = 4096, then = 256: the last one wins.
  EXPECT_EQ(HeaderTableSizeOf("AAEAABAA"), 4096u);
  EXPECT_EQ(HeaderTableSizeOf("AAEAABAAAAEAAAEA"), 256u);
  EXPECT_EQ(HeaderTableSizeOf("AAEAABAA=="), 4096u);  // padding, though RFC 7540 omits it
  EXPECT_EQ(HeaderTableSizeOf("AAEAAB"), std::nullopt);  // not whole settings
  EXPECT_EQ(HeaderTableSizeOf("AAEA+BAA"), std::nullopt);  // base64, not base64url
  EXPECT_EQ(HeaderTableSizeOf(""), std::nullopt);
}

}  // namespace
}  // namespace hoptrace::http2
