#include "agent/trace/attribute_pool.h"

#include <utility>

namespace hoptrace {

Attributes AttributePool::Take() {
  if (taking_.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    taking_.swap(given_);
  }
  if (taking_.empty()) return {};
  Attributes a = std::move(taking_.back());
  taking_.pop_back();
  return a;
}

void AttributePool::Give(std::vector<Span>& spans) {
  for (Span& s : spans) s.attributes.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (Span& s : spans) {
    if (given_.size() >= max_kept_) break;
    if (s.attributes.capacity() >= min_room_) given_.push_back(std::move(s.attributes));
  }
}

size_t AttributePool::kept() const {
  std::lock_guard<std::mutex> lock(mu_);
  return taking_.size() + given_.size();
}

}  // namespace hoptrace
