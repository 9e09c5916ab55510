// Stitcher: framing (RFC 9112 6.3), pairing, gaps and resync, fed syscall by
// syscall the way ConnTracker feeds it, with a fake clock.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/http1/stitcher.h"

namespace hoptrace::http1 {
namespace {

using namespace std::string_literals;
using Outcome = Record::Outcome;

struct FakeListener : Listener {
  void OnRequestHead(const Message& request) override { heads.push_back(request); }
  void OnRecord(Record record) override { records.push_back(std::move(record)); }
  std::vector<Message> heads;
  std::vector<Record> records;
};

// One connection seen from the traced process. Each syscall gets
// ts_enter = now, ts_exit = now + 1, then the clock moves 10 ns.
class Conn {
 public:
  explicit Conn(Role role, StitcherLimits limits = {}) : stitcher_(role, &listener_, limits) {}

  // Server-side helpers: requests are read, responses written.
  void In(std::string_view captured, uint64_t total = 0) {
    Feed(Direction::kIngress, captured, total);
  }
  void Out(std::string_view captured, uint64_t total = 0) {
    Feed(Direction::kEgress, captured, total);
  }
  void Feed(Direction dir, std::string_view captured, uint64_t total = 0, uint32_t tid = 42) {
    stitcher_.OnData(dir, captured, total == 0 ? captured.size() : total, now_, now_ + 1, tid);
    now_ += 10;
  }
  void Close() { stitcher_.OnClose(now_); }

  uint64_t now() const { return now_; }
  Stitcher& stitcher() { return stitcher_; }
  const StitcherStats& stats() { return stitcher_.stats(); }
  std::vector<Record>& records() { return listener_.records; }
  std::vector<Message>& heads() { return listener_.heads; }

 private:
  FakeListener listener_;
  Stitcher stitcher_;
  uint64_t now_ = 1000;
};

constexpr std::string_view kGet = "GET /a HTTP/1.1\r\nHost: svc\r\n\r\n";
constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

std::string Get(std::string_view target) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: svc\r\n\r\n";
}
std::string Ok(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

// --- pairing and roles -----------------------------------------------------

TEST(StitcherTest, PairsRequestWithResponseAsServer) {
  Conn c(Role::kServer);
  c.In(kGet);
  c.Out(kOk);
  ASSERT_EQ(c.records().size(), 1u);
  const Record& r = c.records()[0];
  EXPECT_EQ(r.outcome, Outcome::kComplete);
  EXPECT_EQ(r.request.method, "GET");
  EXPECT_EQ(r.request.target, "/a");
  EXPECT_EQ(r.request.Header("host"), "svc");
  EXPECT_TRUE(r.request.body_complete);
  ASSERT_TRUE(r.response.has_value());
  EXPECT_EQ(r.response->status_code, 200);
  EXPECT_EQ(r.response->body_bytes, 5u);
  EXPECT_EQ(r.response->head_bytes, kOk.size() - 5);
  EXPECT_TRUE(r.response->body_complete);
  EXPECT_EQ(c.stitcher().pending_requests(), 0u);
  EXPECT_EQ(c.stats().records, 1u);
}

TEST(StitcherTest, ClientRoleWritesRequestsAndReadsResponses) {
  Conn c(Role::kClient);
  c.Out(kGet);
  c.In(kOk);
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].request.target, "/a");
  EXPECT_EQ(c.records()[0].response->body_bytes, 5u);
}

TEST(StitcherTest, UnknownRoleBecomesServerWhenRequestIsRead) {
  Conn c(Role::kUnknown);
  c.In(kGet);
  EXPECT_EQ(c.stitcher().role(), Role::kServer);
  c.Out(kOk);
  EXPECT_EQ(c.records().size(), 1u);
}

TEST(StitcherTest, UnknownRoleBecomesClientWhenRequestIsWritten) {
  Conn c(Role::kUnknown);
  c.Out("H");  // HEAD or HTTP/1.x: undecided
  EXPECT_EQ(c.stitcher().role(), Role::kUnknown);
  c.Out("EAD /h HTTP/1.1\r\n\r\n");
  EXPECT_EQ(c.stitcher().role(), Role::kClient);
  c.In("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].request.method, "HEAD");
}

TEST(StitcherTest, UnknownRoleInfersClientFromResponseRead) {
  Conn c(Role::kUnknown);
  c.In(kOk);
  EXPECT_EQ(c.stitcher().role(), Role::kClient);
  EXPECT_EQ(c.stats().orphan_responses, 1u);
  EXPECT_TRUE(c.records().empty());
  c.Out(kGet);
  c.In(kOk);
  EXPECT_EQ(c.records().size(), 1u);
}

TEST(StitcherTest, ReportsRequestHeadBeforeResponse) {
  Conn c(Role::kServer);
  c.Feed(Direction::kIngress, "POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 0, 7);
  ASSERT_EQ(c.heads().size(), 1u);
  EXPECT_EQ(c.heads()[0].method, "POST");
  EXPECT_EQ(c.heads()[0].first_byte_ts_enter, 1000u);
  EXPECT_EQ(c.heads()[0].first_byte_ts_exit, 1001u);
  EXPECT_EQ(c.heads()[0].tid, 7u);
  EXPECT_EQ(c.stitcher().pending_requests(), 1u);
  EXPECT_TRUE(c.records().empty());
}

TEST(StitcherTest, PairsPipelinedRequestsInOrder) {
  Conn c(Role::kServer);
  c.In(Get("/1") + Get("/2") + "POST /3 HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy");
  EXPECT_EQ(c.heads().size(), 3u);
  EXPECT_EQ(c.stitcher().pending_requests(), 3u);
  c.Out(Ok("one") + Ok("two!"));
  c.Out(Ok("three"));
  ASSERT_EQ(c.records().size(), 3u);
  EXPECT_EQ(c.records()[0].request.target, "/1");
  EXPECT_EQ(c.records()[0].response->body_bytes, 3u);
  EXPECT_EQ(c.records()[1].request.target, "/2");
  EXPECT_EQ(c.records()[1].response->body_bytes, 4u);
  EXPECT_EQ(c.records()[2].request.target, "/3");
  EXPECT_EQ(c.records()[2].request.body_bytes, 2u);
  EXPECT_EQ(c.records()[2].response->body_bytes, 5u);
}

TEST(StitcherTest, KeepAliveExchangesAreRecordedSeparately) {
  Conn c(Role::kServer);
  for (int i = 0; i < 5; ++i) {
    c.In(Get("/" + std::to_string(i)));
    c.Out(Ok(std::string(i, 'x')));
  }
  ASSERT_EQ(c.records().size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(c.records()[i].request.target, "/" + std::to_string(i));
    EXPECT_EQ(c.records()[i].response->body_bytes, static_cast<uint64_t>(i));
  }
}

TEST(StitcherTest, OrphanResponseIsCountedAndDropped) {
  Conn c(Role::kServer);
  c.Out(kOk);
  EXPECT_EQ(c.stats().orphan_responses, 1u);
  EXPECT_TRUE(c.records().empty());
  c.In(kGet);
  c.Out(kOk);
  EXPECT_EQ(c.records().size(), 1u);
}

TEST(StitcherTest, DropsOldestPendingRequestPastLimit) {
  StitcherLimits limits;
  limits.max_pending_requests = 2;
  Conn c(Role::kServer, limits);
  c.In(Get("/1") + Get("/2") + Get("/3"));
  EXPECT_EQ(c.heads().size(), 3u);
  EXPECT_EQ(c.stats().pending_overflow, 1u);
  EXPECT_EQ(c.stitcher().pending_requests(), 2u);
  c.Out(Ok("a"));
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].request.target, "/2");
}

// --- body framing (RFC 9112 6.3) --------------------------------------------

TEST(StitcherTest, HeadResponseHasNoBody) {
  Conn c(Role::kServer);
  c.In("HEAD /h HTTP/1.1\r\n\r\n" + Get("/next"));
  c.Out("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + Ok("abc"));
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_EQ(c.records()[0].request.method, "HEAD");
  EXPECT_EQ(c.records()[0].response->body_bytes, 0u);
  EXPECT_TRUE(c.records()[0].response->body_complete);
  EXPECT_EQ(c.records()[1].request.target, "/next");
  EXPECT_EQ(c.records()[1].response->body_bytes, 3u);
}

TEST(StitcherTest, NoContentAndNotModifiedHaveNoBody) {
  Conn c(Role::kServer);
  c.In(Get("/1") + Get("/2"));
  c.Out("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n");
  c.Out("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_EQ(c.records()[0].response->status_code, 204);
  EXPECT_EQ(c.records()[1].response->status_code, 304);
  EXPECT_EQ(c.records()[1].response->body_bytes, 0u);
}

TEST(StitcherTest, InterimContinueDoesNotCompleteExchange) {
  Conn c(Role::kServer);
  c.In("PUT /u HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  c.Out("HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_TRUE(c.records().empty());
  EXPECT_EQ(c.stitcher().pending_requests(), 1u);
  c.In("abc");
  c.Out("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].response->status_code, 201);
  EXPECT_EQ(c.records()[0].request.body_bytes, 3u);
  EXPECT_EQ(c.stats().orphan_responses, 0u);
}

TEST(StitcherTest, SwitchingProtocolsUpgradesAndIgnoresTheRest) {
  Conn c(Role::kServer);
  c.In("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  c.Out("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].response->status_code, 101);
  EXPECT_TRUE(c.stitcher().upgraded());
  c.In("\x81\x85garbage frames");
  c.Out("\x81\x05hello");
  EXPECT_EQ(c.stats().invalid_bytes, 0u);
  EXPECT_EQ(c.records().size(), 1u);
}

TEST(StitcherTest, SuccessfulConnectBecomesTunnel) {
  Conn c(Role::kClient);
  c.Out("CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n");
  c.In("HTTP/1.1 200 Connection Established\r\n\r\n");
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_TRUE(c.stitcher().upgraded());
  c.Out("\x16\x03\x01 tls bytes");
  EXPECT_EQ(c.stats().invalid_bytes, 0u);
}

TEST(StitcherTest, RefusedConnectStaysHttp) {
  Conn c(Role::kClient);
  c.Out("CONNECT db:5432 HTTP/1.1\r\n\r\n");
  c.In("HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno");
  EXPECT_FALSE(c.stitcher().upgraded());
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].response->body_bytes, 2u);
}

constexpr std::string_view kChunked =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;name=value\r\nhello\r\n"
    "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "0\r\nX-Trailer: t\r\n\r\n";
constexpr size_t kChunkedHead = 47;

TEST(StitcherTest, DecodesChunkedBodyWithExtensionsAndTrailers) {
  Conn c(Role::kServer);
  c.In(std::string(kGet) + std::string(kGet));
  c.Out(std::string(kChunked) + std::string(kOk));
  ASSERT_EQ(c.records().size(), 2u);
  const Message& resp = *c.records()[0].response;
  EXPECT_TRUE(resp.chunked);
  EXPECT_TRUE(resp.body_complete);
  EXPECT_EQ(resp.head_bytes, kChunkedHead);
  EXPECT_EQ(resp.body_bytes, kChunked.size() - kChunkedHead);  // as on the wire
  EXPECT_EQ(c.records()[1].response->body_bytes, 5u);          // framing resumes after the trailer
  EXPECT_EQ(c.stitcher().pending_requests(), 0u);
}

TEST(StitcherTest, ChunkedRequestBodyWithBareLf) {
  Conn c(Role::kServer);
  c.In("POST /c HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n");
  c.Out(kOk);
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_TRUE(c.records()[0].request.body_complete);
  EXPECT_EQ(c.records()[0].request.body_bytes, 9u);
}

TEST(StitcherTest, BadChunkSizeLosesFraming) {
  Conn c(Role::kServer);
  c.In(kGet);
  c.Out("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  EXPECT_TRUE(c.records().empty());
  c.In(kGet);
  c.Out(kOk);  // the resync point ends the broken response
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_TRUE(c.records()[0].response->body_framing_lost);
  EXPECT_FALSE(c.records()[0].response->body_complete);
  EXPECT_EQ(c.records()[1].response->body_bytes, 5u);
  EXPECT_EQ(c.stats().resyncs, 1u);
}

TEST(StitcherTest, RequestWithoutLengthHasNoBody) {
  Conn c(Role::kServer);
  c.In("DELETE /x HTTP/1.1\r\n\r\n" + Get("/y"));
  EXPECT_EQ(c.heads().size(), 2u);
  EXPECT_EQ(c.stats().invalid_bytes, 0u);
}

TEST(StitcherTest, ResponseWithoutLengthEndsAtClose) {
  Conn c(Role::kClient);
  c.Out(kGet);
  c.In("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>");
  c.In("</html>", 5000);
  EXPECT_TRUE(c.records().empty());
  c.Close();
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].outcome, Outcome::kComplete);
  EXPECT_EQ(c.records()[0].response->body_bytes, 5006u);
  EXPECT_TRUE(c.records()[0].response->body_complete);
  EXPECT_EQ(c.records()[0].response->last_byte_ts_enter, 1020u);
}

TEST(StitcherTest, NonChunkedTransferEncodingResponseEndsAtClose) {
  Conn c(Role::kClient);
  c.Out(kGet);
  c.In("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef");
  EXPECT_TRUE(c.records().empty());
  c.Close();
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].response->body_bytes, 6u);
}

TEST(StitcherTest, SkipsEmptyLinesBeforeRequest) {
  Conn c(Role::kServer);
  c.In("POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nz\r\n");  // stray CRLF after body
  c.In(kGet);
  ASSERT_EQ(c.heads().size(), 2u);
  EXPECT_EQ(c.heads()[1].first_byte_ts_enter, 1010u);
  EXPECT_EQ(c.stats().invalid_bytes, 0u);
}

// --- timestamps --------------------------------------------------------------

TEST(StitcherTest, TimestampsComeFromFirstAndLastSyscalls) {
  Conn c(Role::kServer);
  c.Feed(Direction::kIngress, "POST /t HTTP/1.1\r\nCont", 0, 7);    // 1000
  c.Feed(Direction::kIngress, "ent-Length: 4\r\n\r\nab", 0, 8);     // 1010
  c.Feed(Direction::kIngress, "cd", 0, 9);                          // 1020
  c.Feed(Direction::kEgress, "HTTP/1.1 200 OK\r\nContent-", 0, 7);  // 1030
  c.Feed(Direction::kEgress, "Length: 3\r\n\r\nx", 0, 7);           // 1040
  c.Feed(Direction::kEgress, "yz", 0, 7);                           // 1050
  ASSERT_EQ(c.records().size(), 1u);
  const Record& r = c.records()[0];
  EXPECT_EQ(r.request.first_byte_ts_enter, 1000u);
  EXPECT_EQ(r.request.first_byte_ts_exit, 1001u);
  EXPECT_EQ(r.request.tid, 7u);
  EXPECT_EQ(r.request.last_byte_ts_enter, 1020u);
  EXPECT_EQ(r.request.last_byte_ts_exit, 1021u);
  EXPECT_EQ(r.response->first_byte_ts_enter, 1030u);
  EXPECT_EQ(r.response->last_byte_ts_enter, 1050u);
  EXPECT_EQ(r.response->last_byte_ts_exit, 1051u);
}

TEST(StitcherTest, BodilessMessageEndsWithItsHead) {
  Conn c(Role::kServer);
  c.In("GET /x HTTP/1.1\r\n");
  c.In("Host: h\r\n\r\n");
  c.Out("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].request.first_byte_ts_enter, 1000u);
  EXPECT_EQ(c.records()[0].request.last_byte_ts_enter, 1010u);
  EXPECT_EQ(c.records()[0].response->last_byte_ts_enter, 1020u);
}

// --- splitting -----------------------------------------------------------------

struct Summary {
  std::string method, target;
  int status = 0;
  uint64_t req_head = 0, req_body = 0, resp_head = 0, resp_body = 0;
  bool complete = false;
  std::vector<std::pair<std::string, std::string>> headers;
  bool operator==(const Summary&) const = default;
};

Summary Summarize(const Record& r) {
  Summary s;
  s.method = r.request.method;
  s.target = r.request.target;
  s.req_head = r.request.head_bytes;
  s.req_body = r.request.body_bytes;
  if (r.response) {
    s.status = r.response->status_code;
    s.resp_head = r.response->head_bytes;
    s.resp_body = r.response->body_bytes;
    s.complete = r.response->body_complete && r.outcome == Outcome::kComplete;
    s.headers.assign(r.response->headers.begin(), r.response->headers.end());
  }
  return s;
}

constexpr std::string_view kPost =
    "POST /orders?id=9 HTTP/1.1\r\nHost: shop\r\nContent-Length: 11\r\n\r\n{\"qty\": 10}";

TEST(StitcherTest, SplitAtEveryByteGivesSameRecord) {
  for (std::string_view response : {kOk, kChunked}) {
    Conn whole(Role::kServer);
    whole.In(kPost);
    whole.Out(response);
    ASSERT_EQ(whole.records().size(), 1u);
    const Summary expected = Summarize(whole.records()[0]);
    EXPECT_TRUE(expected.complete);
    EXPECT_EQ(expected.req_body, 11u);
    for (size_t cut = 1; cut < kPost.size(); ++cut) {
      for (size_t rcut = 1; rcut < response.size(); rcut += 3) {
        Conn c(Role::kServer);
        c.In(kPost.substr(0, cut));
        c.In(kPost.substr(cut));
        c.Out(response.substr(0, rcut));
        c.Out(response.substr(rcut));
        ASSERT_EQ(c.records().size(), 1u) << cut << "/" << rcut;
        EXPECT_EQ(Summarize(c.records()[0]), expected) << cut << "/" << rcut;
        EXPECT_EQ(c.stats().invalid_bytes, 0u);
      }
    }
  }
}

TEST(StitcherTest, OneByteSyscallsGiveSameRecords) {
  const std::string requests = std::string(kPost) + std::string(kGet);
  const std::string responses = std::string(kChunked) + std::string(kOk);
  Conn c(Role::kServer);
  for (char ch : requests) c.In(std::string_view(&ch, 1));
  for (char ch : responses) c.Out(std::string_view(&ch, 1));
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_EQ(c.records()[0].request.body_bytes, 11u);
  EXPECT_EQ(c.records()[0].response->body_bytes, kChunked.size() - kChunkedHead);
  EXPECT_TRUE(c.records()[0].response->body_complete);
  EXPECT_EQ(c.records()[1].request.target, "/a");
  EXPECT_EQ(c.records()[1].response->body_bytes, 5u);
  EXPECT_EQ(c.stats().invalid_bytes, 0u);
}

// --- gaps ---------------------------------------------------------------------

TEST(StitcherTest, CountsGapInsideContentLengthBody) {
  Conn c(Role::kServer);
  c.In(kGet);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n";
  const std::string first = head + std::string(4096 - head.size(), 'a');
  c.Out(first, 8192);  // 4096 captured, 4096 lost
  c.Out(std::string(4096, 'b'), 8192);
  c.Out(std::string(), 20000 + head.size() - 16384);  // nothing captured at all
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].response->body_bytes, 20000u);
  EXPECT_TRUE(c.records()[0].response->body_complete);
  EXPECT_FALSE(c.records()[0].response->body_framing_lost);
  EXPECT_EQ(c.records()[0].response->last_byte_ts_enter, 1030u);
  EXPECT_EQ(c.stats().resyncs, 0u);
  c.In(kGet);
  c.Out(kOk);
  EXPECT_EQ(c.records().size(), 2u);
}

TEST(StitcherTest, GapPastContentLengthLosesNextMessageAndResyncs) {
  Conn c(Role::kServer);
  c.In(Get("/1") + Get("/2") + Get("/3"));
  // Responses 1 and 2 in one write of which only part of the first is seen.
  const std::string both = Ok("0123456789") + Ok("abc");
  c.Out(both.substr(0, 40), both.size());
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].request.target, "/1");
  EXPECT_EQ(c.records()[0].response->body_bytes, 10u);
  EXPECT_TRUE(c.records()[0].response->body_complete);
  c.Out("\r\n trailing junk of nothing");  // not a message start: skipped
  c.Out(Ok("xyz"));
  EXPECT_EQ(c.stats().resyncs, 1u);
  // Response 2 was lost: /2 is reported without one, /3 pairs with response 3.
  ASSERT_EQ(c.records().size(), 3u);
  EXPECT_EQ(c.records()[1].request.target, "/2");
  EXPECT_EQ(c.records()[1].outcome, Outcome::kNoResponse);
  EXPECT_EQ(c.records()[2].request.target, "/3");
  EXPECT_EQ(c.records()[2].response->body_bytes, 3u);
}

TEST(StitcherTest, GapInsideChunkDataIsCounted) {
  Conn c(Role::kServer);
  c.In(kGet);
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n";
  c.Out(head + std::string(100, 'a'), head.size() + 4000);  // 3900 of the chunk lost
  c.Out(std::string(96, 'b') + "\r\n0\r\n\r\n");
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_TRUE(c.records()[0].response->body_complete);
  EXPECT_FALSE(c.records()[0].response->body_framing_lost);
  EXPECT_EQ(c.records()[0].response->body_bytes, 6u + 4096 + 2 + 5);
}

TEST(StitcherTest, GapAcrossChunkFramingCompletesAtResyncPoint) {
  Conn c(Role::kServer);
  c.In(kGet);
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n";
  c.Out(head + "0123", head.size() + 100);  // lost: rest of chunk, its CRLF, more
  c.Out("more bytes that are not a start", 5000);
  EXPECT_TRUE(c.records().empty());
  c.In(kGet);
  c.Out(kOk);
  ASSERT_EQ(c.records().size(), 2u);
  const Message& lost = *c.records()[0].response;
  EXPECT_TRUE(lost.body_framing_lost);
  EXPECT_FALSE(lost.body_complete);
  EXPECT_EQ(lost.body_bytes, 4u + 4 + 96 + 5000);  // "10\r\n", "0123", the gaps
  EXPECT_EQ(lost.last_byte_ts_enter, 1020u);       // the last bytes seen
  EXPECT_EQ(c.records()[0].outcome, Outcome::kComplete);
  EXPECT_EQ(c.records()[1].response->body_bytes, 5u);
  EXPECT_EQ(c.stats().resyncs, 1u);
}

TEST(StitcherTest, GapAtMessageStartResyncsAtNextStart) {
  Conn c(Role::kClient);
  c.Out(kGet);
  c.In("", 300);  // the whole response, none captured
  c.Out(kGet);
  c.In(kOk);
  EXPECT_EQ(c.stats().resyncs, 1u);
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_EQ(c.records()[0].outcome, Outcome::kNoResponse);
  EXPECT_EQ(c.records()[1].response->body_bytes, 5u);
}

TEST(StitcherTest, HugeHeaderLinesCapturedAsPrefixesKeepStartLine) {
  // 64 KiB of cookie in syscalls of 8192 (or 65536) bytes, 4096 captured each.
  for (uint64_t syscall_size : {8192u, 65536u}) {
    Conn c(Role::kServer);
    const std::string head = "GET /big HTTP/1.1\r\nHost: h\r\nCookie: " + std::string(65536, 'c') +
                             "\r\nUser-Agent: ua\r\n\r\n";
    size_t sent = 0;
    while (head.size() - sent > 4096) {
      const uint64_t n = std::min<uint64_t>(syscall_size, head.size() - sent - 100);
      c.In(std::string_view(head).substr(sent, std::min<uint64_t>(4096, n)), n);
      sent += n;
    }
    c.In(std::string_view(head).substr(sent));  // the end of the head is captured
    ASSERT_EQ(c.heads().size(), 1u);
    const Message& req = c.heads()[0];
    EXPECT_TRUE(req.head_truncated);
    EXPECT_EQ(req.method, "GET");
    EXPECT_EQ(req.target, "/big");
    EXPECT_EQ(req.Header("host"), "h");
    EXPECT_FALSE(req.Header("user-agent").has_value());
    c.In(kGet);  // framing found again at the end of the head
    c.Out(kOk);
    c.Out(kOk);
    ASSERT_EQ(c.records().size(), 2u);
    EXPECT_EQ(c.records()[0].request.head_bytes, head.size());
    EXPECT_TRUE(c.records()[0].request.body_complete);
    EXPECT_EQ(c.records()[1].request.target, "/a");
    EXPECT_EQ(c.stats().invalid_bytes, 0u);
  }
}

TEST(StitcherTest, TruncatedHeadGivesUpAtNextMessageStart) {
  Conn c(Role::kServer);
  const std::string head = "GET /big HTTP/1.1\r\nCookie: " + std::string(10000, 'c') + "\r\n\r\n";
  c.In(std::string_view(head).substr(0, 4096), head.size());  // end of head never seen
  c.In(kGet);
  ASSERT_EQ(c.heads().size(), 2u);
  EXPECT_EQ(c.stats().resyncs, 1u);
  c.Out(kOk);
  c.Out(kOk);
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_TRUE(c.records()[0].request.head_truncated);
  EXPECT_TRUE(c.records()[0].request.body_framing_lost);
  EXPECT_EQ(c.records()[0].request.head_bytes, head.size());
  EXPECT_EQ(c.records()[1].request.target, "/a");
}

TEST(StitcherTest, HeadLargerThanBufferIsTruncated) {
  StitcherLimits limits;
  limits.max_buffered_bytes = 1024;
  Conn c(Role::kClient, limits);
  c.Out(kGet);
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nSet-Cookie: " + std::string(5000, 's') + "\r\n\r\n";
  for (size_t i = 0; i < head.size(); i += 100) c.In(std::string_view(head).substr(i, 100));
  c.In("abc");
  ASSERT_EQ(c.records().size(), 1u);
  const Message& resp = *c.records()[0].response;
  EXPECT_TRUE(resp.head_truncated);
  EXPECT_EQ(resp.status_code, 200);
  EXPECT_EQ(resp.head_bytes, head.size());
  EXPECT_EQ(resp.body_bytes, 3u);  // Content-Length was seen before the cut
  EXPECT_TRUE(resp.body_complete);
}

// --- garbage -----------------------------------------------------------------

TEST(StitcherTest, ResyncsAfterGarbage) {
  Conn c(Role::kServer);
  const std::string garbage = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary"s;
  c.In(garbage, garbage.size() + 100);
  c.In("more garbage");
  EXPECT_EQ(c.stats().invalid_bytes, garbage.size() + 100 + 12);
  EXPECT_TRUE(c.heads().empty());
  c.In(kGet);
  c.Out(kOk);
  EXPECT_EQ(c.stats().resyncs, 1u);
  ASSERT_EQ(c.records().size(), 1u);
  EXPECT_EQ(c.records()[0].request.target, "/a");
}

TEST(StitcherTest, GarbageSpanningSyscallsIsDroppedWhenNextOneStartsAMessage) {
  Conn c(Role::kServer);
  c.In("GET /half-a-request-line");  // never finished
  c.In(kGet);
  ASSERT_EQ(c.heads().size(), 1u);
  EXPECT_EQ(c.heads()[0].target, "/a");
  EXPECT_EQ(c.stats().invalid_bytes, 24u);
}

TEST(StitcherTest, SurvivesBinaryGarbageWithBoundedState) {
  StitcherLimits limits;
  limits.max_buffered_bytes = 4096;
  Conn c(Role::kUnknown, limits);
  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < 200000; ++i) {
    x = x * 1103515245 + 12345;
    noise.push_back(static_cast<char>(x >> 16));
  }
  for (size_t i = 0; i < noise.size(); i += 997) {
    c.Feed(i % 2 ? Direction::kIngress : Direction::kEgress, std::string_view(noise).substr(i, 997),
           997 + (i % 3) * 50);
  }
  c.Close();
  EXPECT_EQ(c.stitcher().pending_requests(), 0u);
  EXPECT_GT(c.stats().invalid_bytes, 0u);
  EXPECT_EQ(c.stats().records, c.records().size());
}

// --- close ---------------------------------------------------------------------

TEST(StitcherTest, ReportsNoResponseOnClose) {
  Conn c(Role::kServer);
  c.In(Get("/1") + Get("/2"));
  c.Close();
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_EQ(c.records()[0].request.target, "/1");
  EXPECT_EQ(c.records()[0].outcome, Outcome::kNoResponse);
  EXPECT_FALSE(c.records()[0].response.has_value());
  EXPECT_EQ(c.records()[1].request.target, "/2");
  EXPECT_EQ(c.records()[1].outcome, Outcome::kNoResponse);
  EXPECT_EQ(c.stitcher().pending_requests(), 0u);
}

TEST(StitcherTest, ReportsIncompleteResponseOnClose) {
  Conn c(Role::kServer);
  c.In(Get("/1") + Get("/2"));
  c.Out("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
  c.Close();
  ASSERT_EQ(c.records().size(), 2u);
  EXPECT_EQ(c.records()[0].request.target, "/1");
  EXPECT_EQ(c.records()[0].outcome, Outcome::kResponseIncomplete);
  EXPECT_EQ(c.records()[0].response->body_bytes, 7u);
  EXPECT_FALSE(c.records()[0].response->body_complete);
  EXPECT_EQ(c.records()[1].outcome, Outcome::kNoResponse);
  EXPECT_EQ(c.stitcher().pending_requests(), 0u);
  c.Close();  // twice is harmless
  EXPECT_EQ(c.records().size(), 2u);
}

}  // namespace
}  // namespace hoptrace::http1
