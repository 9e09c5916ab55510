// Cuts one direction of an HTTP/2 connection into frames, fed one syscall's
// capture at a time (split, partial and gapped like every capture).
//
//   kPreface --24 preface bytes--> kHeader --9 bytes--> kPayload --length--> kHeader
//   any --bytes lost where a frame header lies--> kResync
//   kResync --a syscall whose bytes are a plausible chain of frames--> kHeader
//
// Bytes lost inside a payload of known length are skipped: framing goes on.
// The payloads the agent reads (header blocks, SETTINGS, RST_STREAM, GOAWAY)
// are assembled up to a bound; a payload cut by a loss or past the bound is
// delivered as the prefix that was captured, marked lost. DATA payloads are
// never kept: only their length and flags matter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocols/http2/frame.h"

namespace hoptrace::http2 {

// The syscall that moved some bytes of a frame.
struct SyscallTime {
  uint64_t ts_enter = 0;
  uint64_t ts_exit = 0;
  uint32_t tid = 0;
};

struct Frame {
  FrameHeader header;
  // Kept payloads only (see above); for the others empty.
  std::string_view payload;
  bool payload_lost = false;  // payload is only the captured prefix
  SyscallTime first;          // moved the first byte of the frame header
  SyscallTime last;           // moved the last byte of the frame
};

class FrameReader {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnPreface() = 0;
    virtual void OnFrame(const Frame& frame) = 0;
    // Bytes were lost where frame boundaries were needed: whole frames may
    // be missing (header blocks among them) until framing is found again.
    virtual void OnFramingLost() = 0;
  };

  enum class Start {
    kPreface,  // the client's side, from the connection's start
    kFrames,   // the server's side, from the connection's start
    kResync,   // joined midway: look for frame boundaries
  };

  FrameReader(Listener* listener, size_t max_payload);
  void Reset(Start start);

  void Feed(std::string_view captured, uint64_t total_bytes, const SyscallTime& time);

  uint64_t invalid_bytes() const { return invalid_bytes_; }
  uint64_t resyncs() const { return resyncs_; }

 private:
  enum class State { kPreface, kHeader, kPayload, kResync };
  static bool KeepsPayload(const FrameHeader& h);
  void StartPayload(const SyscallTime& time);
  void EndFrame(const SyscallTime& time);
  void LoseFraming();

  Listener* listener_;
  size_t max_payload_;
  State state_ = State::kResync;
  size_t preface_seen_ = 0;
  std::string header_;  // bytes of the frame header so far
  FrameHeader frame_;
  uint64_t remaining_ = 0;  // payload bytes to come
  bool keep_ = false;       // assembling this payload
  bool lost_ = false;       // part of this payload was not captured
  std::string payload_;
  SyscallTime first_;
  uint64_t invalid_bytes_ = 0;
  uint64_t resyncs_ = 0;
};

}  // namespace hoptrace::http2
