#include "agent/protocols/redis/redis_parser.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/protocols/redis/redis_exchange.h"
#include "agent/protocols/redis/resp_reader.h"
#include "agent/trace/span.h"
#include "agent/trace/span_builder.h"  // SpanBuildOptions
#include "tests/unit/protocol_test_sink.h"

namespace hoptrace::redis {
namespace {

using hoptrace::testing::RecordingSink;

std::string Command(const std::vector<std::string>& words) {
  std::string out = "*" + std::to_string(words.size()) + "\r\n";
  for (const std::string& w : words) out += "$" + std::to_string(w.size()) + "\r\n" + w + "\r\n";
  return out;
}

struct RedisParserTest : ::testing::Test {
  void Make(Role role = Role::kClient, ParserLimits limits = {}) {
    parser = NewParser(role, &sink, limits);
  }
  void Write(const std::string& b, uint64_t ts) {
    parser->OnData(Direction::kEgress, b, b.size(), ts, ts + 1, 3);
  }
  void Read(const std::string& b, uint64_t ts) {
    parser->OnData(Direction::kIngress, b, b.size(), ts, ts + 1, 3);
  }
  // A syscall that moved all of b, of which the kernel captured the first bytes.
  void Cut(Direction dir, const std::string& b, size_t captured, uint64_t ts) {
    parser->OnData(dir, std::string_view(b).substr(0, captured), b.size(), ts, ts + 1, 3);
  }
  const CommandFacts& Facts(size_t i) {
    return static_cast<const RedisExchange&>(*sink.exchanges.at(i).details).facts();
  }
  RecordingSink sink;
  std::unique_ptr<ProtocolParser> parser;
};

TEST_F(RedisParserTest, CommandAndReplyMakeOneExchange) {
  Make();
  Write(Command({"set", "user:1", "secret-value"}), 100);
  ASSERT_EQ(sink.starts.size(), 1u);
  Read("+OK\r\n", 200);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  const Exchange& e = sink.exchanges[0];
  EXPECT_EQ(e.exchange_id, sink.starts[0].exchange_id);
  EXPECT_EQ(e.request.first_byte_ts_enter, 100u);
  EXPECT_EQ(e.response->first_byte_ts_enter, 200u);
  EXPECT_EQ(Facts(0).command, "SET");
  EXPECT_EQ(Facts(0).argc, 3u);
  EXPECT_EQ(QueryText(Facts(0)), "SET ? ?");
  EXPECT_FALSE(Facts(0).error);
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(RedisParserTest, PipelinePairsRepliesInOrder) {
  Make();
  Write(Command({"INCR", "n"}) + Command({"GET", "k"}) + Command({"LRANGE", "l", "0", "-1"}) +
            Command({"HGETALL", "h"}),
        100);
  EXPECT_EQ(sink.starts.size(), 4u);
  Read(":1\r\n$5\r\nhello\r\n*2\r\n$1\r\na\r\n$-1\r\n", 200);
  Read("%1\r\n+f\r\n:2\r\n", 300);  // RESP3 map
  ASSERT_EQ(sink.exchanges.size(), 4u);
  EXPECT_EQ(Facts(0).command, "INCR");
  EXPECT_EQ(Facts(2).command, "LRANGE");
  EXPECT_EQ(QueryText(Facts(2)), "LRANGE ? ? ?");
  EXPECT_EQ(sink.exchanges[3].response->first_byte_ts_enter, 300u);
  EXPECT_EQ(parser->pending_requests(), 0u);
}

TEST_F(RedisParserTest, ErrorReplyGivesItsPrefix) {
  Make();
  Write(Command({"LPUSH", "str", "x"}) + Command({"FOO"}), 100);
  Read("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
       "-ERR unknown command 'FOO', with args beginning with: \r\n",
       200);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_TRUE(Facts(0).error);
  EXPECT_EQ(Facts(0).error_prefix, "WRONGTYPE");
  EXPECT_EQ(Facts(1).error_prefix, "ERR");
}

TEST_F(RedisParserTest, Resp3TypesPushAndAttributes) {
  Make();
  Write(Command({"HELLO", "3"}) + Command({"GET", "a"}) + Command({"SMEMBERS", "s"}), 100);
  Read("%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n", 150);
  // A push (client tracking) arrives between replies; an attribute precedes one.
  Read(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n|1\r\n+ttl\r\n:3\r\n_\r\n", 200);
  Read("~2\r\n,1.5\r\n#t\r\n", 300);
  ASSERT_EQ(sink.exchanges.size(), 3u);
  EXPECT_EQ(Facts(0).command, "HELLO");
  EXPECT_EQ(Facts(1).command, "GET");
  EXPECT_EQ(sink.exchanges[2].response->first_byte_ts_enter, 300u);
  EXPECT_EQ(parser->stats().orphan_responses, 0u);
}

TEST_F(RedisParserTest, BlobErrorAndVerbatimString) {
  Make();
  Write(Command({"EVAL", "x", "0"}) + Command({"INFO"}), 100);
  Read("!21\r\nSYNTAX invalid syntax\r\n=15\r\ntxt:Some string\r\n", 200);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(Facts(0).error_prefix, "SYNTAX");
  EXPECT_FALSE(Facts(1).error);
}

TEST_F(RedisParserTest, SelectSetsTheNamespace) {
  Make();
  Write(Command({"PING"}), 1);
  Read("+PONG\r\n", 2);
  Write(Command({"SELECT", "3"}) + Command({"GET", "k"}), 10);
  Read("+OK\r\n$-1\r\n", 20);
  ASSERT_EQ(sink.exchanges.size(), 3u);
  EXPECT_FALSE(Facts(0).database);
  EXPECT_EQ(Facts(2).database, 3);
}

TEST_F(RedisParserTest, ByteByByteFeed) {
  Make();
  const std::string cmd = Command({"MSET", "a", "1", "b", "2"});
  const std::string reply = "*3\r\n%1\r\n+k\r\n*1\r\n:1\r\n$3\r\nabc\r\n_\r\n";
  uint64_t t = 1;
  for (char c : cmd) Write(std::string(1, c), t++);
  EXPECT_EQ(sink.starts.size(), 1u);
  for (char c : reply) Read(std::string(1, c), t++);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(QueryText(Facts(0)), "MSET ? ? ? ?");
  EXPECT_EQ(sink.exchanges[0].request.first_byte_ts_enter, 1u);
  EXPECT_EQ(sink.exchanges[0].response->first_byte_ts_enter, cmd.size() + 1);
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(RedisParserTest, GapInsideABulkStringIsSkippedByLength) {
  Make();
  const std::string value(100000, 'v');
  const std::string cmd = Command({"SET", "big", value});
  Cut(Direction::kEgress, cmd, 4096, 10);
  ASSERT_EQ(sink.starts.size(), 1u);
  Read("+OK\r\n", 20);
  const std::string reply = "$100000\r\n" + value + "\r\n";
  Write(Command({"GET", "big"}), 30);
  Cut(Direction::kIngress, reply, 4096, 40);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(sink.exchanges[1].response->last_byte_ts_exit, 41u);
  EXPECT_EQ(parser->stats().resyncs, 0u);
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(RedisParserTest, LostReplyFramingResyncsAndFinishesAnsweredCommands) {
  Make();
  Write(Command({"LRANGE", "l", "0", "-1"}), 10);
  std::string reply = "*1000\r\n";
  for (int i = 0; i < 1000; ++i) reply += ":" + std::to_string(i) + "\r\n";
  // Framing lost: the gap covers many elements.
  Cut(Direction::kIngress, reply, 100, 20);
  EXPECT_TRUE(sink.exchanges.empty());
  Write(Command({"PING"}), 30);  // the client asks again: LRANGE was answered
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kComplete);
  Read("+PONG\r\n", 40);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(Facts(1).command, "PING");
  EXPECT_EQ(parser->stats().resyncs, 1u);
}

TEST_F(RedisParserTest, InlineCommandsAreCommandsToo) {
  Make();
  Write(Command({"PING"}), 1);  // the kernel recognised the array
  Read("+PONG\r\n", 2);
  Write("EXISTS a b\r\n", 3);
  Read(":0\r\n", 4);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(QueryText(Facts(1)), "EXISTS ? ?");
}

TEST_F(RedisParserTest, SubscribeEndsPairing) {
  Make();
  Write(Command({"SUBSCRIBE", "news"}), 1);
  Read("*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n", 2);
  Read("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n", 3);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(Facts(0).command, "SUBSCRIBE");
  EXPECT_EQ(parser->stats().degraded, 1u);
  EXPECT_EQ(parser->stats().orphan_responses, 0u);
}

TEST_F(RedisParserTest, ServerSideAndUnknownRole) {
  Make(Role::kUnknown);
  parser->OnData(Direction::kIngress, Command({"GET", "x"}), 20, 1, 2, 3);
  EXPECT_EQ(parser->role(), Role::kServer);
  parser->OnData(Direction::kEgress, "$-1\r\n", 5, 3, 4, 3);
  ASSERT_EQ(sink.exchanges.size(), 1u);
}

TEST_F(RedisParserTest, PendingPastTheLimitKeepsPairingInOrder) {
  Make(Role::kClient, ParserLimits{64 * 1024, 2});
  for (int i = 0; i < 5; ++i) Write(Command({"INCR", "n"}), 10 + i);
  EXPECT_EQ(sink.starts.size(), 2u);
  EXPECT_EQ(parser->stats().pending_overflow, 3u);
  for (int i = 0; i < 5; ++i) Read(":" + std::to_string(i) + "\r\n", 100 + i);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(sink.exchanges[1].response->first_byte_ts_enter, 101u);
  Write(Command({"GET", "k"}), 200);
  Read("$-1\r\n", 300);
  ASSERT_EQ(sink.exchanges.size(), 3u);
  EXPECT_EQ(sink.exchanges[2].response->first_byte_ts_enter, 300u);
}

TEST_F(RedisParserTest, CloseReportsPending) {
  Make();
  Write(Command({"BLPOP", "q", "0"}), 1);
  parser->OnClose(10);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kNoResponse);
}

TEST(RedisStart, RecognisesCommandArraysOnly) {
  EXPECT_TRUE(LooksLikeStart("*1\r\n$4\r\nPING\r\n"));
  EXPECT_TRUE(LooksLikeStart("*3\r\n$3\r\nSET\r\n"));
  EXPECT_FALSE(LooksLikeStart("*0\r\n"));
  EXPECT_FALSE(LooksLikeStart("GET / HTTP/1.1\r\n"));
  EXPECT_FALSE(LooksLikeStart("PING\r\n"));
  EXPECT_FALSE(LooksLikeStart("*x\r\n$"));
}

TEST(RedisExchange, SpanNameAttributesAndStatus) {
  CommandFacts f;
  f.command = "HSET";
  f.argc = 4;
  f.error = true;
  f.error_prefix = "WRONGTYPE";
  RedisExchange x(f);
  EXPECT_EQ(x.SpanName(), "HSET");
  ConnInfo conn;
  conn.tuple_known = true;
  conn.family = AF_INET;
  conn.remote_addr[0] = 127;
  conn.remote_addr[3] = 1;
  conn.remote_port = 6379;
  conn.followed_from_open = true;
  Span span;
  x.AddAttributes(conn, false, SpanBuildOptions{}, &span);
  auto str = [&](std::string_view k) {
    return std::get<std::string>(*FindAttribute(span.attributes, k));
  };
  EXPECT_EQ(str("db.system.name"), "redis");
  EXPECT_EQ(str("db.operation.name"), "HSET");
  EXPECT_EQ(str("db.query.text"), "HSET ? ? ?");
  EXPECT_EQ(str("db.namespace"), "0");
  EXPECT_EQ(str("server.address"), "127.0.0.1");
  EXPECT_EQ(std::get<int64_t>(*FindAttribute(span.attributes, "server.port")), 6379);
  x.SetStatus(false, &span);
  EXPECT_EQ(span.status, StatusCode::kError);
  EXPECT_EQ(str("error.type"), "WRONGTYPE");
}

}  // namespace
}  // namespace hoptrace::redis
