// Turns the two byte streams of one HTTP/2 connection into exchanges, one per
// stream (RFC 9113 section 5): request HEADERS [+ CONTINUATION] [+ DATA]
// [+ trailers], response HEADERS [+ DATA] [+ trailers]. A stream's exchange
// is reported when its response ends (END_STREAM) or the stream is reset;
// streams are multiplexed, so exchanges end in any order (exchange_id is the
// stream id).
//
// Each direction has its frame reader and its HPACK decoder. How the
// connection was joined decides where they start:
//   - the client preface first (either direction): decoded exactly;
//   - a server's SETTINGS first (a server may write its preface before it
//     reads the client's): likewise, the preface expected the other way;
//   - anything else: joined midway. Frame boundaries are searched, decoding
//     is degraded (see hpack_decoder.h), counted once in ParserStats::degraded.
// Every later loss that may have hidden header block bytes (a gap inside a
// HEADERS/CONTINUATION payload, framing lost, an invalid block) is counted
// there too, and makes that direction's HPACK state unknown.
//
// Role: given, or decided by the side that sends the preface, or by the
// first header block (:method is a request, :status a response).
// Streams the server initiates (PUSH_PROMISE, even ids) are decoded for the
// HPACK state and not reported.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/protocols/http2/frame_reader.h"
#include "agent/protocols/http2/hpack_decoder.h"
#include "agent/protocols/http2/types.h"
#include "agent/protocols/protocol.h"

namespace hoptrace::http2 {

class Http2Parser final : public ProtocolParser {
 public:
  Http2Parser(Role role, ExchangeSink* sink, const ParserLimits& limits);
  ~Http2Parser() override;
  Http2Parser(const Http2Parser&) = delete;
  Http2Parser& operator=(const Http2Parser&) = delete;

  void OnData(Direction dir, std::string_view captured, uint64_t total_bytes, uint64_t ts_enter,
              uint64_t ts_exit, uint32_t tid) override;
  void OnClose(uint64_t ts) override;
  // The connection switched to h2c from HTTP/1.1 (RFC 7540 3.2): "The
  // HTTP/1.1 request that is sent prior to upgrade is assigned a stream
  // identifier of 1 [...]. Stream 1 is implicitly "half-closed" from the
  // client toward the server". `request` becomes stream 1, not announced
  // again (the HTTP/1 parser did); its response comes as HTTP/2 on stream 1.
  // What comes next is the client's preface on the request side and the
  // server's SETTINGS on the other, both HPACK decoders fresh: exact.
  // `header_table_size`: SETTINGS_HEADER_TABLE_SIZE of the request's
  // HTTP2-Settings, if it said one. The role must be known.
  void AdoptUpgradedRequest(Message request, std::optional<uint32_t> header_table_size);
  Role role() const override { return role_; }
  size_t pending_requests() const override { return streams_.size(); }
  const ParserStats& stats() const override;

 private:
  // One direction: its frames, its HPACK decoder, the header block being
  // assembled across CONTINUATION frames.
  struct Side final : FrameReader::Listener {
    Side(Http2Parser* parser, Direction dir, size_t max_payload);
    void OnPreface() override;
    void OnFrame(const Frame& frame) override;
    void OnFramingLost() override;

    Http2Parser* parser;
    Direction dir;
    FrameReader reader;
    HpackDecoder decoder;
    bool in_block = false;
    bool block_end_stream = false;
    bool block_push = false;
    bool block_lost = false;
    uint32_t block_stream = 0;
    std::string block;
    SyscallTime block_first;
  };

  struct Stream {
    Message request;
    Message response;
  };

  Side& SideOf(Direction dir) { return dir == Direction::kEgress ? egress_ : ingress_; }
  Side& Opposite(const Side& s) { return s.dir == Direction::kEgress ? ingress_ : egress_; }
  void Start(Direction dir, std::string_view captured);
  bool IsRequestSide(const Side& s) const;
  void SetRequestDirection(Direction dir);

  void OnFrame(Side& side, const Frame& frame);
  void OnHeadersFrame(Side& side, const Frame& frame);
  void OnContinuation(Side& side, const Frame& frame);
  void EndBlock(Side& side, const SyscallTime& last);
  void OnHeaderBlock(Side& side, Message block, bool end_stream, const SyscallTime& first,
                     const SyscallTime& last);
  void OnData(Side& side, const Frame& frame);
  void OnSettings(Side& side, const Frame& frame);
  void OnGoaway(Side& side, const Frame& frame);
  void Degrade(Side& side);

  void Finish(uint32_t stream_id, Exchange::Outcome outcome);

  Role role_;
  ExchangeSink* sink_;
  ParserLimits limits_;
  bool started_ = false;
  Side egress_;
  Side ingress_;
  std::map<uint32_t, Stream> streams_;  // open client-initiated streams, by id
  uint32_t highest_request_stream_ = 0;
  mutable ParserStats stats_;
};

std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits);

}  // namespace hoptrace::http2
