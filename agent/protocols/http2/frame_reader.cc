#include "agent/protocols/http2/frame_reader.h"

#include <algorithm>

namespace hoptrace::http2 {

FrameReader::FrameReader(Listener* listener, size_t max_payload)
    : listener_(listener), max_payload_(max_payload) {}

void FrameReader::Reset(Start start) {
  state_ = start == Start::kPreface  ? State::kPreface
           : start == Start::kFrames ? State::kHeader
                                     : State::kResync;
  preface_seen_ = 0;
  header_.clear();
  payload_.clear();
  remaining_ = 0;
}

bool FrameReader::KeepsPayload(const FrameHeader& h) {
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kHeaders:
    case FrameType::kContinuation:
    case FrameType::kPushPromise:
    case FrameType::kSettings:
    case FrameType::kRstStream:
    case FrameType::kGoaway:
      return true;
    default:
      return false;
  }
}

void FrameReader::StartPayload(const SyscallTime& time) {
  frame_ = ParseFrameHeader(header_);
  header_.clear();
  remaining_ = frame_.length;
  keep_ = KeepsPayload(frame_);
  lost_ = false;
  payload_.clear();
  state_ = State::kPayload;
  if (remaining_ == 0) EndFrame(time);
}

void FrameReader::EndFrame(const SyscallTime& time) {
  Frame f;
  f.header = frame_;
  if (keep_) f.payload = payload_;
  f.payload_lost = lost_;
  f.first = first_;
  f.last = time;
  state_ = State::kHeader;
  listener_->OnFrame(f);
}

void FrameReader::LoseFraming() {
  state_ = State::kResync;
  header_.clear();
  listener_->OnFramingLost();
}

void FrameReader::Feed(std::string_view data, uint64_t total_bytes, const SyscallTime& time) {
  const uint64_t gap = total_bytes > data.size() ? total_bytes - data.size() : 0;
  if (state_ == State::kResync) {
    // Writes (and most reads) of an HTTP/2 peer move whole frames, so a
    // syscall's first byte is the likeliest boundary.
    if (!PlausibleFrameChain(data)) {
      invalid_bytes_ += total_bytes;
      return;
    }
    ++resyncs_;
    state_ = State::kHeader;
  }
  while (!data.empty()) {
    switch (state_) {
      case State::kPreface: {
        const size_t n = std::min(data.size(), kClientPreface.size() - preface_seen_);
        if (data.substr(0, n) != kClientPreface.substr(preface_seen_, n)) {
          invalid_bytes_ += data.size() + gap;
          LoseFraming();
          return;
        }
        preface_seen_ += n;
        data.remove_prefix(n);
        if (preface_seen_ == kClientPreface.size()) {
          state_ = State::kHeader;
          listener_->OnPreface();
        }
        break;
      }
      case State::kHeader: {
        if (header_.empty()) first_ = time;
        const size_t n = std::min(data.size(), kFrameHeaderSize - header_.size());
        header_.append(data.substr(0, n));
        data.remove_prefix(n);
        if (header_.size() == kFrameHeaderSize) StartPayload(time);
        break;
      }
      case State::kPayload: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), remaining_));
        if (keep_ && !lost_) {
          if (payload_.size() + n <= max_payload_) {
            payload_.append(data.substr(0, n));
          } else {
            lost_ = true;  // past the bound: keep the prefix, skip the rest
          }
        }
        remaining_ -= n;
        data.remove_prefix(n);
        if (remaining_ == 0) EndFrame(time);
        break;
      }
      case State::kResync:
        return;  // unreachable: only LoseFraming sets it, and it returns
    }
  }
  if (gap == 0) return;
  if (state_ == State::kPayload && gap <= remaining_) {
    remaining_ -= gap;
    lost_ = lost_ || keep_;
    if (remaining_ == 0) EndFrame(time);
    return;
  }
  if (state_ == State::kPayload) {
    // The frame's end is in the gap, and so are frame headers after it. Its
    // own header is known (a DATA frame's END_STREAM still counts).
    lost_ = keep_;
    EndFrame(time);
  }
  LoseFraming();
}

}  // namespace hoptrace::http2
