// HPACK header block decoding (RFC 7541), one decoder per direction of a
// connection: the decoder of the bytes one endpoint receives mirrors the
// dynamic table of the peer's encoder.
//
// Degraded decoding. A passive observer can lose encoder state: the
// connection was joined midway, or bytes of a header block were not
// captured. The decoder then knows only the dynamic entries it saw inserted
// since (they are the newest, so their indices are right) and that older,
// unknown entries may follow them. References to those decode to nothing
// (counted in unknown_fields()); static-table and literal fields still decode.
// Knowledge comes back by itself: when the known entries alone would overflow
// the table, eviction has removed every unknown one (RFC 7541 4.4 evicts the
// oldest first), and a size update to a size the known entries fit in proves
// the same.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

namespace hoptrace::http2 {

class HpackDecoder {
 public:
  // RFC 7541 4.2 / RFC 9113 6.5.2: SETTINGS_HEADER_TABLE_SIZE starts at 4096.
  static constexpr uint32_t kDefaultTableSize = 4096;

  // keep_value(name): whether values of this (lower-case) name are kept in
  // the dynamic table. Others are stored by name and size only, so values
  // the agent never exports (cookies, authorization) are not held in memory
  // longer than one decode. Null keeps every value.
  // max_tracked_size bounds the memory of the table whatever size the peers
  // agree on: entries past it are forgotten (and become unknown).
  explicit HpackDecoder(bool (*keep_value)(std::string_view name) = nullptr,
                        size_t max_tracked_size = 64 * 1024);

  enum class Result {
    kOk,         // the whole block decoded
    kTruncated,  // the block ends inside a representation (its end was lost)
    kInvalid,    // not valid HPACK here; the table state is now unknown (LoseState)
  };
  // Decodes one complete header block (or, after a loss, the captured prefix
  // of one: kTruncated then, and the caller calls LoseState()). on_field gets
  // each field decoded, name and value valid only during the call; a field
  // whose name or value is not known (see above) is skipped and counted.
  using FieldFn = std::function<void(std::string_view name, std::string_view value)>;
  Result Decode(std::string_view block, const FieldFn& on_field);

  // Encoder state is unknown from here on (bytes of a header block lost,
  // connection joined midway, invalid block).
  void LoseState();
  // The peer's SETTINGS_HEADER_TABLE_SIZE for this decoder: the largest size
  // a dynamic table size update may choose (RFC 7541 4.2).
  void SetSettingsTableSize(uint32_t size) { settings_max_ = size; }

  // False while unknown dynamic entries may exist.
  bool state_known() const { return !unknown_tail_; }
  uint64_t unknown_fields() const { return unknown_fields_; }
  size_t table_size() const { return size_; }  // RFC 7541 4.1 size of the known entries
  size_t table_entries() const { return entries_.size(); }
  uint32_t max_table_size() const { return max_size_; }

 private:
  struct Entry {
    std::string name;
    std::string value;  // empty when the value is not kept
    size_t size;        // RFC 7541 4.1: name + value octets + 32
  };
  enum class Lookup { kFound, kUnknown, kInvalid };
  Lookup Find(uint64_t index, std::string_view* name, std::string_view* value) const;
  void Insert(std::string_view name, std::string_view value);
  void SetMaxSize(uint64_t size);
  void EvictTo(size_t limit);

  bool (*keep_value_)(std::string_view);
  size_t max_tracked_size_;
  std::deque<Entry> entries_;  // front = newest = index 62
  size_t size_ = 0;
  uint32_t max_size_ = kDefaultTableSize;
  uint32_t settings_max_ = kDefaultTableSize;
  bool unknown_tail_ = false;
  uint64_t unknown_fields_ = 0;
  std::string name_buf_, value_buf_;  // reused across fields
};

}  // namespace hoptrace::http2
