// HTTP/1.x stitcher: one MessageStream per direction frames messages (RFC
// 9112 section 6.3), the Impl pairs requests with responses in FIFO order.
//
// Where a message lives while it is being received: a request is pushed to
// the pending FIFO as soon as its head is parsed (the listener sees it then),
// so its stream only remembers its sequence number and updates it in place if
// it is still there; a response stays in its stream until it completes.
#include "agent/protocols/http1/stitcher.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "agent/protocols/http1/parse.h"

namespace hoptrace::http1 {
namespace {

constexpr size_t kNpos = std::string_view::npos;
// Below this a head buffer could not even hold a request line.
constexpr size_t kMinBufferedBytes = 16;
// An idle connection keeps no more than this much head buffer capacity.
constexpr size_t kKeptBufferCapacity = 4096;

struct Chunk {  // the syscall some bytes came from
  uint64_t ts_enter = 0, ts_exit = 0;
  uint32_t tid = 0;
};

void StampFirst(const Chunk& c, Message* m) {
  m->first_byte_ts_enter = c.ts_enter;
  m->first_byte_ts_exit = c.ts_exit;
  m->tid = c.tid;
}

void StampLast(const Chunk& c, Message* m) {
  m->last_byte_ts_enter = c.ts_enter;
  m->last_byte_ts_exit = c.ts_exit;
}

enum class State { kHead, kSkipHead, kBodyLength, kBodyChunked, kBodyUntilClose, kResync };

// How a message's body is framed (RFC 9112 6.3, first rule that applies).
enum class Body { kNone, kLength, kChunked, kUntilClose, kLost, kTunnel };

struct MessageStream {
  Direction dir = Direction::kEgress;
  std::optional<MessageType> type;  // unknown while the role is
  State state = State::kHead;

  // Head being assembled across syscalls: captured bytes only, bounded by
  // StitcherLimits::max_buffered_bytes.
  std::string buf;
  HeadEndScanner scanner;    // over buf and, in kSkipHead, what follows
  size_t next_validate = 0;  // reparse buf when it reaches this size
  Chunk head_first;          // syscall with the first byte of the head

  // The message whose head was parsed and whose bytes are still arriving.
  bool in_message = false;
  Message response;           // response streams
  uint64_t request_seq = 0;   // request streams: its entry in pending
  bool interim = false;       // a 1xx other than 101: never paired
  bool orphan = false;        // a final response with no request to pair
  bool answers_head = false;  // the request it answers was HEAD / CONNECT
  bool answers_connect = false;
  // Framing facts copied from the head: the request itself may be dropped
  // from pending while its body is still arriving.
  int64_t content_length = -1;
  bool chunked = false;
  int status = 0;
  bool truncated = false;

  uint64_t remaining = 0;  // Content-Length bytes to come
  ChunkedDecoder chunked_body;

  // Message starts lost (gap, garbage) since the last head: on a response
  // stream, that many of the oldest pending requests lost their responses.
  uint64_t lost_starts = 0;
};

struct Pending {
  uint64_t seq = 0;
  Message request;
};

}  // namespace

struct Stitcher::Impl {
  Impl(Role r, Listener* l, StitcherLimits lim) : role(r), listener(l), limits(lim) {
    limits.max_buffered_bytes = std::max(limits.max_buffered_bytes, kMinBufferedBytes);
    limits.max_pending_requests = std::max<size_t>(limits.max_pending_requests, 1);
    streams[0].dir = Direction::kEgress;
    streams[1].dir = Direction::kIngress;
    if (role != Role::kUnknown) SetTypes();
  }

  MessageStream& StreamFor(Direction d) { return streams[d == Direction::kEgress ? 0 : 1]; }

  void SetTypes() {
    const bool server = role == Role::kServer;
    StreamFor(Direction::kIngress).type = server ? MessageType::kRequest : MessageType::kResponse;
    StreamFor(Direction::kEgress).type = server ? MessageType::kResponse : MessageType::kRequest;
  }

  bool IsRequestStream(const MessageStream& s) const { return s.type == MessageType::kRequest; }

  bool StartsMessage(const MessageStream& s, std::string_view data) const {
    if (s.type) return LooksLikeStart(*s.type, data);
    return LooksLikeStart(MessageType::kRequest, data) ||
           LooksLikeStart(MessageType::kResponse, data);
  }

  // The message the stream is receiving, if it still exists.
  Message* Current(MessageStream& s) {
    if (!s.in_message) return nullptr;
    if (!IsRequestStream(s)) return &s.response;
    if (!pending.empty() && pending.back().seq == s.request_seq) return &pending.back().request;
    if (in_flight && in_flight->seq == s.request_seq) return &in_flight->request;
    return nullptr;
  }

  void ClearBuffer(MessageStream& s) {
    s.buf.clear();
    if (s.buf.capacity() > kKeptBufferCapacity) std::string().swap(s.buf);
  }

  // ---- data path ----------------------------------------------------------

  size_t OnData(Direction dir, std::string_view captured, uint64_t total, const Chunk& c) {
    if (upgraded) return 0;
    MessageStream& s = StreamFor(dir);
    total = std::max<uint64_t>(total, captured.size());
    if ((s.state == State::kResync || s.state == State::kSkipHead) && StartsMessage(s, captured)) {
      if (s.in_message) FinishLost(s);
      s.state = State::kHead;
      ++stats.resyncs;
    }
    std::string_view data = captured;
    while (!data.empty() && !upgraded) {
      switch (s.state) {
        case State::kHead:
          ConsumeHead(s, &data, c);
          break;
        case State::kSkipHead:
          ConsumeSkipHead(s, &data, c);
          break;
        case State::kBodyLength: {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(s.remaining, data.size()));
          AddBody(s, n, c);
          data.remove_prefix(n);
          s.remaining -= n;
          if (s.remaining == 0) Complete(s, c);
          break;
        }
        case State::kBodyChunked:
          ConsumeChunked(s, &data, c);
          break;
        case State::kBodyUntilClose:
        case State::kResync:
          Discard(s, data.size(), c);
          data = {};
          break;
      }
    }
    if (upgraded) return captured.size() - data.size();  // `data` is a suffix of `captured`
    if (total > captured.size()) OnGap(s, total - captured.size(), c);
    return captured.size();
  }

  // Bytes of the current message's body; outside a message, bytes skipped.
  void Discard(MessageStream& s, uint64_t n, const Chunk& c) {
    s.in_message ? AddBody(s, n, c) : void(stats.invalid_bytes += n);
  }

  void AddBody(MessageStream& s, uint64_t n, const Chunk& c) {
    if (Message* m = Current(s); m != nullptr && n > 0) {
      m->body_bytes += n;
      StampLast(c, m);
    }
  }

  void ConsumeHead(MessageStream& s, std::string_view* data, const Chunk& c) {
    if (s.buf.empty()) {
      // RFC 9112 2.2: "a server that is expecting to receive and parse a
      // request-line SHOULD ignore at least one empty line (CRLF) received
      // prior to the request-line". Done here, not in ParseHead, so that the
      // head's first byte is the syscall that carried it.
      const size_t start = data->find_first_not_of("\r\n");
      if (start == kNpos) {
        *data = {};
        return;
      }
      data->remove_prefix(start);
      s.head_first = c;
    }
    if (!s.type && !DetectType(s, data)) return;
    if (s.buf.empty()) {
      ParseFromChunk(s, data, c);
    } else {
      ParseBuffered(s, data, c);
    }
  }

  // Role kUnknown: the first bytes that look like a request or a response
  // decide it (a request read => server, a request written => client).
  bool DetectType(MessageStream& s, std::string_view* data) {
    std::string probe = s.buf;
    probe.append(data->substr(0, 8));
    const bool request = LooksLikeStart(MessageType::kRequest, probe);
    const bool response = LooksLikeStart(MessageType::kResponse, probe);
    if (request && response) {  // "H": HEAD or HTTP/1.x, one byte more decides
      s.buf = probe;
      s.scanner.Reset();
      s.next_validate = 0;
      *data = {};
      return false;
    }
    if (!request && !response) {
      Garbage(s, data);
      return false;
    }
    const bool server = (s.dir == Direction::kIngress) == request;
    role = server ? Role::kServer : Role::kClient;
    SetTypes();
    return true;
  }

  void Garbage(MessageStream& s, std::string_view* data) {
    stats.invalid_bytes += s.buf.size() + data->size();
    ++s.lost_starts;
    ClearBuffer(s);
    *data = {};
    s.state = State::kResync;
  }

  // The head starts in this syscall: parse it in place, buffer only if it
  // continues in the next one.
  void ParseFromChunk(MessageStream& s, std::string_view* data, const Chunk& c) {
    std::string_view view = data->substr(0, limits.max_buffered_bytes);
    Message m;
    const ParseState state = ParseHead(*s.type, &view, &m);
    if (state == ParseState::kSuccess) {
      data->remove_prefix(m.head_bytes);
      OnHead(s, std::move(m), c, /*truncated=*/false);
      return;
    }
    if (state == ParseState::kInvalid) {
      Garbage(s, data);
      return;
    }
    if (data->size() >= limits.max_buffered_bytes) {
      const std::string_view head = data->substr(0, limits.max_buffered_bytes);
      s.scanner.Reset();
      s.scanner.Feed(head);
      data->remove_prefix(head.size());
      TruncateHead(s, head, c);
      return;
    }
    s.buf.assign(*data);
    s.scanner.Reset();
    s.scanner.Feed(s.buf);
    s.next_validate = 2 * s.buf.size();
    *data = {};
  }

  // The head started in an earlier syscall. Reparsing the buffer on every
  // syscall would be quadratic in the head size, so ParseHead runs only once
  // the scanner saw the end of the head, or when the buffer has doubled (to
  // notice garbage early), or when the buffer is full.
  void ParseBuffered(MessageStream& s, std::string_view* data, const Chunk& c) {
    const size_t old = s.buf.size();
    const size_t n = std::min(limits.max_buffered_bytes - old, data->size());
    s.buf.append(data->data(), n);
    const bool ended = s.scanner.Feed(std::string_view(s.buf).substr(old)) != kNpos;
    const bool full = s.buf.size() >= limits.max_buffered_bytes;
    if (!ended && !full && s.buf.size() < s.next_validate) {
      data->remove_prefix(n);
      return;
    }
    std::string_view view = s.buf;
    Message m;
    const ParseState state = ParseHead(*s.type, &view, &m);
    if (state == ParseState::kSuccess && m.head_bytes > old && m.head_bytes <= s.buf.size()) {
      data->remove_prefix(m.head_bytes - old);
      ClearBuffer(s);
      OnHead(s, std::move(m), c, /*truncated=*/false);
      return;
    }
    if (state == ParseState::kNeedsMoreData) {
      data->remove_prefix(n);
      if (full) {
        TruncateHead(s, s.buf, c);  // the scanner goes on from the buffer's end
      } else {
        s.next_validate = 2 * s.buf.size();
      }
      return;
    }
    // Garbage. This syscall may still begin a message of its own.
    stats.invalid_bytes += old;
    ++s.lost_starts;
    ClearBuffer(s);
    if (StartsMessage(s, *data)) {
      ++stats.resyncs;
      return;
    }
    Garbage(s, data);
  }

  // The rest of the head is lost (gap) or too big to buffer: keep what is
  // known if the start line is, and skip to the head's end.
  void TruncateHead(MessageStream& s, std::string_view head, const Chunk& c) {
    Message m;
    const ParseState state = ParseTruncatedHead(*s.type, head, &m);
    if (state != ParseState::kSuccess) {
      stats.invalid_bytes += head.size();
      ++s.lost_starts;
      ClearBuffer(s);
      s.state = State::kResync;
      return;
    }
    ClearBuffer(s);                           // only now: head may point into buf
    const bool truncated = m.head_truncated;  // false only if callers missed the head end
    OnHead(s, std::move(m), c, truncated);
  }

  void ConsumeSkipHead(MessageStream& s, std::string_view* data, const Chunk& c) {
    const size_t end = s.scanner.Feed(*data);
    const size_t n = end == kNpos ? data->size() : end;
    if (Message* m = Current(s)) {
      m->head_bytes += n;
      StampLast(c, m);
    }
    data->remove_prefix(n);
    if (end != kNpos) {
      s.scanner.Reset();
      ApplyBody(s, DecideBody(s), c);
    }
  }

  void OnHead(MessageStream& s, Message&& m, const Chunk& c, bool truncated) {
    StampFirst(s.head_first, &m);
    StampLast(c, &m);
    s.in_message = true;
    s.content_length = m.content_length;
    s.chunked = m.chunked;
    s.status = m.status_code;
    s.truncated = truncated;
    s.answers_head = s.answers_connect = s.interim = false;
    s.orphan = true;
    if (IsRequestStream(s)) {
      s.lost_starts = 0;
      if (!truncated && DecideBody(s) == Body::kNone) m.body_complete = true;
      s.request_seq = PushRequest(std::move(m));
    } else {
      s.response = std::move(m);
      // RFC 9112 4: "A client MUST be able to parse one or more 1xx responses
      // received prior to a final response"; they do not end the exchange.
      s.interim = s.status >= 100 && s.status < 200 && s.status != 101;
      if (!s.interim) PairResponse(s);
    }
    if (truncated) {
      s.state = State::kSkipHead;
    } else {
      ApplyBody(s, DecideBody(s), c);
    }
  }

  // RFC 9112 6.3, in its order.
  Body DecideBody(const MessageStream& s) const {
    if (!IsRequestStream(s)) {
      // "Any response to a HEAD request and any response with a 1xx
      // (Informational), 204 (No Content), or 304 (Not Modified) status code
      // is always terminated by the first empty line after the header fields"
      // 101 switches protocols after its head (RFC 9110 15.2.2).
      if (s.status == 101) return Body::kTunnel;
      if (s.answers_head || s.status < 200 || s.status == 204 || s.status == 304) {
        return Body::kNone;
      }
      // "Any 2xx (Successful) response to a CONNECT request implies that the
      // connection will become a tunnel immediately after the empty line"
      if (s.answers_connect && s.status < 300) return Body::kTunnel;
    }
    if (s.chunked) return Body::kChunked;
    if (s.content_length >= 0) return s.content_length == 0 ? Body::kNone : Body::kLength;
    // "If this is a request message and none of the above are true, then the
    // message body length is zero". A truncated request head might have lost
    // its Content-Length; bodiless requests are by far the common case.
    if (IsRequestStream(s)) return Body::kNone;
    // "Otherwise, this is a response message without a declared message body
    // length, so the message body length is determined by the number of octets
    // received prior to the server closing the connection." Unless the head
    // was truncated: then a declared length may simply not have been seen.
    return s.truncated ? Body::kLost : Body::kUntilClose;
  }

  void ApplyBody(MessageStream& s, Body body, const Chunk& c) {
    switch (body) {
      case Body::kNone:
        Complete(s, c);
        break;
      case Body::kLength:
        s.remaining = static_cast<uint64_t>(s.content_length);
        s.state = State::kBodyLength;
        break;
      case Body::kChunked:
        s.chunked_body = ChunkedDecoder();
        s.state = State::kBodyChunked;
        break;
      case Body::kUntilClose:
        s.state = State::kBodyUntilClose;
        break;
      case Body::kLost:
        FramingLost(s);
        break;
      case Body::kTunnel:
        Complete(s, c);
        upgraded = true;
        break;
    }
  }

  void ConsumeChunked(MessageStream& s, std::string_view* data, const Chunk& c) {
    size_t n = 0;
    const ParseState state = s.chunked_body.Consume(*data, &n);
    AddBody(s, n, c);
    data->remove_prefix(n);
    if (state == ParseState::kSuccess) {
      Complete(s, c);
    } else if (state == ParseState::kInvalid) {
      FramingLost(s);
    }
  }

  // Bytes the kernel did not capture.
  void OnGap(MessageStream& s, uint64_t gap, const Chunk& c) {
    switch (s.state) {
      case State::kHead:
        if (s.buf.empty() || !s.type) {  // a message start is among them
          stats.invalid_bytes += s.buf.size() + gap;
          ++s.lost_starts;
          ClearBuffer(s);
          s.state = State::kResync;
          return;
        }
        TruncateHead(s, s.buf, c);
        s.scanner.Reset();  // bytes are missing: the next LF starts no line
        if (s.state == State::kSkipHead) {
          if (Message* m = Current(s)) m->head_bytes += gap;
        } else {
          stats.invalid_bytes += gap;
        }
        return;
      case State::kSkipHead:
        if (Message* m = Current(s)) {
          m->head_bytes += gap;
          StampLast(c, m);
        }
        s.scanner.Reset();
        return;
      case State::kBodyLength:
        if (gap < s.remaining) {
          s.remaining -= gap;
          AddBody(s, gap, c);
          return;
        }
        AddBody(s, s.remaining, c);
        gap -= s.remaining;
        s.remaining = 0;
        Complete(s, c);
        if (gap > 0 && !upgraded) {  // the next message began in the gap
          stats.invalid_bytes += gap;
          ++s.lost_starts;
          s.state = State::kResync;
        }
        return;
      case State::kBodyChunked:
        AddBody(s, gap, c);
        // Inside chunk-data the length is known: nothing is lost yet.
        if (!s.chunked_body.Skip(gap)) FramingLost(s);
        return;
      case State::kBodyUntilClose:
      case State::kResync:
        Discard(s, gap, c);
        return;
    }
  }

  // ---- message ends ---------------------------------------------------------

  // Framing says the message ended; c carried its last byte.
  void Complete(MessageStream& s, const Chunk& c) {
    if (Message* m = Current(s)) {
      m->body_complete = true;
      StampLast(c, m);
    }
    s.state = State::kHead;
    EndMessage(s, Record::Outcome::kComplete);
  }

  void FramingLost(MessageStream& s) {
    if (Message* m = Current(s)) m->body_framing_lost = true;
    s.state = State::kResync;
  }

  // The message whose framing was lost ends at the resync point: at the
  // last bytes seen before it.
  void FinishLost(MessageStream& s) {
    if (Message* m = Current(s)) m->body_framing_lost = true;
    EndMessage(s, Record::Outcome::kComplete);
  }

  void EndMessage(MessageStream& s, Record::Outcome outcome) {
    if (!s.in_message) return;
    s.in_message = false;
    if (IsRequestStream(s)) return;                   // its record comes with the response
    if (s.interim || s.orphan || !in_flight) return;  // s.response is overwritten by the next head
    Record record;
    record.request = std::move(in_flight->request);
    record.response = std::move(s.response);
    record.outcome = outcome;
    in_flight.reset();
    if (record.response->status_code == 101 && listener->TakeUpgrade(record)) return;
    Emit(std::move(record));
  }

  // ---- pairing --------------------------------------------------------------

  uint64_t PushRequest(Message&& request) {
    const uint64_t seq = next_seq++;
    request.seq = seq;
    Pending& p = pending.emplace_back();  // the request is moved once, not twice
    p.seq = seq;
    p.request = std::move(request);
    listener->OnRequestHead(pending.back().request);
    while (pending.size() > limits.max_pending_requests) {
      pending.pop_front();
      ++stats.pending_overflow;
    }
    return seq;
  }

  void PairResponse(MessageStream& s) {
    if (in_flight) ReportNoResponse(std::move(*in_flight));  // defensive: cannot happen
    in_flight.reset();
    // Each lost response start most likely answered the oldest request; keep
    // at least one to pair with this response.
    for (; s.lost_starts > 0 && pending.size() > 1; --s.lost_starts, pending.pop_front()) {
      ReportNoResponse(std::move(pending.front()));
    }
    s.lost_starts = 0;
    // A response that was already received when a request began cannot
    // answer it: it answers a request that was never seen.
    const uint64_t response_seen = s.response.first_byte_ts_exit;
    if (pending.empty() ||
        (response_seen != 0 && response_seen < pending.front().request.first_byte_ts_enter)) {
      ++stats.orphan_responses;
      return;
    }
    in_flight = std::move(pending.front());
    pending.pop_front();
    s.orphan = false;
    s.answers_head = in_flight->request.method == "HEAD";
    s.answers_connect = in_flight->request.method == "CONNECT";
  }

  void ReportNoResponse(Pending&& p) {
    Record record;
    record.request = std::move(p.request);
    record.outcome = Record::Outcome::kNoResponse;
    Emit(std::move(record));
  }

  void Emit(Record&& record) {
    ++stats.records;
    listener->OnRecord(std::move(record));
  }

  void OnClose() {
    for (MessageStream& s : streams) {
      if (s.in_message && !IsRequestStream(s)) {
        Record::Outcome outcome = Record::Outcome::kComplete;
        if (s.state == State::kBodyUntilClose) {
          s.response.body_complete = true;
        } else if (s.state == State::kResync || s.state == State::kSkipHead) {
          // Framing was lost: the close is the resync point.
          s.response.body_framing_lost = true;
        } else {
          outcome = Record::Outcome::kResponseIncomplete;
        }
        EndMessage(s, outcome);
      }
      MessageStream fresh;
      fresh.dir = s.dir;
      fresh.type = s.type;
      s = std::move(fresh);
    }
    if (in_flight) ReportNoResponse(std::move(*in_flight));
    in_flight.reset();
    for (; !pending.empty(); pending.pop_front()) ReportNoResponse(std::move(pending.front()));
  }

  Role role;
  Listener* listener;
  StitcherLimits limits;
  StitcherStats stats;
  bool upgraded = false;
  MessageStream streams[2];
  std::deque<Pending> pending;       // requests with no response head yet
  std::optional<Pending> in_flight;  // the request whose response is arriving
  uint64_t next_seq = 1;
};

Stitcher::Stitcher(Role role, Listener* listener, StitcherLimits limits)
    : impl_(std::make_unique<Impl>(role, listener, limits)) {}

Stitcher::~Stitcher() = default;

size_t Stitcher::OnData(Direction dir, std::string_view captured, uint64_t total_bytes,
                        uint64_t ts_enter, uint64_t ts_exit, uint32_t tid) {
  return impl_->OnData(dir, captured, total_bytes, Chunk{ts_enter, ts_exit, tid});
}

void Stitcher::OnClose(uint64_t /*ts*/) { impl_->OnClose(); }

Role Stitcher::role() const { return impl_->role; }

size_t Stitcher::pending_requests() const {
  return impl_->pending.size() + (impl_->in_flight ? 1 : 0);
}

bool Stitcher::upgraded() const { return impl_->upgraded; }

const StitcherStats& Stitcher::stats() const { return impl_->stats; }

}  // namespace hoptrace::http1
