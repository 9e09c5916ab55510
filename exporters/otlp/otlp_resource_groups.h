// How a batch is split into OTLP ResourceSpans, shared by the libprotobuf translator and the
// wire encoder so that both always group the same way: one group per traced process (spans
// sharing the Resource object, or Resources with equal attributes), in order of first
// appearance; spans without a Resource get the SDK's "unknown_service" fallback.
#pragma once

#include <cstdint>
#include <vector>

#include "agent/trace/span.h"

namespace hoptrace {

class OtlpResourceGroups {
 public:
  // Replaces the previous grouping. Keeps its vectors' capacity: an exporter holding one
  // allocates nothing per batch once its batches stop growing.
  void Assign(const std::vector<Span>& spans);

  // The Resource whose attributes a group carries (the first one seen), in group order.
  const std::vector<const Resource*>& resources() const { return resources_; }
  // Per span of the batch, the index of its group.
  const std::vector<uint32_t>& group_of() const { return group_of_; }

 private:
  std::vector<const Resource*> resources_;
  std::vector<uint32_t> group_of_;
  // Each distinct Resource object seen in this batch, with its group.
  std::vector<std::pair<const Resource*, uint32_t>> by_pointer_;
};

}  // namespace hoptrace
