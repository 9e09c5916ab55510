#include "exporters/otlp/otlp_resource_groups.h"

namespace hoptrace {
namespace {

// Spans without a resource get the SDK's fallback service name, so a backend still files
// them under something recognisable instead of an empty resource.
const Resource& UnknownResource() {
  static const Resource kUnknown{{{"service.name", std::string("unknown_service")}}};
  return kUnknown;
}

}  // namespace

void OtlpResourceGroups::Assign(const std::vector<Span>& spans) {
  resources_.clear();
  group_of_.clear();
  by_pointer_.clear();
  group_of_.reserve(spans.size());
  // A process's spans normally share one Resource object, so the pointer scan finds almost
  // every span's group; it runs over the distinct objects of one batch (a handful: the
  // processes that had traffic), which a flat scan serves faster than a hash map and without
  // allocating. A Resource rebuilt with the same attributes (e.g. after a registry refresh)
  // still joins its process's group through the attribute comparison, done once per distinct
  // object.
  size_t last = 0;  // the previous span's entry: runs of one process's spans are common
  for (const Span& span : spans) {
    const Resource* resource = span.resource ? span.resource.get() : &UnknownResource();
    if (last >= by_pointer_.size() || by_pointer_[last].first != resource) {
      last = 0;
      while (last < by_pointer_.size() && by_pointer_[last].first != resource) ++last;
      if (last == by_pointer_.size()) {
        uint32_t group = 0;
        while (group < resources_.size() && resources_[group]->attributes != resource->attributes) {
          ++group;
        }
        if (group == resources_.size()) resources_.push_back(resource);
        by_pointer_.emplace_back(resource, group);
      }
    }
    group_of_.push_back(by_pointer_[last].second);
  }
}

}  // namespace hoptrace
