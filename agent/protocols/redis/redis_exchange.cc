#include "agent/protocols/redis/redis_exchange.h"

#include "agent/trace/span.h"

namespace hoptrace::redis {

std::string QueryText(const CommandFacts& facts) {
  std::string text = facts.command;
  const size_t args = facts.argc > 0 ? facts.argc - 1 : 0;
  for (size_t i = 0; i < std::min(args, kMaxShownArgs); ++i) text += " ?";
  if (args > kMaxShownArgs) text += " ...";
  return text;
}

std::string RedisExchange::SpanName() const {
  return facts_.command.empty() ? std::string("redis") : facts_.command;
}

void RedisExchange::AddAttributes(const ConnInfo& conn, bool server,
                                  const SpanBuildOptions& /*options*/, Span* span) const {
  auto& a = span->attributes;
  AddAttribute(a, "db.system.name", "redis");
  if (!facts_.command.empty()) {
    AddAttribute(a, "db.operation.name", facts_.command);
    AddAttribute(a, "db.query.text", QueryText(facts_));
  }
  if (facts_.database) {
    AddAttribute(a, "db.namespace", std::to_string(*facts_.database));
  } else if (conn.followed_from_open) {
    AddAttribute(a, "db.namespace", "0");  // no SELECT since it opened
  }
  if (facts_.error && !facts_.error_prefix.empty()) {
    AddAttribute(a, "db.response.status_code", facts_.error_prefix);
  }
  const std::string& address = server ? conn.LocalAddress() : conn.RemoteAddress();
  if (!address.empty()) {
    AddAttribute(a, "server.address", address);
    AddAttribute(a, "server.port", int64_t{server ? conn.local_port : conn.remote_port});
  }
}

void RedisExchange::SetStatus(bool /*server*/, Span* span) const {
  if (!facts_.error) return;
  span->status = StatusCode::kError;
  const std::string type =
      facts_.error_prefix.empty() ? std::string("_OTHER") : facts_.error_prefix;
  // Not the message: "unknown command 'x', with args beginning with: ..."
  // quotes the caller's values.
  span->status_message = type;
  AddAttribute(span->attributes, "error.type", type);
}

}  // namespace hoptrace::redis
