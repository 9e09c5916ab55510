#include "agent/trace/span.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_set>

namespace hoptrace {
namespace {

template <size_t N>
std::string ToHex(const std::array<uint8_t, N>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * N, '0');
  for (size_t i = 0; i < N; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

template <size_t N>
bool AnyNonZero(const std::array<uint8_t, N>& bytes) {
  return std::any_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b != 0; });
}

}  // namespace

bool TraceId::IsValid() const { return AnyNonZero(bytes); }
std::string TraceId::Hex() const { return ToHex(bytes); }
bool SpanId::IsValid() const { return AnyNonZero(bytes); }
std::string SpanId::Hex() const { return ToHex(bytes); }

std::string_view SpanKindName(SpanKind kind) {
  switch (kind) {
    case SpanKind::kServer: return "SERVER";
    case SpanKind::kClient: return "CLIENT";
    case SpanKind::kInternal: return "INTERNAL";
  }
  return "INTERNAL";
}

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kError: return "ERROR";
    case StatusCode::kUnset: return "UNSET";
  }
  return "UNSET";
}

std::optional<AttrKey> AttrKey::Intern(std::string_view key) {
  static std::mutex mu;
  // Node-based: the strings never move, so views of them stay valid.
  static std::unordered_set<std::string> keys;
  std::lock_guard<std::mutex> lock(mu);
  auto it = keys.find(std::string(key));
  if (it == keys.end()) {
    if (keys.size() >= kMaxInterned) return std::nullopt;
    it = keys.emplace(key).first;
  }
  return AttrKey(it->data(), it->size());
}

const AttrValue* FindAttribute(const Attributes& attrs, std::string_view key) {
  for (const auto& a : attrs) {
    if (a.key == key) return &a.value;
  }
  return nullptr;
}

std::string Resource::ServiceName() const {
  if (const auto* v = FindAttribute(attributes, "service.name")) {
    if (const auto* s = std::get_if<std::string>(v)) return *s;
  }
  return "unknown_service";
}

}  // namespace hoptrace
