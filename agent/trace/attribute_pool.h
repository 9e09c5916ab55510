// Span attribute vectors going round between the thread that builds spans and
// the threads that export them. A span's vector (room for ~28 attributes,
// 1.5 KiB) is past glibc's per-thread cache, and one freed by another thread
// than the one that allocated it goes back through an arena lock both threads
// take: a malloc and a free of ~400 instructions between them per span, and
// lock traffic between the two. Exported spans give their vectors back
// emptied, room kept, and the builder takes them again.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "agent/trace/span.h"

namespace hoptrace {

class AttributePool {
 public:
  // Keeps at most max_kept vectors given back (the rest are freed), only those with room for
  // at least min_room attributes.
  AttributePool(size_t max_kept, size_t min_room) : max_kept_(max_kept), min_room_(min_room) {}
  AttributePool(const AttributePool&) = delete;
  AttributePool& operator=(const AttributePool&) = delete;

  // An empty vector, with room if one was given back. One thread only (the builder's):
  // it takes from its own stock, refilled from what was given back under the lock once
  // that stock is empty.
  Attributes Take();
  // Any thread: empties each span's attributes (their values freed here, outside the lock)
  // and keeps the vectors, leaving the spans' empty.
  void Give(std::vector<Span>& spans);
  // Vectors waiting in either stock (for tests; the builder's thread).
  size_t kept() const;

 private:
  const size_t max_kept_;
  const size_t min_room_;
  std::vector<Attributes> taking_;  // the builder's stock: no lock
  mutable std::mutex mu_;
  std::vector<Attributes> given_;  // under mu_
};

}  // namespace hoptrace
