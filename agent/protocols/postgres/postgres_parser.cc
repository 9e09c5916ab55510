#include "agent/protocols/postgres/postgres_parser.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/protocols/postgres/messages.h"
#include "agent/protocols/postgres/postgres_exchange.h"
#include "agent/protocols/postgres/sql_summary.h"

namespace hoptrace::postgres {
namespace {

constexpr size_t kNpos = std::string_view::npos;
// Bodies kept per message type: names are at most NAMEDATALEN (64) bytes; the
// SQLSTATE comes among the first fields of an ErrorResponse.
constexpr size_t kKeepNames = 512;
constexpr size_t kKeepError = 1024;
constexpr size_t kKeepTag = 64;
// Headers checked in a row before an offset is taken as a message boundary.
constexpr int kResyncHeaders = 32;

struct Chunk {  // the syscall some bytes came from
  uint64_t ts_enter = 0, ts_exit = 0;
  uint32_t tid = 0;
};

MessageTiming Timing(const Chunk& first, const Chunk& last) {
  return {first.ts_enter, first.ts_exit, last.ts_enter, last.ts_exit, first.tid};
}

enum class State { kStartup, kSslAnswer, kHeader, kBody, kResync, kIgnore };

struct Stream {
  Side side = Side::kFrontend;
  State state = State::kHeader;
  std::string head;  // header bytes being assembled
  bool startup = false;  // the message is an untyped first message
  StartupKind startup_kind = StartupKind::kNone;
  Header header;
  uint64_t remaining = 0;  // body bytes still to come
  size_t keep = 0;         // body bytes worth keeping
  std::string body;        // the kept part
  Chunk first, last;       // syscalls with the message's first and last bytes
};

struct Pending {
  uint64_t id = 0;
  bool announced = false;  // false: dropped past max_pending_requests
  // Executes past the limit are not kept one by one: a run of them is one
  // entry that counts them, so results still pair in order.
  size_t dropped_run = 0;
  MessageTiming request;
  std::optional<MessageTiming> response;
  bool resolved = false;  // its result arrived (extended query)
  QueryFacts facts;
};

// What one Sync (or Query) asks for; the backend ends it with ReadyForQuery.
struct Cycle {
  std::vector<Pending> exchanges;
  size_t next = 0;  // first exchange still waiting for its result
  bool simple = false;
  bool closed = false;  // Sync / Query sent
  uint64_t closed_ts = 0;
  bool error = false;  // an ErrorResponse aborted the cycle
  std::string sqlstate;
};

class PostgresParser : public ProtocolParser {
 public:
  PostgresParser(Role role, ExchangeSink* sink, const ParserLimits& limits)
      : sink_(sink), limits_(limits) {
    limits_.max_pending_requests = std::max<size_t>(limits_.max_pending_requests, 1);
    frontend_.side = Side::kFrontend;
    backend_.side = Side::kBackend;
    frontend_.state = State::kStartup;
    if (role == Role::kClient) frontend_dir_ = Direction::kEgress;
    if (role == Role::kServer) frontend_dir_ = Direction::kIngress;
  }

  void OnData(Direction dir, std::string_view captured, uint64_t total, uint64_t ts_enter,
              uint64_t ts_exit, uint32_t tid) override {
    const Chunk c{ts_enter, ts_exit, tid};
    total = std::max<uint64_t>(total, captured.size());
    if (!frontend_dir_ && !DecideSides(dir, captured)) {
      stats_.invalid_bytes += total;
      return;
    }
    Stream& s = dir == *frontend_dir_ ? frontend_ : backend_;
    std::string_view data = captured;
    while (!data.empty() && s.state != State::kIgnore) {
      if (s.state == State::kResync && !Resync(s, &data)) break;
      Consume(s, &data, c);
    }
    if (total > captured.size() && s.state != State::kIgnore) {
      OnGap(s, total - captured.size(), c);
    }
  }

  void OnClose(uint64_t /*ts*/) override {
    while (!cycles_.empty()) {
      FinishCycle(cycles_.front(), std::nullopt);
      cycles_.pop_front();
    }
  }

  Role role() const override {
    if (!frontend_dir_) return Role::kUnknown;
    return *frontend_dir_ == Direction::kEgress ? Role::kClient : Role::kServer;
  }
  size_t pending_requests() const override { return pending_; }
  const ParserStats& stats() const override { return stats_; }

 private:
  // Which direction is the frontend, from the first bytes of a connection of
  // unknown role: an untyped first message, or a type only one side sends.
  bool DecideSides(Direction dir, std::string_view b) {
    const Direction other = dir == Direction::kEgress ? Direction::kIngress : Direction::kEgress;
    if (b.empty()) return false;
    if (LooksLikeStart(b)) {
      frontend_dir_ = dir;
    } else if (auto side = SideOfType(b[0]); side && ParseHeader(*side, b)) {
      frontend_dir_ = *side == Side::kFrontend ? dir : other;
      frontend_.state = State::kHeader;
    } else {
      return false;
    }
    return true;
  }

  // ---- framing ------------------------------------------------------------

  void Consume(Stream& s, std::string_view* data, const Chunk& c) {
    switch (s.state) {
      case State::kStartup:
        // Every first message starts with a length < 2^24: a 0 byte. Anything
        // else is a typed message (the connection was joined midway).
        if (s.head.empty() && (*data)[0] != '\0') {
          s.state = State::kHeader;
          return;
        }
        if (!TakeHead(s, data, kStartupHeaderSize, c)) return;
        StartStartup(s);
        return;
      case State::kSslAnswer: {
        const char answer = (*data)[0];
        if (answer == 'S' || answer == 'G') {  // encrypted from here on
          frontend_.state = backend_.state = State::kIgnore;
          ++stats_.degraded;
          return;
        }
        s.state = State::kHeader;
        if (answer == 'N') data->remove_prefix(1);  // else: an ErrorResponse follows
        return;
      }
      case State::kHeader:
        if (!TakeHead(s, data, kHeaderSize, c)) return;
        StartTyped(s);
        return;
      case State::kBody: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(s.remaining, data->size()));
        if (s.body.size() < s.keep) {
          s.body.append(data->substr(0, std::min(n, s.keep - s.body.size())));
        }
        data->remove_prefix(n);
        s.remaining -= n;
        s.last = c;
        if (s.remaining == 0) Dispatch(s);
        return;
      }
      case State::kResync:
      case State::kIgnore:
        stats_.invalid_bytes += data->size();
        *data = {};
        return;
    }
  }

  // Appends header bytes; true once `size` of them are there.
  bool TakeHead(Stream& s, std::string_view* data, size_t size, const Chunk& c) {
    if (s.head.empty()) s.first = c;
    const size_t n = std::min(size - s.head.size(), data->size());
    s.head.append(data->substr(0, n));
    data->remove_prefix(n);
    s.last = c;
    return s.head.size() == size;
  }

  void StartStartup(Stream& s) {
    const StartupHeader h = ParseStartupHeader(s.head);
    if (h.kind == StartupKind::kNone) return LoseFraming(s, s.last);
    s.startup = true;
    s.startup_kind = h.kind;
    const size_t keep = h.kind == StartupKind::kStartup ? kMaxStartupLength : 0;
    StartBody(s, h.length - kStartupHeaderSize, keep);
  }

  void StartTyped(Stream& s) {
    auto h = ParseHeader(s.side, s.head);
    if (!h) return LoseFraming(s, s.last);
    s.startup = false;
    s.header = *h;
    StartBody(s, h->body_size(), KeepFor(s.side, h->type));
  }

  void StartBody(Stream& s, uint64_t size, size_t keep) {
    s.head.clear();
    s.body.clear();
    s.remaining = size;
    s.keep = static_cast<size_t>(std::min<uint64_t>(keep, size));
    s.state = State::kBody;
    if (size == 0) Dispatch(s);
  }

  size_t KeepFor(Side side, char type) const {
    if (side == Side::kFrontend) {
      switch (type) {
        case 'Q':
        case 'P':
          return limits_.max_buffered_bytes;
        case 'B':
        case 'E':
        case 'C':
          return kKeepNames;
        default:
          return 0;
      }
    }
    switch (type) {
      case 'E':
        return kKeepError;
      case 'C':
        return kKeepTag;
      default:
        return 0;
    }
  }

  // Bytes the kernel did not capture: skipped by length inside a body,
  // framing lost otherwise.
  void OnGap(Stream& s, uint64_t n, const Chunk& c) {
    if (s.state == State::kResync) {
      stats_.invalid_bytes += n;
      return;
    }
    if (s.state == State::kBody) {
      s.last = c;
      if (n <= s.remaining) {
        s.remaining -= n;
        if (s.remaining == 0) Dispatch(s);
        return;
      }
      n -= s.remaining;
      s.remaining = 0;
      Dispatch(s);  // what was captured of it
    }
    stats_.invalid_bytes += n;
    LoseFraming(s, c);
  }

  void LoseFraming(Stream& s, const Chunk& c) {
    stats_.invalid_bytes += s.head.size();
    s.head.clear();
    s.body.clear();
    s.state = State::kResync;
    if (s.side == Side::kBackend) backend_lost_at_ = c.ts_enter;
  }

  // Finds the next message boundary in *data; false (all of it skipped) if none.
  bool Resync(Stream& s, std::string_view* data) {
    for (size_t at = 0; at + kHeaderSize <= data->size(); ++at) {
      if (LooksLikeMessages(s.side, data->substr(at), kResyncHeaders)) {
        stats_.invalid_bytes += at;
        data->remove_prefix(at);
        s.state = State::kHeader;
        ++stats_.resyncs;
        return true;
      }
    }
    stats_.invalid_bytes += data->size();
    *data = {};
    return false;
  }

  void Dispatch(Stream& s) {
    s.state = State::kHeader;
    if (s.side == Side::kFrontend) {
      s.startup ? OnStartup(s) : OnFrontend(s);
    } else {
      OnBackend(s);
    }
    s.startup = false;
    s.body.clear();
    if (s.body.capacity() > 4096) std::string().swap(s.body);
  }

  // ---- frontend -----------------------------------------------------------

  void OnStartup(Stream& s) {
    switch (s.startup_kind) {
      case StartupKind::kStartup:
        database_ = ParseStartupParams(s.body).database;
        awaiting_first_ready_ = true;
        return;
      case StartupKind::kSsl:
      case StartupKind::kGssEnc:
        s.state = State::kStartup;  // 'N' then the StartupMessage
        backend_.state = State::kSslAnswer;
        return;
      case StartupKind::kCancel:
      case StartupKind::kNone:
        frontend_.state = backend_.state = State::kIgnore;
        return;
    }
  }

  void OnFrontend(Stream& s) {
    std::string_view body = s.body;
    std::string_view a, b;
    switch (s.header.type) {
      case 'Q': {  // Query: String query
        if (!ReadCString(&body, &a)) a = body;  // cut: what was captured
        unit_first_.reset();
        auto statement = std::make_shared<const SqlSummary>(SummarizeSql(a));
        StartCycle(s.first, /*simple=*/true);
        AddExchange(Timing(s.first, s.last), std::move(statement));
        CloseCycle(s.last);
        return;
      }
      case 'P':  // Parse: String name, String query, Int16 n, Int32 oid[n]
        MarkUnit(s);
        if (ReadCString(&body, &a)) {
          if (!ReadCString(&body, &b)) b = body;
          Remember(statements_, a, std::make_shared<const SqlSummary>(SummarizeSql(b)));
        }
        return;
      case 'B':  // Bind: String portal, String statement, ... (values: not read)
        MarkUnit(s);
        if (ReadCString(&body, &a) && ReadCString(&body, &b)) {
          auto it = statements_.find(std::string(b));
          Remember(portals_, a, it == statements_.end() ? nullptr : it->second);
        }
        return;
      case 'D':  // Describe
        MarkUnit(s);
        return;
      case 'E': {  // Execute: String portal, Int32 max rows
        MarkUnit(s);
        std::shared_ptr<const SqlSummary> statement;
        if (ReadCString(&body, &a)) {
          auto it = portals_.find(std::string(a));
          if (it != portals_.end()) statement = it->second;
        }
        if (!statement) ++stats_.degraded;  // prepared before we joined, or evicted
        const Chunk first = *unit_first_;
        unit_first_.reset();
        if (cycles_.empty() || cycles_.back().closed) StartCycle(first, false);
        AddExchange(Timing(first, s.last), std::move(statement));
        return;
      }
      case 'S':  // Sync
      case 'F':  // FunctionCall: answered up to a ReadyForQuery too
        unit_first_.reset();
        if (cycles_.empty() || cycles_.back().closed) StartCycle(s.first, false);
        CloseCycle(s.last);
        return;
      case 'C':  // Close: Byte1 'S' statement / 'P' portal, String name
        if (body.size() > 1) {
          const char what = body[0];
          body.remove_prefix(1);
          if (ReadCString(&body, &a)) (what == 'S' ? statements_ : portals_).erase(std::string(a));
        }
        return;
      default:
        return;
    }
  }

  void MarkUnit(const Stream& s) {
    if (!unit_first_) unit_first_ = s.first;
  }

  using Statements = std::unordered_map<std::string, std::shared_ptr<const SqlSummary>>;
  void Remember(Statements& map, std::string_view name, std::shared_ptr<const SqlSummary> v) {
    auto it = map.find(std::string(name));
    if (it != map.end()) {
      it->second = std::move(v);
      return;
    }
    if (map.size() >= kMaxStatements) map.erase(map.begin());
    map.emplace(std::string(name), std::move(v));
  }

  void StartCycle(const Chunk& c, bool simple) {
    // A client that starts a new cycle has read the answers to the earlier
    // ones: those whose answer was lost with the backend's framing are over.
    if (backend_lost_at_) {
      while (!cycles_.empty() && cycles_.front().closed &&
             cycles_.front().closed_ts <= *backend_lost_at_) {
        FinishCycle(cycles_.front(), std::nullopt, /*answered=*/true);
        cycles_.pop_front();
      }
      backend_lost_at_.reset();
    }
    if (!cycles_.empty() && !cycles_.back().closed) CloseCycle(c);
    if (cycles_.size() >= 2 * limits_.max_pending_requests + 8) {
      FinishCycle(cycles_.front(), std::nullopt);
      cycles_.pop_front();
    }
    cycles_.emplace_back().simple = simple;
  }

  void CloseCycle(const Chunk& c) {
    cycles_.back().closed = true;
    cycles_.back().closed_ts = c.ts_exit;
  }

  void AddExchange(const MessageTiming& timing, std::shared_ptr<const SqlSummary> statement) {
    std::vector<Pending>& exchanges = cycles_.back().exchanges;
    if (pending_ >= limits_.max_pending_requests) {
      ++stats_.pending_overflow;
      if (exchanges.empty() || exchanges.back().announced) exchanges.emplace_back();
      ++exchanges.back().dropped_run;
      return;
    }
    Pending& p = exchanges.emplace_back();
    p.id = next_id_++;
    p.request = timing;
    p.facts.statement = std::move(statement);
    p.facts.database = database_;
    p.announced = true;
    ++pending_;
    sink_->OnRequestStart(RequestStart{p.id, timing, std::nullopt, std::nullopt});
  }

  // ---- backend ------------------------------------------------------------

  void OnBackend(Stream& s) {
    const char type = s.header.type;
    if (awaiting_first_ready_) {  // authentication, parameters, key: no query yet
      if (type == 'Z') awaiting_first_ready_ = false;
      return;
    }
    // The front cycle may still be open: results of an Execute followed by
    // Flush come before its Sync. Only a closed cycle can be ready.
    if (cycles_.empty() || (type == 'Z' && !cycles_.front().closed)) {
      if (type == 'Z') ++stats_.orphan_responses;
      return;
    }
    Cycle& c = cycles_.front();
    Pending* x = nullptr;
    if (c.simple && !c.exchanges.empty()) x = &c.exchanges[0];
    if (!c.simple && c.next < c.exchanges.size()) x = &c.exchanges[c.next];
    const MessageTiming t = Timing(s.first, s.last);
    if (x) {
      if (!x->response) x->response = t;
      x->response->last_byte_ts_enter = t.last_byte_ts_enter;
      x->response->last_byte_ts_exit = t.last_byte_ts_exit;
    }
    switch (type) {
      case 'C':  // CommandComplete
      case 'I':  // EmptyQueryResponse
      case 's':  // PortalSuspended
        if (x && type == 'C' && x->facts.rows < 0) x->facts.rows = ReturnedRows(s.body);
        if (x && !c.simple) Resolve(c, x);
        return;
      case 'E': {  // ErrorResponse: the backend skips to the next Sync
        const std::string state = ParseSqlState(s.body);
        if (!c.error) {
          c.error = true;
          c.sqlstate = state;
        }
        if (x) {
          x->facts.error = true;
          x->facts.sqlstate = state;
          if (!c.simple) Resolve(c, x);
        }
        return;
      }
      case 'Z':  // ReadyForQuery
        FinishCycle(c, t);
        cycles_.pop_front();
        backend_lost_at_.reset();
        return;
      default:
        return;
    }
  }

  static void Resolve(Cycle& c, Pending* x) {
    if (!x->announced && --x->dropped_run > 0) return;  // more of the run to come
    x->resolved = true;
    ++c.next;
  }

  // Reports a cycle's exchanges. ready: the ReadyForQuery that ended it;
  // nullopt: the connection ended first, or (answered) its end was lost.
  void FinishCycle(Cycle& c, const std::optional<MessageTiming>& ready, bool answered = false) {
    for (Pending& p : c.exchanges) {
      if (!p.announced) continue;
      Exchange e;
      e.exchange_id = p.id;
      e.request = p.request;
      e.response = p.response;
      if (ready) {
        if (!e.response) e.response = *ready;
        if (!p.resolved) {
          e.response->last_byte_ts_enter = ready->last_byte_ts_enter;
          e.response->last_byte_ts_exit = ready->last_byte_ts_exit;
        }
        e.outcome = Exchange::Outcome::kComplete;
      } else if (answered && p.response) {
        e.outcome = Exchange::Outcome::kComplete;
      } else {
        e.outcome = p.response ? Exchange::Outcome::kResponseIncomplete
                               : Exchange::Outcome::kNoResponse;
      }
      if (c.error && !p.facts.error && (ready || answered)) {  // skipped by the error
        p.facts.error = true;
        p.facts.sqlstate = c.sqlstate;
      }
      e.details = std::make_unique<PostgresExchange>(std::move(p.facts));
      --pending_;
      ++stats_.records;
      sink_->OnExchange(std::move(e));
    }
  }

  ExchangeSink* sink_;
  ParserLimits limits_;
  ParserStats stats_;
  std::optional<Direction> frontend_dir_;
  Stream frontend_, backend_;
  std::string database_;
  bool awaiting_first_ready_ = false;
  Statements statements_, portals_;
  std::optional<Chunk> unit_first_;  // first message of the Execute being built
  std::deque<Cycle> cycles_;
  std::optional<uint64_t> backend_lost_at_;  // ts the backend's framing was lost
  uint64_t next_id_ = 1;
  size_t pending_ = 0;
};

}  // namespace

std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits) {
  return std::make_unique<PostgresParser>(role, sink, limits);
}

bool LooksLikeStart(std::string_view first_bytes) {
  const StartupKind kind = ParseStartupHeader(first_bytes).kind;
  return kind == StartupKind::kStartup || kind == StartupKind::kSsl ||
         kind == StartupKind::kGssEnc;
}

const Protocol kProtocol{"postgresql", HT_PROTO_POSTGRES, &LooksLikeStart, &NewParser};

}  // namespace hoptrace::postgres
