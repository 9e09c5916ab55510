// The Redis half of a span (OpenTelemetry database semantic conventions,
// Redis page): db.system.name "redis", db.operation.name (the command),
// db.query.text without values ("SET ? ?"), db.namespace (the database
// index), server.address / server.port. The span name is the command.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/protocols/protocol.h"

namespace hoptrace::redis {

struct CommandFacts {
  std::string command;  // upper-cased ("SET"); "" if unreadable
  size_t argc = 0;      // words of the command, its name included
  // SELECTed database index; nullopt: no SELECT seen (0 if the connection
  // was followed from its start).
  std::optional<int64_t> database;
  bool error = false;
  std::string error_prefix;  // "ERR", "WRONGTYPE", ...
};

// "SET ? ?": the command and one "?" per argument, at most kMaxShownArgs.
std::string QueryText(const CommandFacts& facts);
inline constexpr size_t kMaxShownArgs = 32;

class RedisExchange : public ExchangeDetails {
 public:
  explicit RedisExchange(CommandFacts facts) : facts_(std::move(facts)) {}
  std::string SpanName() const override;
  void AddAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                     Span* span) const override;
  // An error reply is an error; error.type is its prefix (semconv: the
  // database-specific error code).
  void SetStatus(bool server, Span* span) const override;
  const CommandFacts& facts() const { return facts_; }

 private:
  CommandFacts facts_;
};

}  // namespace hoptrace::redis
