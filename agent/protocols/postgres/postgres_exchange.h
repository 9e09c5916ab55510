// The PostgreSQL half of a span (OpenTelemetry database semantic conventions,
// db.* registry and the PostgreSQL page): db.system.name "postgresql",
// db.namespace, db.operation.name, db.collection.name, db.query.text
// (sanitized: see sql_summary.h), db.response.status_code (SQLSTATE),
// db.response.returned_rows, server.address / server.port.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "agent/protocols/postgres/sql_summary.h"
#include "agent/protocols/protocol.h"

namespace hoptrace::postgres {

struct QueryFacts {
  // The statement executed; null when its text was never seen (prepared
  // before the agent joined the connection).
  std::shared_ptr<const SqlSummary> statement;
  std::string database;  // from the StartupMessage; "" if not seen
  bool error = false;    // an ErrorResponse answered it
  std::string sqlstate;  // its SQLSTATE ("" if the response did not say)
  int64_t rows = -1;     // from the CommandComplete tag, -1 if none
};

class PostgresExchange : public ExchangeDetails {
 public:
  explicit PostgresExchange(QueryFacts facts) : facts_(std::move(facts)) {}

  // Semconv span name: "{db.operation.name} {target}" with target the
  // collection, else the namespace; "{target}" without an operation;
  // "postgresql" when nothing is known.
  std::string SpanName() const override;
  void AddAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                     Span* span) const override;
  // Any ErrorResponse is an error; error.type is its SQLSTATE (semconv:
  // "the database-specific error code"), "_OTHER" when it carried none.
  void SetStatus(bool server, Span* span) const override;

  const QueryFacts& facts() const { return facts_; }

 private:
  QueryFacts facts_;
};

}  // namespace hoptrace::postgres
