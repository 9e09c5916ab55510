// The bytes of an OTLP ExportTraceServiceRequest, written straight from the agent's spans.
//
// Building libprotobuf messages only to serialize them cost ~2-3 us per span (ht_otlp_bench):
// a message object, a string copy and a size computation per attribute, and the same walk
// again to serialize. This encoder writes the protobuf wire format in one pass and produces
// the bytes libprotobuf would produce for BuildExportRequest's message (otlp_translator.h):
// the same grouping, fields, presence rules and field order. The unit test holds the two
// together.
//
// The buffer is filled from its end towards its start: a length-delimited field's content is
// written before its length prefix, so every length is known when it is written and takes
// its minimal varint size, without a separate size pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "agent/trace/span.h"
#include "exporters/otlp/otlp_resource_groups.h"

namespace hoptrace {

class OtlpWireEncoder {
 public:
  OtlpWireEncoder() = default;
  OtlpWireEncoder(const OtlpWireEncoder&) = delete;
  OtlpWireEncoder& operator=(const OtlpWireEncoder&) = delete;

  // The encoded request; valid until the next Encode() or the encoder's end. The buffer and
  // the scratch space are kept between calls, so a steady stream of batches allocates
  // nothing. Throws only std::bad_alloc.
  std::string_view Encode(const std::vector<Span>& spans, std::string_view scope_name,
                          std::string_view scope_version);

 private:
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  OtlpResourceGroups groups_;
  // Per group its last span, per span the previous span of its group: walked from the end,
  // the order in which a back-to-front writer needs each group's spans.
  std::vector<uint32_t> last_in_group_;
  std::vector<uint32_t> previous_in_group_;
};

}  // namespace hoptrace
