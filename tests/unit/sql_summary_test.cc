#include "agent/protocols/postgres/sql_summary.h"

#include <gtest/gtest.h>

namespace hoptrace::postgres {
namespace {

TEST(SqlSummary, ReplacesStringAndNumericLiteralsKeepsParameters) {
  const SqlSummary s = SummarizeSql(
      "SELECT id, name FROM users WHERE email = 'a@b.c' AND age > 42 AND score < 1.5e-3 "
      "AND id = $1");
  EXPECT_EQ(s.text,
            "SELECT id, name FROM users WHERE email = ? AND age > ? AND score < ? AND id = $1");
  EXPECT_EQ(s.operation, "SELECT");
  EXPECT_EQ(s.collection, "users");
  EXPECT_FALSE(s.truncated);
}

TEST(SqlSummary, EveryKindOfConstantBecomesAPlaceholder) {
  EXPECT_EQ(SummarizeSql("select 'it''s', E'a\\'b', B'0101', X'1F', U&'d\\0061t', N'x'").text,
            "select ?, ?, ?, ?, ?, ?");
  EXPECT_EQ(SummarizeSql("select $$secret$$, $tag$also $$ secret$tag$, 0x1F, .5, 1_000").text,
            "select ?, ?, ?, ?, ?");
  EXPECT_EQ(SummarizeSql("insert into t values (-7, 3.14)").text, "insert into t values (-?, ?)");
}

TEST(SqlSummary, DropsCommentsAndCollapsesWhitespace) {
  EXPECT_EQ(SummarizeSql("SELECT /* user=bob /* nested */ pw=x */ 1 -- tail 'v'\n FROM\n\tt").text,
            "SELECT ? FROM t");
}

TEST(SqlSummary, KeepsQuotedIdentifiersAndQualifiedNames) {
  const SqlSummary s = SummarizeSql("UPDATE \"Shop\".\"Orders\" SET total = 10 WHERE id = 3");
  EXPECT_EQ(s.text, "UPDATE \"Shop\".\"Orders\" SET total = ? WHERE id = ?");
  EXPECT_EQ(s.operation, "UPDATE");
  EXPECT_EQ(s.collection, "\"Shop\".\"Orders\"");
}

TEST(SqlSummary, FindsTheCollectionPerOperation) {
  EXPECT_EQ(SummarizeSql("insert into public.accounts (a) values (1)").collection,
            "public.accounts");
  EXPECT_EQ(SummarizeSql("DELETE FROM ONLY sessions WHERE t < now()").collection, "sessions");
  EXPECT_EQ(SummarizeSql("CREATE TABLE IF NOT EXISTS items (id int)").collection, "items");
  EXPECT_EQ(SummarizeSql("DROP TABLE IF EXISTS items").collection, "items");
  EXPECT_EQ(SummarizeSql("TRUNCATE TABLE logs").collection, "logs");
  EXPECT_EQ(SummarizeSql("SELECT 1").collection, "");
  EXPECT_EQ(SummarizeSql("SELECT * FROM (SELECT 1) s").collection, "");
  EXPECT_EQ(SummarizeSql("BEGIN").operation, "BEGIN");
  EXPECT_EQ(SummarizeSql("BEGIN").collection, "");
  EXPECT_EQ(SummarizeSql("  (select a from b) union (select a from c)").operation, "SELECT");
  EXPECT_EQ(SummarizeSql("").operation, "");
}

TEST(SqlSummary, UnterminatedLiteralSwallowsTheRest) {
  // A capture cut inside a string: the rest is not shown.
  EXPECT_EQ(SummarizeSql("SELECT * FROM t WHERE a = 'secret val").text,
            "SELECT * FROM t WHERE a = ?");
  EXPECT_EQ(SummarizeSql("SELECT $x$ secret").text, "SELECT ?");
  EXPECT_EQ(SummarizeSql("SELECT 1 /* secret").text, "SELECT ?");
}

TEST(SqlSummary, TruncatesAtATokenBoundary) {
  const SqlSummary s = SummarizeSql("SELECT alpha, beta, gamma FROM t", 16);
  EXPECT_EQ(s.text, "SELECT alpha,");
  EXPECT_TRUE(s.truncated);
}

// The property the span relies on: no literal of any of these statements
// survives, whatever its kind or position.
TEST(SqlSummary, NoLiteralSurvives) {
  const std::string secrets[] = {"s3cr3t", "4111111111111111", "hunter2", "98765", "deadbeef"};
  const std::string statements[] = {
      "SELECT * FROM u WHERE pw = 's3cr3t' AND card = 4111111111111111",
      "INSERT INTO u VALUES ('hunter2', 98765, E'\\x41hunter2', X'deadbeef')",
      "UPDATE u SET a = $$hunter2$$, b = $q$s3cr3t$q$ WHERE c = 98765.0",
      "SELECT 'it''s s3cr3t', U&'hunter2', B'1' FROM t -- s3cr3t\n",
      "/* s3cr3t */ DELETE FROM t WHERE x IN (98765, 4111111111111111)",
      "SELECT * FROM t WHERE a = 'unterminated hunter2",
      "SELECT 98765e+3, 0xdeadbeef, .98765",
  };
  for (const std::string& sql : statements) {
    const std::string text = SummarizeSql(sql).text;
    for (const std::string& secret : secrets) {
      EXPECT_EQ(text.find(secret), std::string::npos) << sql << " -> " << text;
    }
  }
}

}  // namespace
}  // namespace hoptrace::postgres
