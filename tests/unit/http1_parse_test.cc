// ParseHead / ParseTruncatedHead / LooksLikeStart against RFC 9112 sections
// 2-6: each test names the rule it protects.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "agent/protocols/http1/parse.h"

namespace hoptrace::http1 {
namespace {

using namespace std::string_view_literals;
using ::testing::TestWithParam;
using ::testing::Values;

constexpr MessageType kReq = MessageType::kRequest;
constexpr MessageType kResp = MessageType::kResponse;

struct Parsed {
  ParseState state;
  Message msg;
  std::string_view rest;
};

Parsed Parse(MessageType type, std::string_view input) {
  Parsed p;
  p.rest = input;
  p.state = ParseHead(type, &p.rest, &p.msg);
  return p;
}

ParseState StateOf(MessageType type, std::string_view input) { return Parse(type, input).state; }

constexpr std::string_view kGet =
    "GET /api/v1/items?id=7 HTTP/1.1\r\n"
    "Host: shop.example:8080\r\n"
    "User-Agent: curl/8.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

// --- request line ----------------------------------------------------------

TEST(ParseHeadTest, ParsesRequestLineAndConsumesHeadOnly) {
  const std::string input = std::string(kGet) + "NEXT";
  Parsed p = Parse(kReq, input);
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.type, kReq);
  EXPECT_EQ(p.msg.method, "GET");
  EXPECT_EQ(p.msg.target, "/api/v1/items?id=7");
  EXPECT_EQ(p.msg.minor_version, 1);
  EXPECT_EQ(p.msg.head_bytes, kGet.size());
  EXPECT_EQ(p.rest, "NEXT");
  EXPECT_EQ(p.msg.content_length, -1);
  EXPECT_FALSE(p.msg.chunked);
  EXPECT_FALSE(p.msg.head_truncated);
}

TEST(ParseHeadTest, ParsesHttp10AndAbsoluteAndAsteriskTargets) {
  Parsed p = Parse(kReq, "OPTIONS * HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.target, "*");
  EXPECT_EQ(p.msg.minor_version, 0);
  p = Parse(kReq, "CONNECT db.internal:5432 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.method, "CONNECT");
  EXPECT_EQ(p.msg.target, "db.internal:5432");
  p = Parse(kReq, "GET http://a.example/x HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.target, "http://a.example/x");
}

TEST(ParseHeadTest, AcceptsUnknownTokenMethods) {
  Parsed p = Parse(kReq, "PROPFIND /dav HTTP/1.1\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.method, "PROPFIND");
}

TEST(ParseHeadTest, RejectsMalformedRequestLines) {
  EXPECT_EQ(StateOf(kReq, "GET  / HTTP/1.1\r\n\r\n"), ParseState::kInvalid);  // empty target
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/2.0\r\n\r\n"), ParseState::kInvalid);   // not 1.x
  EXPECT_EQ(StateOf(kReq, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1 x\r\n\r\n"), ParseState::kInvalid);    // trailing junk
  EXPECT_EQ(StateOf(kReq, "GE(T / HTTP/1.1\r\n\r\n"), ParseState::kInvalid);     // not a token
  EXPECT_EQ(StateOf(kReq, "GET /\r\n\r\n"), ParseState::kInvalid);               // HTTP/0.9
  EXPECT_EQ(StateOf(kReq, "GET /a\rb HTTP/1.1\r\n\r\n"), ParseState::kInvalid);  // bare CR
  EXPECT_EQ(StateOf(kReq, "\r\nGET / HTTP/1.1\r\n\r\n"), ParseState::kInvalid);  // stitcher skips
  EXPECT_EQ(StateOf(kReq, "HTTP/1.1 200 OK\r\n\r\n"), ParseState::kInvalid);
}

// A CR or NUL anywhere in a field value, at every offset and length up to
// three words, makes the head invalid; the other control octets and high
// octets around them do not (a faster check must keep this).
TEST(ParseHeadTest, RejectsCrOrNulAtAnyOffsetOfAFieldValue) {
  for (size_t len = 1; len <= 24; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (char bad : {'\r', '\0'}) {
        std::string value(len, 'v');
        value[(at + 1) % len] = '\x0c';  // a control octet that may stay
        value[(at + 2) % len] = '\x8d';  // 0x0d with the high bit: not a CR
        value[at] = bad;
        const std::string head = "GET / HTTP/1.1\r\nX-A: " + value + "\r\n\r\n";
        EXPECT_EQ(StateOf(kReq, head), ParseState::kInvalid) << len << " " << at << " " << int(bad);
      }
      std::string clean(len, 'v');
      clean[at] = '\x8d';
      clean[(at + 1) % len] = '\x01';
      EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\nX-A: " + clean + "\r\n\r\n"),
                ParseState::kSuccess)
          << len << " " << at;
    }
  }
}

// The line scan reads 16 octets a step and the last 16 of the data at once:
// a CR or NUL must be found wherever it falls against those steps, and the
// CR of a CRLF, a bare LF and an incomplete line's last CR must not count.
TEST(ParseHeadTest, FindsCrOrNulAndLineEndsAtEveryAlignment) {
  const std::string target = "Host: abcdefghijklmnopqrstuvwxyz0123456789";
  for (size_t pad = 0; pad < 34; ++pad) {
    const std::string before = "GET / HTTP/1.1\r\nX-Pad: " + std::string(pad, 'p') + "\r\n";
    for (const char* eol : {"\r\n", "\n"}) {
      const std::string clean = before + target + eol + "\r\n";
      Parsed ok = Parse(kReq, clean);
      ASSERT_EQ(ok.state, ParseState::kSuccess) << pad;
      EXPECT_EQ(ok.msg.Header("host"), "abcdefghijklmnopqrstuvwxyz0123456789") << pad;
      EXPECT_EQ(ok.rest, "");
      // Every prefix waits for more, whatever it ends with (a lone CR too).
      for (size_t n = 0; n < clean.size(); ++n) {
        EXPECT_EQ(StateOf(kReq, clean.substr(0, n)), ParseState::kNeedsMoreData) << pad << " " << n;
      }
      for (size_t at = 0; at < target.size(); ++at) {
        for (char bad : {'\r', '\0'}) {
          std::string line = target;
          line[at] = bad;
          const std::string head = before + line + eol + "\r\n";
          // A CR last, then a bare LF: a CRLF after all.
          const bool crlf = bad == '\r' && at + 1 == target.size() && eol[0] == '\n';
          EXPECT_EQ(StateOf(kReq, head), crlf ? ParseState::kSuccess : ParseState::kInvalid)
              << pad << " " << at << int(bad);
          // Before the line ends: invalid already, but for a CR that may
          // yet be the CR of a CRLF.
          const std::string cut = before + line.substr(0, at + 1);
          EXPECT_EQ(StateOf(kReq, cut),
                    bad == '\r' ? ParseState::kNeedsMoreData : ParseState::kInvalid)
              << pad << " " << at;
          // Cut by the capture: the partial last line is not judged.
          Message m;
          EXPECT_EQ(ParseTruncatedHead(kReq, cut, &m), ParseState::kSuccess) << pad << " " << at;
          EXPECT_TRUE(m.head_truncated);
        }
      }
      // A CR or NUL right before the line's end ("\r\r\n" keeps one CR;
      // a CR then a bare LF is a CRLF).
      for (char bad : {'\r', '\0'}) {
        const bool crlf = bad == '\r' && eol[0] == '\n';
        EXPECT_EQ(StateOf(kReq, before + target + bad + eol + "\r\n"),
                  crlf ? ParseState::kSuccess : ParseState::kInvalid)
            << pad << int(bad);
      }
    }
  }
}

TEST(ParseHeadTest, AcceptsBareLfLineEndings) {
  Parsed p = Parse(kReq, "POST /f HTTP/1.1\nHost: h\nContent-Length: 3\n\nabc");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.Header("host"), "h");
  EXPECT_EQ(p.msg.content_length, 3);
  EXPECT_EQ(p.rest, "abc");
  p = Parse(kResp, "HTTP/1.1 200 OK\r\nHost: h\n\r\nbody");  // mixed endings
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.rest, "body");
}

// --- status line -----------------------------------------------------------

TEST(ParseHeadTest, ParsesStatusLine) {
  Parsed p = Parse(kResp, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.type, kResp);
  EXPECT_EQ(p.msg.status_code, 404);
  EXPECT_EQ(p.msg.reason, "Not Found");
  EXPECT_EQ(p.msg.content_length, 0);
}

TEST(ParseHeadTest, AcceptsEmptyReasonWithAndWithoutSpace) {
  Parsed p = Parse(kResp, "HTTP/1.1 200 \r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.status_code, 200);
  EXPECT_EQ(p.msg.reason, "");
  p = Parse(kResp, "HTTP/1.0 204\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.status_code, 204);
  EXPECT_EQ(p.msg.minor_version, 0);
}

TEST(ParseHeadTest, RejectsMalformedStatusLines) {
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1 20 OK\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1 2000 OK\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1 099 Low\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1  200 OK\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "HTTP/2 200\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1 200 O\x01K\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "GET / HTTP/1.1\r\n\r\n"), ParseState::kInvalid);
}

// --- header fields ---------------------------------------------------------

TEST(ParseHeadTest, KeepsOnlyListedHeadersLowerCasedInOrder) {
  Parsed p = Parse(kReq,
                   "GET / HTTP/1.1\r\n"
                   "HOST: a.example\r\n"
                   "X-Custom: 1\r\n"
                   "TraceParent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
                   "tracestate: k=v\r\n"
                   "Content-Type: text/plain\r\n"
                   "\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  ASSERT_EQ(p.msg.headers.size(), 4u);
  EXPECT_EQ(p.msg.headers[0].first, "host");
  EXPECT_EQ(p.msg.headers[1].first, "traceparent");
  EXPECT_EQ(p.msg.headers[1].second, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(p.msg.headers[2].first, "tracestate");
  EXPECT_EQ(p.msg.headers[3].first, "content-type");
  EXPECT_EQ(p.msg.Header("Host"), "a.example");
  EXPECT_FALSE(p.msg.Header("x-custom").has_value());
}

TEST(ParseHeadTest, DropsAuthorizationHeader) {
  Parsed p = Parse(kReq,
                   "GET / HTTP/1.1\r\n"
                   "Authorization: Bearer s3cr3t\r\n"
                   "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
                   "Cookie: session=s3cr3t\r\n"
                   "Host: h\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  ASSERT_EQ(p.msg.headers.size(), 1u);
  EXPECT_EQ(p.msg.headers[0].first, "host");
  for (const auto& [name, value] : p.msg.headers)
    EXPECT_EQ(value.find("s3cr3t"), std::string::npos);
}

TEST(ParseHeadTest, DropsSetCookieHeader) {
  Parsed p = Parse(kResp, "HTTP/1.1 200 OK\r\nSet-Cookie: id=s3cr3t\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  ASSERT_EQ(p.msg.headers.size(), 1u);
  EXPECT_EQ(p.msg.headers[0].first, "connection");
  EXPECT_EQ(p.msg.headers[0].second, "close");
}

TEST(ParseHeadTest, TrimsOptionalWhitespaceAroundValues) {
  Parsed p = Parse(kReq, "GET / HTTP/1.1\r\nHost:\t  a b  \t\r\nUser-Agent:x\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.Header("host"), "a b");
  EXPECT_EQ(p.msg.Header("user-agent"), "x");
}

TEST(ParseHeadTest, RejectsWhitespaceBeforeColon) {
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\nHost : h\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1 200 OK\r\nContent-Length\t: 1\r\n\r\n"), ParseState::kInvalid);
}

TEST(ParseHeadTest, RejectsBadFieldLines) {
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\nNoColon\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\n: empty-name\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\nBad\"Name: v\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\nA: x\0y\r\n\r\n"sv), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\nA: x\ry\r\n\r\n"), ParseState::kInvalid);
  // RFC 9112 2.2: whitespace between the start line and the first field.
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\n Host: h\r\n\r\n"), ParseState::kInvalid);
}

TEST(ParseHeadTest, FoldsObsoleteLineFoldingIntoOneSpace) {
  Parsed p = Parse(kResp,
                   "HTTP/1.1 200 OK\r\n"
                   "User-Agent: first\r\n"
                   "  second\r\n"
                   "\tthird\r\n"
                   "X-Dropped: a\r\n"
                   " b\r\n"
                   "Content-Length: 2\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_EQ(p.msg.Header("user-agent"), "first second third");
  EXPECT_EQ(p.msg.content_length, 2);
  EXPECT_EQ(p.msg.headers.size(), 2u);
}

// Kept names are matched eight octets at a time with a case bit OR-ed in:
// every token octet at every position of every kept name must give what a
// case-insensitive comparison gives.
TEST(ParseHeadTest, KeepsANameExactlyWhenItEqualsAKeptNameButForCase) {
  const std::string_view tchar_specials = "!#$%&'*+-.^_`|~";
  auto is_tchar = [&](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           tchar_specials.find(c) != std::string_view::npos;
  };
  auto lower = [](std::string s) {
    for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    return s;
  };
  for (std::string_view kept : kKeptHeaders) {
    for (size_t i = 0; i < kept.size(); ++i) {
      for (int b = 1; b < 256; ++b) {
        const char c = static_cast<char>(b);
        if (!is_tchar(c)) continue;
        std::string name(kept);
        name[i] = c;
        // A value any kept field takes (framing fields are checked).
        const std::string value = kept == "transfer-encoding" ? "chunked" : "0";
        const std::string input = "GET / HTTP/1.1\r\n" + name + ": " + value + "\r\n\r\n";
        Parsed p = Parse(kReq, input);
        ASSERT_EQ(p.state, ParseState::kSuccess) << name;
        const bool want = lower(name) == kept;
        ASSERT_EQ(p.msg.headers.size(), want ? 1u : 0u) << name;
        if (want) {
          EXPECT_EQ(p.msg.headers[0].first, kept);
        }
      }
    }
  }
}

TEST(ParseHeadTest, KeepsEveryFoldedFieldApartAndEmptyValues) {
  Parsed p = Parse(kReq,
                   "GET / HTTP/1.1\r\n"
                   "Host: a\r\n"
                   " b\r\n"
                   "User-Agent:\r\n"
                   "Traceparent: c\r\n"
                   "\td\r\n"
                   "Connection: e\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  ASSERT_EQ(p.msg.headers.size(), 4u);
  EXPECT_EQ(p.msg.headers[0], HeaderField("host", "a b"));
  EXPECT_EQ(p.msg.headers[1], HeaderField("user-agent", ""));
  EXPECT_EQ(p.msg.headers[2], HeaderField("traceparent", "c d"));
  EXPECT_EQ(p.msg.headers[3], HeaderField("connection", "e"));
}

// The views of a Message outlive the bytes it was parsed from, and survive
// its copies and moves (they point into Message::text, which copies share).
TEST(ParseHeadTest, MessageOwnsWhatItViews) {
  Message copy, moved;
  {
    std::string input(kGet);
    Parsed p = Parse(kReq, input);
    ASSERT_EQ(p.state, ParseState::kSuccess);
    copy = p.msg;
    Message temp = p.msg;
    moved = std::move(temp);
    std::fill(input.begin(), input.end(), '#');
  }
  for (const Message* m : {&copy, &moved}) {
    EXPECT_EQ(m->method, "GET");
    EXPECT_EQ(m->target, "/api/v1/items?id=7");
    EXPECT_EQ(m->Header("host"), "shop.example:8080");
    EXPECT_EQ(m->Header("user-agent"), "curl/8.1");
  }
  EXPECT_EQ(copy.text, moved.text);  // shared, not copied
  EXPECT_EQ(copy.headers.data(), moved.headers.data());  // the array is in that block too
}

TEST(ParseHeadTest, ReparsingDropsWhatTheMessageHeld) {
  Message m;
  std::string_view in = kGet;
  ASSERT_EQ(ParseHead(kReq, &in, &m), ParseState::kSuccess);
  std::string_view status = "HTTP/1.1 204\r\n\r\n";
  ASSERT_EQ(ParseHead(kResp, &status, &m), ParseState::kSuccess);
  EXPECT_EQ(m.method, "");
  EXPECT_EQ(m.target, "");
  EXPECT_EQ(m.reason, "");
  EXPECT_TRUE(m.headers.empty());
  EXPECT_EQ(m.text, nullptr);
}

// --- framing headers -------------------------------------------------------

TEST(ParseHeadTest, ContentLengthMustBeDigits) {
  EXPECT_EQ(Parse(kReq, "PUT / HTTP/1.1\r\nContent-Length: 1234\r\n\r\n").msg.content_length, 1234);
  EXPECT_EQ(StateOf(kReq, "PUT / HTTP/1.1\r\nContent-Length: 12a\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "PUT / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "PUT / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n"),
            ParseState::kInvalid);
}

TEST(ParseHeadTest, RejectsDifferingContentLengths) {
  EXPECT_EQ(StateOf(kReq, "PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            ParseState::kInvalid);
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"),
            ParseState::kInvalid);
}

TEST(ParseHeadTest, AcceptsRepeatedIdenticalContentLength) {
  EXPECT_EQ(Parse(kReq, "PUT / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n")
                .msg.content_length,
            5);
  EXPECT_EQ(Parse(kResp, "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n").msg.content_length, 7);
}

TEST(ParseHeadTest, ChunkedWhenLastTransferCodingIsChunked) {
  Parsed p = Parse(kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_TRUE(p.msg.chunked);
  p = Parse(kResp,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_TRUE(p.msg.chunked);
  p = Parse(kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_FALSE(p.msg.chunked);  // body until close
  EXPECT_EQ(p.msg.content_length, -1);
}

TEST(ParseHeadTest, ChunkedOverridesContentLength) {
  Parsed p =
      Parse(kReq, "POST /u HTTP/1.1\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_EQ(p.state, ParseState::kSuccess);
  EXPECT_TRUE(p.msg.chunked);
  EXPECT_EQ(p.msg.content_length, -1);
}

TEST(ParseHeadTest, RejectsRequestWhoseLastCodingIsNotChunked) {
  EXPECT_EQ(StateOf(kReq, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            ParseState::kInvalid);
}

// --- incremental input -----------------------------------------------------

TEST(ParseHeadTest, EveryPrefixNeedsMoreDataAndLeavesBufferAlone) {
  for (size_t n = 0; n < kGet.size(); ++n) {
    std::string_view buf = kGet.substr(0, n);
    Message m;
    EXPECT_EQ(ParseHead(kReq, &buf, &m), ParseState::kNeedsMoreData) << n;
    EXPECT_EQ(buf.size(), n);
  }
  constexpr std::string_view kResp200 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
  for (size_t n = 0; n < kResp200.size(); ++n) {
    EXPECT_EQ(StateOf(kResp, kResp200.substr(0, n)), ParseState::kNeedsMoreData) << n;
  }
}

TEST(ParseHeadTest, GarbagePrefixIsInvalidBeforeTheLineEnds) {
  EXPECT_EQ(StateOf(kReq, "\x16\x03\x01\x02\x00"), ParseState::kInvalid);  // TLS ClientHello
  EXPECT_EQ(StateOf(kResp, "HTTP/1.1 2x"), ParseState::kInvalid);
  EXPECT_EQ(StateOf(kReq, "GET / HTTP/1.1\r\nBad Name"), ParseState::kInvalid);
}

TEST(ParseHeadTest, ReusedMessageIsReset) {
  Message m;
  std::string_view buf = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
  ASSERT_EQ(ParseHead(kReq, &buf, &m), ParseState::kSuccess);
  m.body_bytes = 3;
  buf = "GET /b HTTP/1.0\r\n\r\n";
  ASSERT_EQ(ParseHead(kReq, &buf, &m), ParseState::kSuccess);
  EXPECT_EQ(m.method, "GET");
  EXPECT_TRUE(m.headers.empty());
  EXPECT_EQ(m.content_length, -1);
  EXPECT_EQ(m.body_bytes, 0u);
  EXPECT_EQ(m.minor_version, 0);
}

// --- truncated heads -------------------------------------------------------

TEST(ParseTruncatedHeadTest, KeepsStartLineAndCompleteFields) {
  Message m;
  constexpr std::string_view kCut = "GET /big HTTP/1.1\r\nHost: h\r\nCookie: aaaa";
  ASSERT_EQ(ParseTruncatedHead(kReq, kCut, &m), ParseState::kSuccess);
  EXPECT_TRUE(m.head_truncated);
  EXPECT_EQ(m.method, "GET");
  EXPECT_EQ(m.target, "/big");
  EXPECT_EQ(m.Header("host"), "h");
  EXPECT_EQ(m.head_bytes, kCut.size());
}

TEST(ParseTruncatedHeadTest, NeedsTheWholeStartLine) {
  Message m;
  EXPECT_EQ(ParseTruncatedHead(kReq, "GET /very/long/pa", &m), ParseState::kNeedsMoreData);
  EXPECT_EQ(ParseTruncatedHead(kReq, "\x01\x02garbage", &m), ParseState::kInvalid);
  EXPECT_EQ(ParseTruncatedHead(kResp, "HTTP/1.1 200 OK\r\nBad Field: x\r\n", &m),
            ParseState::kInvalid);
}

TEST(ParseTruncatedHeadTest, WholeHeadIsNotTruncated) {
  Message m;
  ASSERT_EQ(ParseTruncatedHead(kReq, kGet, &m), ParseState::kSuccess);
  EXPECT_FALSE(m.head_truncated);
  EXPECT_EQ(m.head_bytes, kGet.size());
}

// --- LooksLikeStart --------------------------------------------------------

struct StartCase {
  MessageType type;
  std::string_view data;
  bool expected;
};

class LooksLikeStartTest : public TestWithParam<StartCase> {};

TEST_P(LooksLikeStartTest, MatchesKnownStartsAndTheirPrefixes) {
  EXPECT_EQ(LooksLikeStart(GetParam().type, GetParam().data), GetParam().expected)
      << GetParam().data;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LooksLikeStartTest,
    Values(StartCase{kReq, "GET / HTTP/1.1\r\n", true}, StartCase{kReq, "PATCH /x HT", true},
           StartCase{kReq, "DELE", true}, StartCase{kReq, "G", true},
           StartCase{kReq, "OPTIONS * HTTP/1.0\r\nHost: x\r\n", true},
           StartCase{kReq, "PROPFIND / HTTP/1.1\r\n", false},  // token, but not known
           StartCase{kReq, "GETS / HTTP/1.1\r\n", false}, StartCase{kReq, "", false},
           StartCase{kReq, "\r\n", false}, StartCase{kReq, "GET / HTTP/2.0\r\n", false},
           StartCase{kReq, "get / HTTP/1.1\r\n", false},  // methods are case-sensitive
           StartCase{kReq, "HTTP/1.1 200 OK\r\n", false},
           StartCase{kResp, "HTTP/1.1 200 OK\r\n", true}, StartCase{kResp, "HTTP/1.", true},
           StartCase{kResp, "HTTP/1.0 5", true}, StartCase{kResp, "HTTP/1.1 200\r\n", true},
           StartCase{kResp, "HTTP/2.0 200", false}, StartCase{kResp, "{\"json\":1}", false},
           StartCase{kResp, "GET / HTTP/1.1\r\n", false}));

// --- ChunkedDecoder (RFC 9112 7.1) -----------------------------------------

constexpr std::string_view kChunkedBody =
    "4;ext=\"quoted\"\r\nWiki\r\n"
    "E\r\n in\r\n\r\nchunks.\r\n"
    "0\r\nExpires: never\r\n\r\n";

TEST(ChunkedDecoderTest, FindsEndOfBodyAfterTrailers) {
  ChunkedDecoder decoder;
  size_t consumed = 0;
  const std::string input = std::string(kChunkedBody) + "HTTP/1.1 200 OK";
  EXPECT_EQ(decoder.Consume(input, &consumed), ParseState::kSuccess);
  EXPECT_EQ(consumed, kChunkedBody.size());
}

TEST(ChunkedDecoderTest, SameEndWhenFedOneByteAtATime) {
  ChunkedDecoder decoder;
  for (size_t i = 0; i < kChunkedBody.size(); ++i) {
    size_t consumed = 0;
    const ParseState state = decoder.Consume(kChunkedBody.substr(i, 1), &consumed);
    EXPECT_EQ(consumed, 1u);
    EXPECT_EQ(state,
              i + 1 == kChunkedBody.size() ? ParseState::kSuccess : ParseState::kNeedsMoreData)
        << i;
  }
}

TEST(ChunkedDecoderTest, RejectsBadSizesAndMissingCrlf) {
  size_t consumed = 0;
  EXPECT_EQ(ChunkedDecoder().Consume("x\r\n", &consumed), ParseState::kInvalid);
  EXPECT_EQ(ChunkedDecoder().Consume(";ext\r\n", &consumed), ParseState::kInvalid);
  EXPECT_EQ(ChunkedDecoder().Consume("2\r\nabX\r\n", &consumed), ParseState::kInvalid);
  EXPECT_EQ(consumed, 6u);
  EXPECT_EQ(ChunkedDecoder().Consume("11111111111111111\r\n", &consumed), ParseState::kInvalid);
  EXPECT_EQ(ChunkedDecoder().Consume("0\r\n\rX", &consumed), ParseState::kInvalid);
}

TEST(ChunkedDecoderTest, SkipKeepsFramingOnlyInsideChunkData) {
  ChunkedDecoder decoder;
  size_t consumed = 0;
  ASSERT_EQ(decoder.Consume("a\r\n0123", &consumed), ParseState::kNeedsMoreData);
  EXPECT_TRUE(decoder.Skip(6));  // exactly the rest of the chunk
  EXPECT_EQ(decoder.Consume("\r\n0\r\n\r\n", &consumed), ParseState::kSuccess);
  ChunkedDecoder other;
  ASSERT_EQ(other.Consume("a\r\n0123", &consumed), ParseState::kNeedsMoreData);
  EXPECT_FALSE(other.Skip(7));  // would swallow the CRLF after the chunk
}

TEST(HeadEndScannerTest, FindsEmptyLineAcrossPieces) {
  HeadEndScanner scanner;
  EXPECT_EQ(scanner.Feed("GET / HTTP/1.1\r\nHost: a\r"), std::string_view::npos);
  EXPECT_EQ(scanner.Feed("\n\r"), std::string_view::npos);
  EXPECT_EQ(scanner.Feed("\nbody"), 1u);
  EXPECT_EQ(scanner.Feed("x\n\nrest"), 3u);  // bare LF
  scanner.Feed("a\r\n");
  scanner.Reset();  // bytes were lost: "\r\n" no longer ends the head
  EXPECT_EQ(scanner.Feed("\r\nx"), std::string_view::npos);
}

}  // namespace
}  // namespace hoptrace::http1
