#include "agent/protocols/postgres/postgres_parser.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/protocols/postgres/messages.h"
#include "agent/protocols/postgres/postgres_exchange.h"
#include "agent/trace/span.h"
#include "agent/trace/span_builder.h"  // SpanBuildOptions
#include "tests/unit/protocol_test_sink.h"

namespace hoptrace::postgres {
namespace {

using hoptrace::testing::RecordingSink;
using namespace std::string_literals;

std::string U32(uint32_t v) {
  const uint32_t n = htonl(v);
  return std::string(reinterpret_cast<const char*>(&n), 4);
}
std::string U16(uint16_t v) {
  const uint16_t n = htons(v);
  return std::string(reinterpret_cast<const char*>(&n), 2);
}
std::string Msg(char type, const std::string& body) { return type + U32(body.size() + 4) + body; }

// Frontend messages.
std::string Startup(const std::string& user, const std::string& db) {
  const std::string body = U32(kProtocolV3) + "user\0"s + user + "\0database\0"s + db + "\0\0"s;
  return U32(body.size() + 4) + body;
}
std::string SslRequest() { return U32(8) + U32(kSslRequestCode); }
std::string Query(const std::string& sql) { return Msg('Q', sql + '\0'); }
std::string Parse(const std::string& name, const std::string& sql) {
  return Msg('P', name + '\0' + sql + '\0' + U16(0));
}
std::string Bind(const std::string& portal, const std::string& stmt, const std::string& value) {
  return Msg('B', portal + '\0' + stmt + '\0' + U16(0) + U16(1) + U32(value.size()) + value +
                      U16(0));
}
std::string Describe(char what, const std::string& name) { return Msg('D', what + name + '\0'); }
std::string Execute(const std::string& portal) { return Msg('E', portal + '\0' + U32(0)); }
std::string Sync() { return Msg('S', ""); }

// Backend messages.
std::string AuthOkAndReady() {
  return Msg('R', U32(0)) + Msg('S', "server_version\0"s + "15.8\0"s) +
         Msg('K', U32(1234) + U32(5678)) + Msg('Z', "I");
}
std::string RowDescription() { return Msg('T', U16(1) + "name\0"s + std::string(18, '\0')); }
std::string DataRow(const std::string& value) {
  return Msg('D', U16(1) + U32(value.size()) + value);
}
std::string Complete(const std::string& tag) { return Msg('C', tag + '\0'); }
std::string Ready() { return Msg('Z', "I"); }
std::string Error(const std::string& sqlstate) {
  return Msg('E', "SERROR\0VERROR\0C"s + sqlstate + "\0Mrelation \"secret\" does not exist\0\0"s);
}

struct PostgresParserTest : ::testing::Test {
  void Make(Role role = Role::kClient, ParserLimits limits = {}) {
    parser = NewParser(role, &sink, limits);
  }
  // Client view: requests written (egress), responses read (ingress).
  void Write(const std::string& b, uint64_t ts) {
    parser->OnData(Direction::kEgress, b, b.size(), ts, ts + 1, 7);
  }
  void Read(const std::string& b, uint64_t ts) {
    parser->OnData(Direction::kIngress, b, b.size(), ts, ts + 1, 7);
  }
  // A syscall that moved all of b, of which the kernel captured the first bytes.
  void Cut(Direction dir, const std::string& b, size_t captured, uint64_t ts) {
    parser->OnData(dir, std::string_view(b).substr(0, captured), b.size(), ts, ts + 1, 7);
  }
  void Connect(const std::string& db = "shop") {
    Write(Startup("app", db), 10);
    Read(AuthOkAndReady(), 20);
  }
  const QueryFacts& Facts(size_t i) {
    return static_cast<const PostgresExchange&>(*sink.exchanges.at(i).details).facts();
  }
  std::string Text(size_t i) { return Facts(i).statement ? Facts(i).statement->text : "<none>"; }

  RecordingSink sink;
  std::unique_ptr<ProtocolParser> parser;
};

TEST_F(PostgresParserTest, SimpleQueryIsOneExchangeUpToReadyForQuery) {
  Make();
  Connect();
  Write(Query("SELECT name FROM users WHERE id = 7"), 100);
  ASSERT_EQ(sink.starts.size(), 1u);
  EXPECT_EQ(sink.starts[0].timing.first_byte_ts_enter, 100u);
  Read(RowDescription() + DataRow("alice") + Complete("SELECT 1") + Ready(), 200);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  const Exchange& e = sink.exchanges[0];
  EXPECT_EQ(e.exchange_id, sink.starts[0].exchange_id);
  EXPECT_EQ(e.outcome, Exchange::Outcome::kComplete);
  EXPECT_EQ(e.request.first_byte_ts_enter, 100u);
  ASSERT_TRUE(e.response);
  EXPECT_EQ(e.response->first_byte_ts_enter, 200u);
  EXPECT_EQ(e.response->last_byte_ts_exit, 201u);
  EXPECT_EQ(Text(0), "SELECT name FROM users WHERE id = ?");
  EXPECT_EQ(Facts(0).database, "shop");
  EXPECT_EQ(Facts(0).rows, 1);
  EXPECT_FALSE(Facts(0).error);
  EXPECT_EQ(parser->pending_requests(), 0u);
  EXPECT_EQ(parser->stats().records, 1u);
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(PostgresParserTest, SslRequestDeclinedThenStartup) {
  Make();
  Write(SslRequest(), 1);
  Read("N", 2);
  Connect("billing");
  Write(Query("select 1"), 100);
  Read(Complete("SELECT 1") + Ready(), 200);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(Facts(0).database, "billing");
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(PostgresParserTest, SslAcceptedStopsParsing) {
  Make();
  Write(SslRequest(), 1);
  Read("S", 2);
  Write("\x16\x03\x01 tls client hello", 3);
  EXPECT_TRUE(sink.starts.empty());
  EXPECT_EQ(parser->stats().degraded, 1u);
}

TEST_F(PostgresParserTest, PreparedStatementReusedByName) {
  Make();
  Connect();
  // A driver preparing: Parse / Describe / Sync is no exchange.
  Write(Parse("s1", "SELECT name FROM users WHERE id = $1") + Describe('S', "s1") + Sync(), 100);
  Read(Msg('1', "") + Msg('t', U16(1) + U32(23)) + RowDescription() + Ready(), 110);
  EXPECT_TRUE(sink.exchanges.empty());
  for (int i = 0; i < 3; ++i) {
    const uint64_t t = 200 + 100 * i;
    Write(Bind("", "s1", "4242") + Execute("") + Sync(), t);
    Read(Msg('2', "") + DataRow("bob") + Complete("SELECT 1") + Ready(), t + 10);
  }
  ASSERT_EQ(sink.exchanges.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(Text(i), "SELECT name FROM users WHERE id = $1");
    EXPECT_EQ(sink.exchanges[i].request.first_byte_ts_enter, 200 + 100 * i);
    EXPECT_EQ(sink.exchanges[i].response->first_byte_ts_enter, 210 + 100 * i);
    EXPECT_EQ(Facts(i).statement->collection, "users");
  }
  EXPECT_EQ(parser->stats().degraded, 0u);
}

TEST_F(PostgresParserTest, ExtendedQueryWithUnnamedStatementInOneWrite) {
  Make();
  Connect();
  Write(Parse("", "INSERT INTO orders (total) VALUES ($1)") + Bind("", "", "99") +
            Describe('P', "") + Execute("") + Sync(),
        100);
  Read(Msg('1', "") + Msg('2', "") + Msg('n', "") + Complete("INSERT 0 1") + Ready(), 150);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(Text(0), "INSERT INTO orders (total) VALUES ($1)");
  EXPECT_EQ(Facts(0).statement->operation, "INSERT");
  EXPECT_EQ(Facts(0).rows, -1);  // rows written are not rows returned
}

TEST_F(PostgresParserTest, TwoExecutesInOneSyncEndAtTheirOwnCommandComplete) {
  Make();
  Connect();
  Write(Parse("a", "SELECT 1") + Parse("b", "SELECT 2") + Bind("", "a", "") + Execute("") +
            Bind("", "b", "") + Execute("") + Sync(),
        100);
  Read(Msg('1', "") + Msg('1', "") + Msg('2', "") + DataRow("1") + Complete("SELECT 1"), 150);
  Read(Msg('2', "") + DataRow("2") + Complete("SELECT 1") + Ready(), 160);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(sink.exchanges[0].response->last_byte_ts_exit, 151u);
  EXPECT_EQ(sink.exchanges[1].response->first_byte_ts_enter, 160u);
  EXPECT_EQ(Text(1), "SELECT ?");
}

TEST_F(PostgresParserTest, ErrorResponseCarriesSqlstateNotMessage) {
  Make();
  Connect();
  Write(Query("SELECT * FROM missing"), 100);
  Read(Error("42P01") + Ready(), 200);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_TRUE(Facts(0).error);
  EXPECT_EQ(Facts(0).sqlstate, "42P01");
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kComplete);
}

TEST_F(PostgresParserTest, ErrorAtParseFailsEveryExecuteOfItsSync) {
  Make();
  Connect();
  Write(Parse("", "SELEC 1") + Bind("", "", "") + Execute("") + Parse("", "SELECT 2") +
            Bind("", "", "") + Execute("") + Sync(),
        100);
  Read(Error("42601") + Ready(), 200);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(Facts(0).sqlstate, "42601");
  EXPECT_EQ(Facts(1).sqlstate, "42601");
  EXPECT_TRUE(Facts(1).error);
  // The next Sync cycle is fine again.
  Write(Query("SELECT 3"), 300);
  Read(Complete("SELECT 1") + Ready(), 310);
  ASSERT_EQ(sink.exchanges.size(), 3u);
  EXPECT_FALSE(Facts(2).error);
}

TEST_F(PostgresParserTest, ByteByByteFeedGivesTheSameExchange) {
  Make();
  const std::string client = Startup("u", "db1") + Parse("p", "SELECT a FROM t WHERE b = 'x'") +
                             Bind("", "p", "v") + Execute("") + Sync();
  const std::string server = AuthOkAndReady() + Msg('1', "") + Msg('2', "") + DataRow("r") +
                             Complete("SELECT 1") + Ready();
  uint64_t t = 1;
  for (char c : client) Write(std::string(1, c), t++);
  for (char c : server) Read(std::string(1, c), t++);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(Text(0), "SELECT a FROM t WHERE b = ?");
  EXPECT_EQ(Facts(0).database, "db1");
  EXPECT_EQ(Facts(0).rows, 1);
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(PostgresParserTest, GapInsideADataRowIsSkippedByLength) {
  Make();
  Connect();
  Write(Query("SELECT blob FROM files"), 100);
  const std::string big = RowDescription() + DataRow(std::string(100000, 'x'));
  // The kernel captured the first 4096 bytes of the read.
  Cut(Direction::kIngress, big, 4096, 200);
  Read(Complete("SELECT 1") + Ready(), 300);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].response->last_byte_ts_exit, 301u);
  EXPECT_EQ(Facts(0).rows, 1);
  EXPECT_EQ(parser->stats().resyncs, 0u);
  EXPECT_EQ(parser->stats().invalid_bytes, 0u);
}

TEST_F(PostgresParserTest, GapAcrossMessagesResyncsAtTheNextPlausibleHeader) {
  Make();
  Connect();
  Write(Query("SELECT v FROM many"), 100);
  std::string rows = RowDescription();
  for (int i = 0; i < 2000; ++i) rows += DataRow("value-" + std::to_string(i));
  // First read: 1000 bytes captured of many messages.
  parser->OnData(Direction::kIngress, std::string_view(rows).substr(0, 1000), rows.size() - 37, 200,
                 201, 7);
  // Last read starts in the middle of a DataRow and ends with the answer.
  const std::string tail = rows.substr(rows.size() - 37) + Complete("SELECT 2000") + Ready();
  Read(tail, 300);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kComplete);
  EXPECT_EQ(sink.exchanges[0].response->last_byte_ts_exit, 301u);
  EXPECT_EQ(Facts(0).rows, 2000);
  EXPECT_EQ(parser->stats().resyncs, 1u);
  Write(Query("SELECT 1"), 400);
  Read(Complete("SELECT 1") + Ready(), 500);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(sink.exchanges[1].request.first_byte_ts_enter, 400u);
}

TEST_F(PostgresParserTest, AnswerLostInAGapEndsWhenTheClientAsksAgain) {
  Make();
  Connect();
  Write(Query("SELECT v FROM many"), 100);
  std::string rows = RowDescription() + DataRow(std::string(50, 'v')) + DataRow("w") +
                     Complete("SELECT 2") + Ready();
  Cut(Direction::kIngress, rows, 40, 200);
  EXPECT_TRUE(sink.exchanges.empty());
  Write(Query("SELECT 2"), 300);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kComplete);
  EXPECT_EQ(sink.exchanges[0].response->first_byte_ts_enter, 200u);
  Read(Complete("SELECT 1") + Ready(), 400);
  ASSERT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(Text(1), "SELECT ?");
}

TEST_F(PostgresParserTest, ServerSideReadsQueriesAndWritesAnswers) {
  Make(Role::kUnknown);
  parser->OnData(Direction::kIngress, Startup("app", "shop"), 40, 1, 2, 9);
  EXPECT_EQ(parser->role(), Role::kServer);
  parser->OnData(Direction::kEgress, AuthOkAndReady(), AuthOkAndReady().size(), 3, 4, 9);
  parser->OnData(Direction::kIngress, Query("DELETE FROM carts WHERE id = 5"), 100, 10, 11, 9);
  const std::string answer = Complete("DELETE 1") + Ready();
  parser->OnData(Direction::kEgress, answer, answer.size(), 20, 21, 9);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(Text(0), "DELETE FROM carts WHERE id = ?");
}

TEST_F(PostgresParserTest, JoinedMidwayKnowsTheSidesByMessageType) {
  Make(Role::kUnknown);
  Read(Query("SELECT 1"), 10);  // a 'Q' is only ever sent by the frontend
  EXPECT_EQ(parser->role(), Role::kServer);
  Write(Complete("SELECT 1") + Ready(), 20);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(Facts(0).database, "");
}

TEST_F(PostgresParserTest, ExecuteOfAStatementPreparedBeforeJoiningIsCountedDegraded) {
  Make();
  Write(Bind("", "old", "1") + Execute("") + Sync(), 10);
  Read(Msg('2', "") + Complete("SELECT 0") + Ready(), 20);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(Facts(0).statement, nullptr);
  EXPECT_EQ(parser->stats().degraded, 1u);
}

TEST_F(PostgresParserTest, CloseReportsPendingAsNoResponse) {
  Make();
  Connect();
  Write(Query("SELECT pg_sleep(10)"), 100);
  parser->OnClose(500);
  ASSERT_EQ(sink.exchanges.size(), 1u);
  EXPECT_EQ(sink.exchanges[0].outcome, Exchange::Outcome::kNoResponse);
  EXPECT_EQ(parser->pending_requests(), 0u);
}

TEST_F(PostgresParserTest, PendingPastTheLimitAreDroppedAndCounted) {
  Make(Role::kClient, ParserLimits{64 * 1024, 2});
  Connect();
  for (int i = 0; i < 4; ++i) Write(Query("SELECT 1"), 100 + i);
  EXPECT_EQ(sink.starts.size(), 2u);
  EXPECT_EQ(parser->stats().pending_overflow, 2u);
  for (int i = 0; i < 4; ++i) Read(Complete("SELECT 1") + Ready(), 200 + i);
  EXPECT_EQ(sink.exchanges.size(), 2u);
  EXPECT_EQ(parser->pending_requests(), 0u);
}

TEST_F(PostgresParserTest, GarbageIsNotPostgres) {
  EXPECT_FALSE(LooksLikeStart("GET / HTTP/1.1\r\n"));
  EXPECT_FALSE(LooksLikeStart("*1\r\n$4\r\nPING\r\n"));
  EXPECT_TRUE(LooksLikeStart(Startup("u", "d")));
  EXPECT_TRUE(LooksLikeStart(SslRequest()));
  EXPECT_TRUE(LooksLikeStart(U32(8) + U32(kGssEncRequestCode)));
}

ConnInfo ClientConn() {
  ConnInfo c;
  c.tuple_known = true;
  c.family = AF_INET;
  const uint8_t local[4] = {127, 0, 0, 1}, remote[4] = {10, 0, 0, 5};
  std::copy(local, local + 4, c.local_addr.begin());
  std::copy(remote, remote + 4, c.remote_addr.begin());
  c.local_port = 40000;
  c.remote_port = 5432;
  return c;
}

TEST(PostgresExchange, ClientSpanNameAttributesAndStatus) {
  QueryFacts f;
  f.statement =
      std::make_shared<const SqlSummary>(SummarizeSql("SELECT * FROM users WHERE id = 1"));
  f.database = "shop";
  f.error = true;
  f.sqlstate = "57014";
  PostgresExchange x(f);
  EXPECT_EQ(x.SpanName(), "SELECT users");
  Span span;
  x.AddAttributes(ClientConn(), false, SpanBuildOptions{}, &span);
  auto str = [&](std::string_view k) {
    return std::get<std::string>(*FindAttribute(span.attributes, k));
  };
  EXPECT_EQ(str("db.system.name"), "postgresql");
  EXPECT_EQ(str("db.namespace"), "shop");
  EXPECT_EQ(str("db.operation.name"), "SELECT");
  EXPECT_EQ(str("db.collection.name"), "users");
  EXPECT_EQ(str("db.query.text"), "SELECT * FROM users WHERE id = ?");
  EXPECT_EQ(str("db.response.status_code"), "57014");
  EXPECT_EQ(str("server.address"), "10.0.0.5");
  EXPECT_EQ(std::get<int64_t>(*FindAttribute(span.attributes, "server.port")), 5432);
  x.SetStatus(false, &span);
  EXPECT_EQ(span.status, StatusCode::kError);
  EXPECT_EQ(str("error.type"), "57014");
}

TEST(PostgresExchange, SpanNameFallsBackToNamespaceThenSystem) {
  QueryFacts f;
  f.statement = std::make_shared<const SqlSummary>(SummarizeSql("SELECT 1"));
  f.database = "shop";
  EXPECT_EQ(PostgresExchange(f).SpanName(), "SELECT shop");
  f.statement = nullptr;
  EXPECT_EQ(PostgresExchange(f).SpanName(), "shop");
  f.database.clear();
  EXPECT_EQ(PostgresExchange(f).SpanName(), "postgresql");
  Span span;
  PostgresExchange(f).SetStatus(false, &span);
  EXPECT_EQ(span.status, StatusCode::kUnset);
}

}  // namespace
}  // namespace hoptrace::postgres
