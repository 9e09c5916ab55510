#include "agent/protocols/redis/redis_parser.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <deque>
#include <optional>

#include "agent/protocols/redis/redis_exchange.h"
#include "agent/protocols/redis/resp_reader.h"

namespace hoptrace::redis {
namespace {

constexpr size_t kMaxCommandName = 32;

struct Chunk {  // the syscall some bytes came from
  uint64_t ts_enter = 0, ts_exit = 0;
  uint32_t tid = 0;
};

MessageTiming Timing(const Chunk& first, const Chunk& last) {
  return {first.ts_enter, first.ts_exit, last.ts_enter, last.ts_exit, first.tid};
}

// Command names are letters (and '-', '_', '|' in module commands).
std::string CommandName(std::string_view word) {
  if (word.empty() || word.size() > kMaxCommandName) return {};
  std::string name;
  for (char c : word) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '|' &&
        c != '.') {
      return {};
    }
    name.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return name;
}

bool StartsStreaming(std::string_view command) {
  return command == "SUBSCRIBE" || command == "PSUBSCRIBE" || command == "SSUBSCRIBE" ||
         command == "MONITOR";
}

struct Stream {
  explicit Stream(bool requests) : reader(requests) {}
  RespReader reader;
  bool lost = false;  // framing lost: waiting for a capture that starts a value
  Chunk first, last;  // syscalls with the current value's first and last bytes
};

struct Pending {
  uint64_t id = 0;
  bool announced = false;
  // Commands past max_pending_requests are not kept one by one: a run of
  // them is one entry that only counts, so pairing stays in order.
  size_t dropped_run = 0;
  MessageTiming request;
  std::optional<MessageTiming> response;  // bytes of its reply seen so far
  CommandFacts facts;
};

class RedisParser : public ProtocolParser {
 public:
  RedisParser(Role role, ExchangeSink* sink, const ParserLimits& limits)
      : sink_(sink), limits_(limits) {
    limits_.max_pending_requests = std::max<size_t>(limits_.max_pending_requests, 1);
    if (role == Role::kClient) request_dir_ = Direction::kEgress;
    if (role == Role::kServer) request_dir_ = Direction::kIngress;
  }

  void OnData(Direction dir, std::string_view captured, uint64_t total, uint64_t ts_enter,
              uint64_t ts_exit, uint32_t tid) override {
    const Chunk c{ts_enter, ts_exit, tid};
    total = std::max<uint64_t>(total, captured.size());
    if (streaming_) return;
    if (!request_dir_) {  // the side that speaks first with a command
      if (!LooksLikeStart(captured)) {
        stats_.invalid_bytes += total;
        return;
      }
      request_dir_ = dir;
    }
    const bool requests = dir == *request_dir_;
    Stream& s = requests ? requests_ : replies_;
    std::string_view data = captured;
    if (s.lost) {
      if (!LooksLikeRespStart(requests, data)) {
        stats_.invalid_bytes += total;
        return;
      }
      s.reader.Reset();
      s.lost = false;
      ++stats_.resyncs;
    }
    while (!data.empty() && !streaming_) {
      if (s.reader.idle()) s.first = c;
      s.last = c;
      const RespReader::Result r = s.reader.Feed(&data);
      if (r == RespReader::Result::kInvalid) {
        stats_.invalid_bytes += data.size();
        Lose(s, requests, c);
        return;
      }
      if (r == RespReader::Result::kValue) OnValue(s, requests);
      if (!requests && !s.reader.idle() && !pending_.empty() && pending_.front().announced) {
        StampReply(s);
      }
    }
    if (total > captured.size() && !streaming_) {
      s.last = c;
      if (!s.reader.Skip(total - captured.size())) {
        stats_.invalid_bytes += total - captured.size();
        Lose(s, requests, c);
      } else if (s.reader.value_ready()) {
        OnValue(s, requests);
      }
    }
  }

  void OnClose(uint64_t /*ts*/) override {
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      Finish(p, p.response ? Exchange::Outcome::kResponseIncomplete
                           : Exchange::Outcome::kNoResponse);
      pending_.pop_front();
    }
  }

  Role role() const override {
    if (!request_dir_) return Role::kUnknown;
    return *request_dir_ == Direction::kEgress ? Role::kClient : Role::kServer;
  }
  size_t pending_requests() const override { return announced_; }
  const ParserStats& stats() const override { return stats_; }

 private:
  void Lose(Stream& s, bool requests, const Chunk& c) {
    s.reader.Reset();
    s.lost = true;
    if (!requests) replies_lost_at_ = c.ts_enter;
  }

  void OnValue(Stream& s, bool requests) {
    const RespValue& v = s.reader.value();
    requests ? OnCommand(s, v) : OnReply(s, v);
  }

  void OnCommand(const Stream& s, const RespValue& v) {
    // A client sending again has read the replies sent before it did.
    if (replies_lost_at_) {
      while (!pending_.empty() && pending_.front().request.last_byte_ts_exit <= *replies_lost_at_) {
        Finish(pending_.front(), Exchange::Outcome::kComplete);
        pending_.pop_front();
      }
      replies_lost_at_.reset();
    }
    if (announced_ >= limits_.max_pending_requests) {
      ++stats_.pending_overflow;
      if (pending_.empty() || pending_.back().announced) pending_.emplace_back();
      ++pending_.back().dropped_run;
      return;
    }
    Pending& p = pending_.emplace_back();
    p.id = next_id_++;
    p.request = Timing(s.first, s.last);
    p.facts.command = v.args.empty() ? std::string() : CommandName(v.args[0]);
    p.facts.argc = v.argc;
    if (p.facts.command == "SELECT" && v.args.size() > 1) {
      int64_t index = 0;
      const std::string& a = v.args[1];
      auto [end, ec] = std::from_chars(a.data(), a.data() + a.size(), index);
      if (ec == std::errc() && end == a.data() + a.size() && index >= 0) database_ = index;
    }
    p.facts.database = database_;
    p.announced = true;
    ++announced_;
    sink_->OnRequestStart(RequestStart{p.id, p.request, std::nullopt, std::nullopt});
  }

  void StampReply(const Stream& s) {
    Pending& p = pending_.front();
    if (!p.response) p.response = Timing(s.first, s.last);
    p.response->last_byte_ts_enter = s.last.ts_enter;
    p.response->last_byte_ts_exit = s.last.ts_exit;
  }

  void OnReply(const Stream& s, const RespValue& v) {
    if (v.push || v.attribute) return;
    if (pending_.empty()) {
      ++stats_.orphan_responses;
      return;
    }
    if (!pending_.front().announced) {
      if (--pending_.front().dropped_run == 0) pending_.pop_front();
      return;
    }
    StampReply(s);
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    p.facts.error = v.error;
    p.facts.error_prefix = CommandName(v.error_prefix);
    const bool streams = !v.error && StartsStreaming(p.facts.command);
    Finish(p, Exchange::Outcome::kComplete);
    if (streams) {
      streaming_ = true;
      ++stats_.degraded;
      OnClose(0);  // commands sent after it get no replies we can pair
    }
  }

  void Finish(Pending& p, Exchange::Outcome outcome) {
    if (!p.announced) return;
    Exchange e;
    e.exchange_id = p.id;
    e.request = p.request;
    e.response = p.response;
    e.outcome = outcome;
    e.details = std::make_unique<RedisExchange>(std::move(p.facts));
    --announced_;
    ++stats_.records;
    sink_->OnExchange(std::move(e));
  }

  ExchangeSink* sink_;
  ParserLimits limits_;
  ParserStats stats_;
  std::optional<Direction> request_dir_;
  Stream requests_{true}, replies_{false};
  std::deque<Pending> pending_;
  std::optional<int64_t> database_;
  std::optional<uint64_t> replies_lost_at_;
  bool streaming_ = false;
  uint64_t next_id_ = 1;
  size_t announced_ = 0;
};

}  // namespace

std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits) {
  return std::make_unique<RedisParser>(role, sink, limits);
}

bool LooksLikeStart(std::string_view first_bytes) {
  return LooksLikeRespStart(/*requests=*/true, first_bytes);
}

const Protocol kProtocol{"redis", HT_PROTO_REDIS, &LooksLikeStart, &NewParser};

}  // namespace hoptrace::redis
