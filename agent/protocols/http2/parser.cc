#include "agent/protocols/http2/parser.h"

#include <utility>

#include "agent/protocols/http2/exchange_details.h"

namespace hoptrace::http2 {
namespace {

uint32_t Be32(std::string_view b) {
  return uint32_t{static_cast<uint8_t>(b[0])} << 24 | uint32_t{static_cast<uint8_t>(b[1])} << 16 |
         uint32_t{static_cast<uint8_t>(b[2])} << 8 | uint32_t{static_cast<uint8_t>(b[3])};
}

// How a stream ends that ends before its response did (reset, GOAWAY, close).
Exchange::Outcome CutShort(const auto& stream) {
  return stream.response.headers_seen ? Exchange::Outcome::kResponseIncomplete
                                      : Exchange::Outcome::kNoResponse;
}

Direction Other(Direction d) {
  return d == Direction::kEgress ? Direction::kIngress : Direction::kEgress;
}

MessageTiming TimingOf(const SyscallTime& first, const SyscallTime& last) {
  return MessageTiming{first.ts_enter, first.ts_exit, last.ts_enter, last.ts_exit, first.tid};
}

void ExtendTo(MessageTiming* t, const SyscallTime& last) {
  t->last_byte_ts_enter = last.ts_enter;
  t->last_byte_ts_exit = last.ts_exit;
}

}  // namespace

Http2Parser::Side::Side(Http2Parser* p, Direction d, size_t max_payload)
    : parser(p), dir(d), reader(this, max_payload), decoder(&IsKeptHeader) {}

void Http2Parser::Side::OnPreface() {
  if (parser->role_ == Role::kUnknown) parser->SetRequestDirection(dir);
}

void Http2Parser::Side::OnFrame(const Frame& frame) { parser->OnFrame(*this, frame); }

void Http2Parser::Side::OnFramingLost() { parser->Degrade(*this); }

Http2Parser::Http2Parser(Role role, ExchangeSink* sink, const ParserLimits& limits)
    : role_(role),
      sink_(sink),
      limits_(limits),
      egress_(this, Direction::kEgress, limits.max_buffered_bytes),
      ingress_(this, Direction::kIngress, limits.max_buffered_bytes) {}

Http2Parser::~Http2Parser() = default;

const ParserStats& Http2Parser::stats() const {
  stats_.invalid_bytes = egress_.reader.invalid_bytes() + ingress_.reader.invalid_bytes();
  stats_.resyncs = egress_.reader.resyncs() + ingress_.reader.resyncs();
  return stats_;
}

void Http2Parser::SetRequestDirection(Direction dir) {
  role_ = dir == Direction::kEgress ? Role::kClient : Role::kServer;
}

bool Http2Parser::IsRequestSide(const Side& s) const {
  return (role_ == Role::kClient && s.dir == Direction::kEgress) ||
         (role_ == Role::kServer && s.dir == Direction::kIngress);
}

// Decides from the first bytes seen how far each direction is known.
void Http2Parser::Start(Direction dir, std::string_view captured) {
  started_ = true;
  Side& first = SideOf(dir);
  Side& other = Opposite(first);
  const std::string_view head = captured.substr(0, kClientPreface.size());
  if (!head.empty() && kClientPreface.substr(0, head.size()) == head) {
    first.reader.Reset(FrameReader::Start::kPreface);
    other.reader.Reset(FrameReader::Start::kFrames);
    return;
  }
  if (PlausibleFrameChain(captured)) {
    const FrameHeader h = ParseFrameHeader(captured);
    if (h.Is(FrameType::kSettings) && (h.flags & kFlagAck) == 0) {
      // RFC 9113 3.4: "The server connection preface consists of a
      // potentially empty SETTINGS frame that MUST be the first frame the
      // server sends". The client's preface is still to come.
      first.reader.Reset(FrameReader::Start::kFrames);
      other.reader.Reset(FrameReader::Start::kPreface);
      if (role_ == Role::kUnknown) SetRequestDirection(Other(dir));
      return;
    }
  }
  // Joined midway: one degradation for the connection, both decoders unknown.
  ++stats_.degraded;
  for (Side* s : {&egress_, &ingress_}) {
    s->reader.Reset(FrameReader::Start::kResync);
    s->decoder.LoseState();
  }
}

void Http2Parser::AdoptUpgradedRequest(Message request,
                                      std::optional<uint32_t> header_table_size) {
  started_ = true;
  Side& req = role_ == Role::kClient ? egress_ : ingress_;
  Side& resp = Opposite(req);
  req.reader.Reset(FrameReader::Start::kPreface);
  resp.reader.Reset(FrameReader::Start::kFrames);
  // The client's settings: the table the server's encoder may use (see OnSettings).
  if (header_table_size) resp.decoder.SetSettingsTableSize(*header_table_size);
  request.headers_seen = true;
  request.ended = true;
  streams_[1].request = std::move(request);
  highest_request_stream_ = 1;
}

void Http2Parser::OnData(Direction dir, std::string_view captured, uint64_t total_bytes,
                         uint64_t ts_enter, uint64_t ts_exit, uint32_t tid) {
  if (!started_) Start(dir, captured);
  SideOf(dir).reader.Feed(captured, total_bytes, SyscallTime{ts_enter, ts_exit, tid});
}

void Http2Parser::Degrade(Side& side) {
  ++stats_.degraded;
  side.decoder.LoseState();
  side.in_block = false;
  side.block.clear();
}

void Http2Parser::OnFrame(Side& side, const Frame& frame) {
  const FrameHeader& h = frame.header;
  if (side.in_block && !h.Is(FrameType::kContinuation)) {
    // RFC 9113 6.2: a header block "MUST be followed by a CONTINUATION frame"
    // until END_HEADERS; anything else means its end was lost to us.
    Degrade(side);
  }
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kHeaders:
    case FrameType::kPushPromise:
      OnHeadersFrame(side, frame);
      break;
    case FrameType::kContinuation:
      OnContinuation(side, frame);
      break;
    case FrameType::kData:
      OnData(side, frame);
      break;
    case FrameType::kRstStream:
      if (auto it = streams_.find(h.stream_id); it != streams_.end()) {
        Finish(h.stream_id, CutShort(it->second));
      }
      break;
    case FrameType::kSettings:
      OnSettings(side, frame);
      break;
    case FrameType::kGoaway:
      OnGoaway(side, frame);
      break;
    default:
      break;  // PING, WINDOW_UPDATE, PRIORITY, extensions: nothing for a span
  }
}

void Http2Parser::OnHeadersFrame(Side& side, const Frame& frame) {
  const FrameHeader& h = frame.header;
  auto fragment = HeaderBlockFragment(h, frame.payload, !frame.payload_lost);
  side.in_block = true;
  side.block_stream = h.stream_id;
  side.block_push = h.Is(FrameType::kPushPromise);
  side.block_end_stream = h.Is(FrameType::kHeaders) && (h.flags & kFlagEndStream);
  side.block_lost = frame.payload_lost || !fragment;
  side.block.assign(fragment ? fragment->fragment : std::string_view());
  side.block_first = frame.first;
  if ((h.flags & kFlagEndHeaders) || side.block_lost) EndBlock(side, frame.last);
}

void Http2Parser::OnContinuation(Side& side, const Frame& frame) {
  if (!side.in_block || frame.header.stream_id != side.block_stream) return;  // its block was lost
  if (side.block.size() + frame.payload.size() > limits_.max_buffered_bytes) {
    side.block_lost = true;
  } else {
    side.block.append(frame.payload);
  }
  side.block_lost = side.block_lost || frame.payload_lost;
  if ((frame.header.flags & kFlagEndHeaders) || side.block_lost) EndBlock(side, frame.last);
}

void Http2Parser::EndBlock(Side& side, const SyscallTime& last) {
  side.in_block = false;
  Message fields;
  const uint64_t unknown_before = side.decoder.unknown_fields();
  const HpackDecoder::Result r = side.decoder.Decode(
      side.block, [&fields](std::string_view name, std::string_view value) {
        fields.SetField(name, value);
      });
  side.block.clear();
  // A block cut short leaves the encoder's later state unknown; an invalid
  // one (HpackDecoder already forgot its table) likewise.
  const bool lost = side.block_lost || r != HpackDecoder::Result::kOk;
  if (lost) {
    ++stats_.degraded;
    side.decoder.LoseState();
  }
  fields.headers_incomplete = lost || side.decoder.unknown_fields() != unknown_before;
  if (side.block_push) return;  // a promised request: HPACK state only
  OnHeaderBlock(side, std::move(fields), side.block_end_stream, side.block_first, last);
}

void Http2Parser::OnHeaderBlock(Side& side, Message block, bool end_stream,
                                const SyscallTime& first, const SyscallTime& last) {
  const uint32_t id = side.block_stream;
  if (role_ == Role::kUnknown) {
    if (!block.method.empty()) {
      SetRequestDirection(side.dir);
    } else if (block.status != 0) {
      SetRequestDirection(Other(side.dir));
    } else {
      return;  // nothing tells which side asks
    }
  }
  // RFC 9113 5.1.1: "Streams initiated by a client MUST use odd-numbered
  // stream identifiers"; even ones are pushed by the server.
  if (id % 2 == 0) return;
  auto it = streams_.find(id);
  if (IsRequestSide(side)) {
    if (it != streams_.end()) {  // trailers of a streamed request
      ExtendTo(&it->second.request.timing, last);
      it->second.request.ended = it->second.request.ended || end_stream;
      return;
    }
    // A stream already reported (its response ended first) sending trailers.
    if (id <= highest_request_stream_) return;
    highest_request_stream_ = id;
    if (streams_.size() >= limits_.max_pending_requests) {
      ++stats_.pending_overflow;  // never announced: its response is ignored
      return;
    }
    block.headers_seen = true;
    block.ended = end_stream;
    block.timing = TimingOf(first, last);
    Stream& s = streams_[id];
    s.request = std::move(block);
    RequestStart start;
    start.exchange_id = id;
    start.timing = s.request.timing;
    if (!s.request.traceparent.empty()) start.traceparent = s.request.traceparent;
    if (!s.request.tracestate.empty()) start.tracestate = s.request.tracestate;
    sink_->OnRequestStart(start);
    return;
  }
  if (it == streams_.end()) {
    // A response to a request we never saw: one from before we joined, or
    // (id <= highest) a request reset, reported or dropped past the bound.
    if (id > highest_request_stream_ && block.status != 0) ++stats_.orphan_responses;
    return;
  }
  Message& resp = it->second.response;
  if (!resp.headers_seen) {
    // RFC 9113 8.1: informational (1xx) responses precede the final one.
    if (block.status >= 100 && block.status < 200 && !end_stream) return;
    const MessageTiming timing = TimingOf(first, last);
    resp = std::move(block);
    resp.headers_seen = true;
    resp.timing = timing;
  } else {
    resp.MergeTrailers(block);
    ExtendTo(&resp.timing, last);
  }
  if (end_stream) Finish(id, Exchange::Outcome::kComplete);
}

void Http2Parser::OnData(Side& side, const Frame& frame) {
  const FrameHeader& h = frame.header;
  auto it = streams_.find(h.stream_id);
  if (role_ == Role::kUnknown || it == streams_.end()) return;
  const bool end_stream = h.flags & kFlagEndStream;
  if (IsRequestSide(side)) {
    Message& req = it->second.request;
    req.body_bytes += h.length;
    ExtendTo(&req.timing, frame.last);
    req.ended = req.ended || end_stream;
    return;
  }
  Message& resp = it->second.response;
  if (!resp.headers_seen) {
    // DATA before response HEADERS: the header block was lost to us.
    resp.headers_seen = true;
    resp.headers_incomplete = true;
    resp.timing = TimingOf(frame.first, frame.last);
  }
  resp.body_bytes += h.length;
  ExtendTo(&resp.timing, frame.last);
  if (end_stream) Finish(h.stream_id, Exchange::Outcome::kComplete);
}

void Http2Parser::OnSettings(Side& side, const Frame& frame) {
  if (frame.header.flags & kFlagAck) return;
  // RFC 9113 6.5.2 SETTINGS_HEADER_TABLE_SIZE: "the maximum size of the
  // compression table used to decode field blocks" by the sender, i.e. the
  // decoder of the other direction.
  for (std::string_view p = frame.payload; p.size() >= 6; p.remove_prefix(6)) {
    const uint16_t id = static_cast<uint16_t>(static_cast<uint8_t>(p[0]) << 8 | static_cast<uint8_t>(p[1]));
    if (id == kSettingsHeaderTableSize) Opposite(side).decoder.SetSettingsTableSize(Be32(p.substr(2)));
  }
}

void Http2Parser::OnGoaway(Side& side, const Frame& frame) {
  // RFC 9113 6.8: streams above the last stream id were not, and will not
  // be, processed by the sender. Only the server's GOAWAY speaks of the
  // client's requests.
  if (frame.payload.size() < 4 || role_ == Role::kUnknown || IsRequestSide(side)) return;
  const uint32_t last = Be32(frame.payload) & 0x7fffffffu;
  while (!streams_.empty() && streams_.rbegin()->first > last) {
    Finish(streams_.rbegin()->first, CutShort(streams_.rbegin()->second));
  }
}

void Http2Parser::Finish(uint32_t stream_id, Exchange::Outcome outcome) {
  auto node = streams_.extract(stream_id);
  if (node.empty()) return;
  Stream& s = node.mapped();
  Exchange ex;
  ex.exchange_id = stream_id;
  ex.request = s.request.timing;
  const bool has_response = s.response.headers_seen;
  if (has_response) ex.response = s.response.timing;
  ex.outcome = outcome;
  ex.details = std::make_unique<Http2ExchangeDetails>(
      std::move(s.request), has_response ? std::optional<Message>(std::move(s.response))
                                         : std::nullopt);
  ++stats_.records;
  sink_->OnExchange(std::move(ex));
}

void Http2Parser::OnClose(uint64_t /*ts*/) {
  while (!streams_.empty()) Finish(streams_.begin()->first, CutShort(streams_.begin()->second));
}

std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits) {
  return std::make_unique<Http2Parser>(role, sink, limits);
}

}  // namespace hoptrace::http2
