// The HTTP/2 parser fed like the kernel feeds it: whole, split and gapped
// syscalls, streams interleaved and ending out of order, connections joined
// midway; and the span half (names, attributes, status) of its exchanges.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "agent/protocols/http2/exchange_details.h"
#include "agent/protocols/http2/parser.h"
#include "agent/protocols/http2/protocol.h"
#include "agent/trace/span.h"
#include "agent/trace/span_builder.h"
#include "tests/unit/http2_frames.h"

namespace hoptrace::http2 {
namespace {

using namespace test;  // NOLINT

constexpr std::string_view kTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

struct Recorded {
  std::vector<RequestStart> starts;
  std::vector<std::string> start_traceparents;
  std::vector<Exchange> exchanges;
};

class RecordingSink : public ExchangeSink {
 public:
  void OnRequestStart(const RequestStart& r) override {
    got.starts.push_back(r);
    got.start_traceparents.emplace_back(r.traceparent.value_or(""));
    got.starts.back().traceparent.reset();  // points into the parser
    got.starts.back().tracestate.reset();
  }
  void OnExchange(Exchange e) override { got.exchanges.push_back(std::move(e)); }
  Recorded got;
};

const Http2ExchangeDetails& Details(const Exchange& e) {
  return static_cast<const Http2ExchangeDetails&>(*e.details);
}

// A gRPC unary call on stream `id`; the first call on a connection inserts
// :authority, content-type, user-agent and te in the client's dynamic table,
// later calls reference them (as real encoders do).
std::string GrpcRequestBlock(bool first_on_connection, std::string_view path,
                             std::string_view traceparent = {}) {
  std::string b = Indexed(3);  // :method POST
  b += Indexed(6);                                                      // :scheme http
  b += LiteralNameRef(4, path);                                         // :path
  if (first_on_connection) {
    b += IndexingNameRef(1, "localhost:50051");  // :authority -> dynamic
    b += IndexingNameRef(31, "application/grpc");  // content-type
    b += IndexingNameRef(58, "grpc-python/1.51.1");  // user-agent
    b += Indexing("te", "trailers");
  } else {
    // Newest first: te 62, user-agent 63, content-type 64, :authority 65.
    b += Indexed(65) + Indexed(64) + Indexed(63) + Indexed(62);
  }
  if (!traceparent.empty()) b += Literal("traceparent", traceparent);
  b += Literal("authorization", "Bearer secret");
  return b;
}

std::string GrpcResponseHeaders() { return Indexed(8) + LiteralNameRef(31, "application/grpc"); }
std::string GrpcTrailers(int status) {
  return Literal("grpc-status", std::to_string(status)) + Literal("grpc-message", "msg");
}

class Http2ParserTest : public ::testing::Test {
 protected:
  void Make(Role role, ParserLimits limits = {}) { parser = std::make_unique<Http2Parser>(role, &sink, limits); }
  void Out(std::string_view bytes) { Feed(Direction::kEgress, bytes); }
  void In(std::string_view bytes) { Feed(Direction::kIngress, bytes); }
  void Feed(Direction dir, std::string_view bytes, uint64_t gap = 0) {
    now += 10;
    parser->OnData(dir, bytes, bytes.size() + gap, now, now + 1, 42);
  }
  // Splits bytes into syscalls of n.
  void FeedSplit(Direction dir, std::string_view bytes, size_t n) {
    for (size_t i = 0; i < bytes.size(); i += n) Feed(dir, bytes.substr(i, n));
  }

  RecordingSink sink;
  std::unique_ptr<Http2Parser> parser;
  uint64_t now = 1000;
};

std::string ClientStart() { return std::string(kClientPreface) + Settings(); }

TEST_F(Http2ParserTest, GrpcUnaryCallFromTheStartIsOneExchange) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, GrpcRequestBlock(true, "/helloworld.Greeter/SayHello", kTraceparent)) +
      Data(1, 12, true));
  In(Settings() + MakeFrame(FrameType::kSettings, kFlagAck, 0, ""));
  In(Headers(1, GrpcResponseHeaders()) + Data(1, 10));
  EXPECT_TRUE(sink.got.exchanges.empty());
  In(Headers(1, GrpcTrailers(0), true));

  ASSERT_EQ(sink.got.starts.size(), 1u);
  EXPECT_EQ(sink.got.starts[0].exchange_id, 1u);
  EXPECT_EQ(sink.got.start_traceparents[0], kTraceparent);
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  const Exchange& e = sink.got.exchanges[0];
  EXPECT_EQ(e.exchange_id, 1u);
  EXPECT_EQ(e.outcome, Exchange::Outcome::kComplete);
  ASSERT_TRUE(e.response);
  EXPECT_EQ(e.request.first_byte_ts_enter, 1010u);
  EXPECT_EQ(e.response->first_byte_ts_enter, 1030u);
  EXPECT_EQ(e.response->last_byte_ts_exit, 1041u);
  const auto& d = Details(e);
  EXPECT_EQ(d.SpanName(), "helloworld.Greeter/SayHello");
  EXPECT_EQ(d.request().method, "POST");
  EXPECT_EQ(d.request().authority, "localhost:50051");
  EXPECT_EQ(d.request().user_agent, "grpc-python/1.51.1");
  EXPECT_EQ(d.request().body_bytes, 12u);
  EXPECT_FALSE(d.request().headers_incomplete);
  EXPECT_EQ(d.response()->status, 200);
  EXPECT_EQ(d.response()->grpc_status, 0);
  EXPECT_EQ(d.Traceparent(), kTraceparent);
  EXPECT_EQ(parser->stats().records, 1u);
  EXPECT_EQ(parser->stats().degraded, 0u);
  EXPECT_EQ(parser->pending_requests(), 0u);
}

TEST_F(Http2ParserTest, RoleComesFromThePrefaceWhenNotGiven) {
  Make(Role::kUnknown);
  In(ClientStart() + Headers(1, GrpcRequestBlock(true, "/a.B/C")));
  EXPECT_EQ(parser->role(), Role::kServer);
  Out(Settings() + Headers(1, GrpcResponseHeaders() + GrpcTrailers(0), true));
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  EXPECT_EQ(Details(sink.got.exchanges[0]).SpanName(), "a.B/C");
}

TEST_F(Http2ParserTest, ServerThatWritesItsSettingsFirstIsFollowedFromTheStart) {
  Make(Role::kUnknown);
  Out(Settings(std::string("\x00\x03\x00\x00\x00\x64", 6)));  // MAX_CONCURRENT_STREAMS 100
  In(ClientStart() + Headers(1, GrpcRequestBlock(true, "/a.B/C")) + Data(1, 5, true));
  In(Headers(3, GrpcRequestBlock(false, "/a.B/D")) + Data(3, 5, true));
  EXPECT_EQ(parser->role(), Role::kServer);
  Out(Headers(3, GrpcResponseHeaders() + GrpcTrailers(0), true));
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  const auto& d = Details(sink.got.exchanges[0]);
  EXPECT_EQ(d.request().path, "/a.B/D");
  EXPECT_EQ(d.request().authority, "localhost:50051");  // from the dynamic table
  EXPECT_FALSE(d.request().headers_incomplete);
  EXPECT_EQ(parser->stats().degraded, 0u);
}

TEST_F(Http2ParserTest, InterleavedStreamsEndInAnyOrder) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, GrpcRequestBlock(true, "/s.S/One")) +
      Headers(3, GrpcRequestBlock(false, "/s.S/Three")) + Data(1, 5, true) +
      Headers(5, GrpcRequestBlock(false, "/s.S/Five")) + Data(5, 5, true) + Data(3, 5, true));
  In(Settings() + Headers(5, GrpcResponseHeaders()) + Headers(1, GrpcResponseHeaders()) +
     Data(5, 7) + Headers(5, GrpcTrailers(0), true));
  In(Headers(3, GrpcResponseHeaders() + GrpcTrailers(5), true));  // Trailers-Only
  In(Data(1, 7) + Headers(1, GrpcTrailers(0), true));

  ASSERT_EQ(sink.got.starts.size(), 3u);
  EXPECT_EQ(sink.got.starts[0].exchange_id, 1u);
  EXPECT_EQ(sink.got.starts[1].exchange_id, 3u);
  EXPECT_EQ(sink.got.starts[2].exchange_id, 5u);
  ASSERT_EQ(sink.got.exchanges.size(), 3u);
  EXPECT_EQ(sink.got.exchanges[0].exchange_id, 5u);
  EXPECT_EQ(sink.got.exchanges[1].exchange_id, 3u);
  EXPECT_EQ(sink.got.exchanges[2].exchange_id, 1u);
  EXPECT_EQ(Details(sink.got.exchanges[0]).request().path, "/s.S/Five");
  EXPECT_EQ(Details(sink.got.exchanges[1]).request().path, "/s.S/Three");
  EXPECT_EQ(Details(sink.got.exchanges[1]).response()->grpc_status, 5);
  EXPECT_EQ(Details(sink.got.exchanges[2]).request().path, "/s.S/One");
  EXPECT_EQ(Details(sink.got.exchanges[2]).response()->body_bytes, 7u);
}

TEST_F(Http2ParserTest, OneByteSyscallsGiveTheSameExchanges) {
  Make(Role::kClient);
  FeedSplit(Direction::kEgress,
            ClientStart() + Headers(1, GrpcRequestBlock(true, "/s.S/M", kTraceparent)) +
                Data(1, 3, true) + Headers(3, GrpcRequestBlock(false, "/s.S/N")) + Data(3, 3, true),
            1);
  FeedSplit(Direction::kIngress,
            Settings() + Headers(3, GrpcResponseHeaders() + GrpcTrailers(0), true) +
                Headers(1, GrpcResponseHeaders()) + Data(1, 2) + Headers(1, GrpcTrailers(0), true),
            1);
  ASSERT_EQ(sink.got.exchanges.size(), 2u);
  EXPECT_EQ(Details(sink.got.exchanges[0]).request().path, "/s.S/N");
  EXPECT_EQ(Details(sink.got.exchanges[0]).request().authority, "localhost:50051");
  EXPECT_EQ(Details(sink.got.exchanges[1]).request().traceparent, kTraceparent);
  EXPECT_EQ(sink.got.start_traceparents[0], kTraceparent);
  EXPECT_EQ(parser->stats().degraded, 0u);
}

TEST_F(Http2ParserTest, GapInsideDataIsSkippedAndFramingGoesOn) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, GrpcRequestBlock(true, "/s.S/M")) + Data(1, 3, true));
  In(Settings() + Headers(1, GrpcResponseHeaders()));
  const std::string data = Data(1, 5000);
  Feed(Direction::kIngress, std::string_view(data).substr(0, 100), data.size() - 100);
  In(Headers(1, GrpcTrailers(0), true));
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  EXPECT_EQ(Details(sink.got.exchanges[0]).response()->body_bytes, 5000u);
  EXPECT_EQ(Details(sink.got.exchanges[0]).response()->grpc_status, 0);
  EXPECT_EQ(parser->stats().degraded, 0u);
  EXPECT_EQ(parser->stats().resyncs, 0u);
}

TEST_F(Http2ParserTest, GapInsideAHeaderBlockDegradesAndKeepsWhatCanBeDecoded) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, GrpcRequestBlock(true, "/s.S/M")) + Data(1, 3, true));
  // Stream 3's block cut after :path: the rest (and its table insertions) lost.
  const std::string headers3 = Headers(3, GrpcRequestBlock(false, "/s.S/Cut") +
                                              IndexingNameRef(58, "changes-the-table"));
  const size_t keep = kFrameHeaderSize + 3 + 2 + 7;  // POST, http, :path literal
  Feed(Direction::kEgress, std::string_view(headers3).substr(0, keep), headers3.size() - keep);
  Out(Data(3, 3, true));
  // Stream 5 references the dynamic table (unknown now) and literals.
  Out(Headers(5, Indexed(3) + Indexed(6) + LiteralNameRef(4, "/s.S/After") + Indexed(65)) +
      Data(5, 3, true));
  In(Settings() + Headers(1, GrpcResponseHeaders() + GrpcTrailers(0), true) +
     Headers(3, GrpcResponseHeaders() + GrpcTrailers(0), true) +
     Headers(5, GrpcResponseHeaders() + GrpcTrailers(0), true));

  ASSERT_EQ(sink.got.exchanges.size(), 3u);
  const auto& cut = Details(sink.got.exchanges[1]);
  EXPECT_EQ(cut.request().method, "POST");
  EXPECT_EQ(cut.request().path, "/s.S/Cut");
  EXPECT_TRUE(cut.request().headers_incomplete);
  const auto& after = Details(sink.got.exchanges[2]);
  EXPECT_EQ(after.request().path, "/s.S/After");
  EXPECT_EQ(after.request().authority, "");  // a dynamic reference: unknown
  EXPECT_TRUE(after.request().headers_incomplete);
  EXPECT_EQ(after.response()->grpc_status, 0);  // the other direction is intact
  EXPECT_FALSE(after.response()->headers_incomplete);
  EXPECT_EQ(parser->stats().degraded, 1u);
}

TEST_F(Http2ParserTest, GapOverFrameHeadersResyncsAtTheNextPlausibleFrame) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, GrpcRequestBlock(true, "/s.S/M")) + Data(1, 3, true));
  In(Settings() + Headers(1, GrpcResponseHeaders()));
  // 2 frames lost whole (their end beyond this syscall's payload).
  const std::string lost = Data(1, 10) + Data(1, 10);
  Feed(Direction::kIngress, std::string_view(lost).substr(0, 5), lost.size() - 5);
  In("garbage that is no frame");
  In(Headers(1, GrpcTrailers(0), true));
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  EXPECT_EQ(Details(sink.got.exchanges[0]).response()->grpc_status, 0);
  EXPECT_EQ(parser->stats().resyncs, 1u);
  EXPECT_EQ(parser->stats().invalid_bytes, 24u);
  EXPECT_EQ(parser->stats().degraded, 1u);
}

TEST_F(Http2ParserTest, ConnectionJoinedMidwayDegradesOnceAndDecodesLiterals) {
  Make(Role::kServer);
  In(Headers(7, Indexed(2) + Indexed(7) + LiteralNameRef(4, "/index.html?q=1") + Indexed(70) +
                    Literal("traceparent", kTraceparent),
             true));
  Out(Headers(7, Indexed(8) + Indexed(66)) + Data(7, 20, true));
  Out(Headers(5, Indexed(8), true));  // a request from before we joined
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  const auto& d = Details(sink.got.exchanges[0]);
  EXPECT_EQ(d.request().method, "GET");
  EXPECT_EQ(d.request().scheme, "https");
  EXPECT_EQ(d.request().path, "/index.html?q=1");
  EXPECT_TRUE(d.request().headers_incomplete);
  EXPECT_EQ(d.response()->status, 200);
  EXPECT_EQ(d.SpanName(), "GET");
  EXPECT_EQ(sink.got.start_traceparents[0], kTraceparent);
  EXPECT_EQ(parser->stats().degraded, 1u);
  EXPECT_EQ(parser->stats().orphan_responses, 0u);  // 5 < 7: reset or reported, not orphan
}

TEST_F(Http2ParserTest, ResetStreamsEndWithoutOrWithPartOfTheirResponse) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, GrpcRequestBlock(true, "/s.S/A")) +
      Headers(3, GrpcRequestBlock(false, "/s.S/B")));
  In(Settings() + Headers(3, GrpcResponseHeaders()));
  Out(RstStream(1) + RstStream(3));
  ASSERT_EQ(sink.got.exchanges.size(), 2u);
  EXPECT_EQ(sink.got.exchanges[0].outcome, Exchange::Outcome::kNoResponse);
  EXPECT_EQ(sink.got.exchanges[1].outcome, Exchange::Outcome::kResponseIncomplete);
  In(Data(3, 4, true));  // after the reset: nothing more
  EXPECT_EQ(sink.got.exchanges.size(), 2u);
  EXPECT_EQ(parser->stats().orphan_responses, 0u);
}

TEST_F(Http2ParserTest, CloseEndsPendingStreamsAndGoawayTheUnprocessedOnes) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, GrpcRequestBlock(true, "/s.S/A")) +
      Headers(3, GrpcRequestBlock(false, "/s.S/B")) + Headers(5, GrpcRequestBlock(false, "/s.S/C")));
  In(Settings() + Headers(1, GrpcResponseHeaders()));
  In(MakeFrame(FrameType::kGoaway, 0, 0, std::string("\0\0\0\3\0\0\0\0", 8)));  // last stream 3
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  EXPECT_EQ(sink.got.exchanges[0].exchange_id, 5u);
  EXPECT_EQ(sink.got.exchanges[0].outcome, Exchange::Outcome::kNoResponse);
  parser->OnClose(now);
  ASSERT_EQ(sink.got.exchanges.size(), 3u);
  EXPECT_EQ(sink.got.exchanges[1].outcome, Exchange::Outcome::kResponseIncomplete);
  EXPECT_EQ(sink.got.exchanges[2].outcome, Exchange::Outcome::kNoResponse);
  EXPECT_EQ(parser->pending_requests(), 0u);
}

TEST_F(Http2ParserTest, PaddingPriorityAndContinuationAreUnwrapped) {
  Make(Role::kServer);
  const std::string block = Indexed(2) + Indexed(6) + LiteralNameRef(4, "/long/path") +
                            IndexingNameRef(1, "example.com") + Literal("traceparent", kTraceparent);
  // HEADERS: PADDED (3 bytes) + PRIORITY, first 4 bytes of the block; then
  // two CONTINUATIONs.
  std::string payload = std::string(1, '\3') + std::string("\x80\0\0\0\x10", 5) + block.substr(0, 4) +
                        std::string(3, '\0');
  In(ClientStart() +
     MakeFrame(FrameType::kHeaders, kFlagPadded | kFlagPriority | kFlagEndStream, 1, payload) +
     MakeFrame(FrameType::kContinuation, 0, 1, block.substr(4, 10)) +
     MakeFrame(FrameType::kContinuation, kFlagEndHeaders, 1, block.substr(14)));
  Out(Settings() + Headers(1, Indexed(8)) + Data(1, 0, true));
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  const auto& d = Details(sink.got.exchanges[0]);
  EXPECT_EQ(d.request().path, "/long/path");
  EXPECT_EQ(d.request().authority, "example.com");
  EXPECT_EQ(d.request().traceparent, kTraceparent);
  EXPECT_FALSE(d.request().headers_incomplete);
}

TEST_F(Http2ParserTest, InformationalResponsesPrecedeTheFinalOne) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, Indexed(3) + Indexed(6) + Indexed(4), false) + Data(1, 3, true));
  In(Settings() + Headers(1, LiteralNameRef(8, "100")) + Headers(1, Indexed(14)) + Data(1, 1, true));
  ASSERT_EQ(sink.got.exchanges.size(), 1u);
  EXPECT_EQ(Details(sink.got.exchanges[0]).response()->status, 500);
}

TEST_F(Http2ParserTest, StreamsPastTheBoundAreCountedNotAnnounced) {
  ParserLimits limits;
  limits.max_pending_requests = 2;
  Make(Role::kClient, limits);
  Out(ClientStart() + Headers(1, Indexed(2) + Indexed(6) + Indexed(4)) +
      Headers(3, Indexed(2) + Indexed(6) + Indexed(4)) + Headers(5, Indexed(2) + Indexed(6) + Indexed(4)));
  EXPECT_EQ(sink.got.starts.size(), 2u);
  EXPECT_EQ(parser->stats().pending_overflow, 1u);
  In(Settings() + Headers(5, Indexed(8), true));  // its response: ignored
  EXPECT_EQ(sink.got.exchanges.size(), 0u);
  EXPECT_EQ(parser->stats().orphan_responses, 0u);
}

TEST_F(Http2ParserTest, AuthorizationAndCookieValuesAreNeverKept) {
  Make(Role::kClient);
  Out(ClientStart() + Headers(1, Indexed(2) + Indexed(6) + Indexed(4) +
                                     IndexingNameRef(23, "Bearer secret") +
                                     IndexingNameRef(32, "session=secret")));
  Out(Headers(3, Indexed(2) + Indexed(6) + Indexed(4) + Indexed(62) + Indexed(63)));
  In(Settings() + Headers(1, Indexed(8), true) + Headers(3, Indexed(8), true));
  ASSERT_EQ(sink.got.exchanges.size(), 2u);
  // Nothing in the parser's output holds the value; the decoder keeps only sizes.
  for (const auto& e : sink.got.exchanges) {
    const Message& r = Details(e).request();
    for (const std::string* s : {&r.method, &r.path, &r.scheme, &r.authority, &r.user_agent,
                                 &r.traceparent, &r.tracestate, &r.content_type}) {
      EXPECT_EQ(s->find("secret"), std::string::npos);
    }
  }
}

TEST(Http2Recognition, PrefaceAndServerSettingsStartHttp2) {
  EXPECT_TRUE(LooksLikeHttp2Start(kClientPreface));
  EXPECT_TRUE(LooksLikeHttp2Start("PRI * HT"));
  EXPECT_FALSE(LooksLikeHttp2Start("PR"));
  EXPECT_FALSE(LooksLikeHttp2Start("GET / HTTP/1.1\r\n"));
  EXPECT_TRUE(LooksLikeHttp2Start(Settings(std::string("\0\4\0\1\0\0", 6))));
  EXPECT_FALSE(LooksLikeHttp2Start(MakeFrame(FrameType::kSettings, kFlagAck, 0, "")));
  EXPECT_FALSE(LooksLikeHttp2Start(Data(1, 3)));
}

TEST(Http2Recognition, RegistryPicksHttp2ByTagAndByItsFirstBytes) {
  EXPECT_EQ(ProtocolForTag(HT_PROTO_HTTP2), &kProtocol);
  const Protocol* p = RecogniseProtocol(std::string(kClientPreface) + Settings());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "http2");
  EXPECT_EQ(RecogniseProtocol("GET / HTTP/1.1\r\n")->name, "http1");
}

// --- the span half -------------------------------------------------------

ConnInfo Conn() {
  ConnInfo c;
  c.tuple_known = true;
  c.family = 2;  // AF_INET
  c.local_addr = {127, 0, 0, 1};
  c.remote_addr = {127, 0, 0, 2};
  c.local_port = 50051;
  c.remote_port = 40000;
  return c;
}

std::map<std::string, AttrValue> AttrMap(const Span& s) {
  std::map<std::string, AttrValue> m;
  for (const auto& a : s.attributes) m[std::string(a.key.view())] = a.value;
  return m;
}

Message GrpcRequest(std::string path) {
  Message m;
  m.method = "POST";
  m.scheme = "http";
  m.path = std::move(path);
  m.authority = "greeter.local:50051";
  m.content_type = "application/grpc+proto";
  m.user_agent = "grpc-node-js/1.9.0";
  m.headers_seen = true;
  return m;
}

Message GrpcResponse(int grpc_status) {
  Message m;
  m.status = 200;
  m.content_type = "application/grpc";
  m.grpc_status = grpc_status;
  m.headers_seen = true;
  return m;
}

TEST(Http2Details, GrpcServerSpanHasRpcAttributes) {
  Http2ExchangeDetails d(GrpcRequest("/helloworld.Greeter/SayHello"), GrpcResponse(0));
  Span span;
  d.AddAttributes(Conn(), /*server=*/true, SpanBuildOptions{}, &span);
  d.SetStatus(true, &span);
  auto a = AttrMap(span);
  EXPECT_EQ(d.SpanName(), "helloworld.Greeter/SayHello");
  EXPECT_EQ(a["rpc.system"], AttrValue(std::string("grpc")));
  EXPECT_EQ(a["rpc.service"], AttrValue(std::string("helloworld.Greeter")));
  EXPECT_EQ(a["rpc.method"], AttrValue(std::string("SayHello")));
  EXPECT_EQ(a["rpc.grpc.status_code"], AttrValue(int64_t{0}));
  EXPECT_EQ(a["server.address"], AttrValue(std::string("greeter.local")));
  EXPECT_EQ(a["server.port"], AttrValue(int64_t{50051}));
  EXPECT_EQ(a["client.address"], AttrValue(std::string("127.0.0.2")));
  EXPECT_EQ(a["network.protocol.name"], AttrValue(std::string("http")));
  EXPECT_EQ(a["network.protocol.version"], AttrValue(std::string("2")));
  EXPECT_EQ(a["user_agent.original"], AttrValue(std::string("grpc-node-js/1.9.0")));
  EXPECT_FALSE(a.contains("http.request.method"));
  EXPECT_EQ(span.status, StatusCode::kUnset);
}

TEST(Http2Details, GrpcErrorsFollowTheServerAndClientRules) {
  struct Case {
    int code;
    bool server_error;
  };
  for (const Case c : {Case{0, false}, Case{1, false}, Case{2, true}, Case{3, false},
                       Case{4, true}, Case{5, false}, Case{12, true}, Case{13, true},
                       Case{14, true}, Case{15, true}, Case{16, false}}) {
    Http2ExchangeDetails d(GrpcRequest("/a.B/C"), GrpcResponse(c.code));
    Span server, client;
    d.SetStatus(true, &server);
    d.SetStatus(false, &client);
    EXPECT_EQ(server.status == StatusCode::kError, c.server_error) << c.code;
    EXPECT_EQ(client.status == StatusCode::kError, c.code != 0) << c.code;
    if (c.code == 14) {
      EXPECT_EQ(AttrMap(client)["error.type"], AttrValue(std::string("UNAVAILABLE")));
    }
  }
}

TEST(Http2Details, PlainHttp2ClientSpanHasUrlAndStatus) {
  Message req;
  req.method = "GET";
  req.scheme = "http";
  req.path = "/api/items?token=abc&x";
  req.authority = "localhost:8080";
  Message resp;
  resp.status = 404;
  resp.headers_seen = true;
  Http2ExchangeDetails d(req, resp);
  Span span;
  d.AddAttributes(Conn(), /*server=*/false, SpanBuildOptions{}, &span);
  d.SetStatus(false, &span);
  auto a = AttrMap(span);
  EXPECT_EQ(d.SpanName(), "GET");
  EXPECT_EQ(a["http.request.method"], AttrValue(std::string("GET")));
  EXPECT_EQ(a["url.full"], AttrValue(std::string("http://localhost:8080/api/items?token=REDACTED&x")));
  EXPECT_EQ(a["http.response.status_code"], AttrValue(int64_t{404}));
  EXPECT_EQ(a["server.address"], AttrValue(std::string("localhost")));
  EXPECT_EQ(a["server.port"], AttrValue(int64_t{8080}));
  EXPECT_EQ(span.status, StatusCode::kError);
  EXPECT_EQ(a["error.type"], AttrValue(std::string("404")));
  Span server;
  d.SetStatus(true, &server);
  EXPECT_EQ(server.status, StatusCode::kUnset);  // 4xx is the client's error
}

}  // namespace
}  // namespace hoptrace::http2
