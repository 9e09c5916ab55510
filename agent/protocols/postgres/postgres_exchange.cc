#include "agent/protocols/postgres/postgres_exchange.h"

#include "agent/trace/span.h"

namespace hoptrace::postgres {

std::string PostgresExchange::SpanName() const {
  const SqlSummary* s = facts_.statement.get();
  const std::string& target =
      s && !s->collection.empty() ? s->collection : facts_.database;
  if (s && !s->operation.empty()) {
    return target.empty() ? s->operation : s->operation + " " + target;
  }
  return target.empty() ? std::string("postgresql") : target;
}

void PostgresExchange::AddAttributes(const ConnInfo& conn, bool server,
                                     const SpanBuildOptions& /*options*/, Span* span) const {
  auto& a = span->attributes;
  AddAttribute(a, "db.system.name", "postgresql");
  if (!facts_.database.empty()) AddAttribute(a, "db.namespace", facts_.database);
  if (const SqlSummary* s = facts_.statement.get()) {
    if (!s->operation.empty()) AddAttribute(a, "db.operation.name", s->operation);
    if (!s->collection.empty()) AddAttribute(a, "db.collection.name", s->collection);
    if (!s->text.empty()) AddAttribute(a, "db.query.text", s->text);
    if (s->truncated) AddAttribute(a, "hoptrace.db.query_truncated", true);
  }
  if (facts_.error && !facts_.sqlstate.empty()) {
    AddAttribute(a, "db.response.status_code", facts_.sqlstate);
  }
  if (facts_.rows >= 0) AddAttribute(a, "db.response.returned_rows", facts_.rows);
  // The server is the far end of a client's connection, this end of a server's.
  const std::string& address = server ? conn.LocalAddress() : conn.RemoteAddress();
  if (!address.empty()) {
    AddAttribute(a, "server.address", address);
    AddAttribute(a, "server.port", int64_t{server ? conn.local_port : conn.remote_port});
  }
}

void PostgresExchange::SetStatus(bool /*server*/, Span* span) const {
  if (!facts_.error) return;
  span->status = StatusCode::kError;
  const std::string type = facts_.sqlstate.empty() ? std::string("_OTHER") : facts_.sqlstate;
  // The message text is not kept: it quotes values ("invalid input syntax
  // for type integer: \"...\"").
  span->status_message = "SQLSTATE " + type;
  AddAttribute(span->attributes, "error.type", type);
}

}  // namespace hoptrace::postgres
