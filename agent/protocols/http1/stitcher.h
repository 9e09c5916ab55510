// Turns the two byte streams of one HTTP/1.x connection into request/response
// records. State machine per direction (see MessageStream in stitcher.cc):
//
//   kHead --head parsed--> kBodyLength | kBodyChunked | kBodyUntilClose | kHead
//   any   --bytes lost where framing was needed--> kResync
//   kResync --a chunk that LooksLikeStart--> kHead
//
// Bytes the kernel did not capture arrive as gaps (total_bytes > captured):
// inside a Content-Length body (or inside chunk-data of known size) they are
// simply counted; inside a head or the rest of chunked framing they force a
// resync at the next message start:
//   - a head cut by a gap (or longer than max_buffered_bytes) whose start line
//     is known is still reported, head_truncated=true, and skipped up to its
//     empty line (kSkipHead); a response then without Content-Length or
//     chunked has lost its framing;
//   - a message whose framing is lost gets body_framing_lost=true and ends at
//     the resync point (or at OnClose, as kComplete), its last_byte_ts_* being
//     those of the last bytes seen;
//   - a resync happens only at a syscall whose captured bytes LooksLikeStart.
// Pairing is FIFO. When response starts were lost, the oldest pending requests
// are reported as kNoResponse before the next response is paired, so one loss
// does not shift every later pairing; a response whose first byte was read or
// written before a request began is not paired with it (orphan).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>

#include "agent/protocols/http1/types.h"
#include "agent/protocols/protocol.h"

namespace hoptrace::http1 {

using hoptrace::Direction;
using hoptrace::Role;

class Listener {
 public:
  virtual ~Listener() = default;
  // A request head was parsed (before its response). Called once per request,
  // in order, so that trace context can be decided while the request is live.
  // Every such request later gets exactly one OnRecord, unless it is dropped
  // past max_pending_requests (counted in StitcherStats::pending_overflow).
  virtual void OnRequestHead(const Message& request) = 0;
  // An exchange ended (response complete, or connection ended).
  virtual void OnRecord(Record record) = 0;
  // A "101 Switching Protocols" completed `record` (RFC 9110 15.2.2): true
  // if the listener follows the connection in the new protocol, in which
  // case the record is its to report (it gets no OnRecord). Either way the
  // stitcher ignores the connection's later bytes.
  virtual bool TakeUpgrade(const Record& /*record*/) { return false; }
};

struct StitcherLimits {
  size_t max_buffered_bytes = 64 * 1024;  // per direction, head being assembled
  size_t max_pending_requests = 64;       // pipelined requests awaiting responses
};

struct StitcherStats {
  uint64_t records = 0;
  uint64_t orphan_responses = 0;   // response with no request to pair (dropped)
  uint64_t invalid_bytes = 0;      // bytes skipped as not HTTP, or belonging to
                                   // no known message after bytes were lost
  uint64_t resyncs = 0;            // times framing was lost and found again
  uint64_t pending_overflow = 0;   // requests dropped past max_pending_requests
};

class Stitcher {
 public:
  Stitcher(Role role, Listener* listener, StitcherLimits limits = {});
  ~Stitcher();
  Stitcher(const Stitcher&) = delete;
  Stitcher& operator=(const Stitcher&) = delete;

  // One syscall's worth of bytes. `captured` holds the first bytes the
  // syscall moved; total_bytes >= captured.size() is how many it moved.
  // Returns how many bytes of `captured` were HTTP/1: captured.size(),
  // unless a 101 response ended inside it (the rest, and any gap after
  // it, belong to the protocol switched to).
  size_t OnData(Direction dir, std::string_view captured, uint64_t total_bytes,
              uint64_t ts_enter, uint64_t ts_exit, uint32_t tid);

  // The connection is gone (close, reset, process exit). Pending requests are
  // reported with Outcome kNoResponse / kResponseIncomplete; a response being
  // read until close is completed.
  void OnClose(uint64_t ts);

  Role role() const;
  size_t pending_requests() const;
  // After a 101 Switching Protocols or a successful CONNECT the bytes are no
  // longer HTTP/1; the stitcher ignores everything from then on.
  bool upgraded() const;
  const StitcherStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hoptrace::http1
