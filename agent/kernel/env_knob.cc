#include "agent/kernel/env_knob.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

namespace hoptrace {

std::optional<std::string_view> EnvKnob(const char* name,
                                        std::initializer_list<std::string_view> words) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  for (std::string_view w : words) {
    if (w == value) return w;
  }
  static std::mutex mu;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mu);
  if (warned.insert(name).second) {
    std::string expected;
    for (std::string_view w : words) expected += (expected.empty() ? "" : " or ") + std::string(w);
    spdlog::warn("{}={} ignored: expected {}", name, value, expected);
  }
  return std::nullopt;
}

}  // namespace hoptrace
