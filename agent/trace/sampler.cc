#include "agent/trace/sampler.h"

#include <charconv>
#include <cmath>

namespace hoptrace {
namespace {

struct Named {
  std::string_view name;
  SamplerKind kind;
};
constexpr Named kSamplers[] = {
    {"always_on", SamplerKind::kAlwaysOn},
    {"always_off", SamplerKind::kAlwaysOff},
    {"traceidratio", SamplerKind::kTraceIdRatio},
    {"parentbased_always_on", SamplerKind::kParentBasedAlwaysOn},
    {"parentbased_always_off", SamplerKind::kParentBasedAlwaysOff},
    {"parentbased_traceidratio", SamplerKind::kParentBasedTraceIdRatio},
};

constexpr uint64_t kTwoPow56 = uint64_t{1} << 56;

}  // namespace

std::string_view SamplerName(SamplerKind kind) {
  for (const auto& s : kSamplers) {
    if (s.kind == kind) return s.name;
  }
  return "parentbased_always_on";
}

std::optional<std::string> ParseSampler(std::string_view name, std::string_view arg,
                                        SamplerConfig* out) {
  SamplerConfig cfg;
  bool found = false;
  for (const auto& s : kSamplers) {
    if (s.name == name) {
      cfg.kind = s.kind;
      found = true;
    }
  }
  if (!found) {
    return "unknown sampler \"" + std::string(name) +
           "\" (always_on, always_off, traceidratio, parentbased_always_on, "
           "parentbased_always_off, parentbased_traceidratio)";
  }
  if (!arg.empty()) {
    double ratio = 0;
    auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), ratio);
    if (ec != std::errc() || p != arg.data() + arg.size() || !(ratio >= 0.0 && ratio <= 1.0)) {
      return "sampler argument must be a probability in [0, 1], got \"" + std::string(arg) + "\"";
    }
    cfg.ratio = ratio;
  }
  *out = cfg;
  return std::nullopt;
}

Sampler::Sampler(SamplerConfig config) : config_(config) {
  // Consistent probability sampling (OpenTelemetry trace-id-ratio, W3C
  // level 2 "random" trace ids): the low 56 bits are uniformly random, so
  // comparing them to (1 - ratio) * 2^56 keeps exactly `ratio` of the traces,
  // and every agent that sees the same trace decides the same way.
  const long double rejected = (1.0L - config_.ratio) * static_cast<long double>(kTwoPow56);
  threshold_ = static_cast<uint64_t>(std::llround(rejected));
}

bool Sampler::RatioDecision(const TraceId& trace_id) const {
  uint64_t r = 0;
  for (int i = 9; i < 16; ++i) r = (r << 8) | trace_id.bytes[i];
  return r >= threshold_;
}

bool Sampler::ShouldSample(const TraceId& trace_id, std::optional<bool> parent_sampled) const {
  switch (config_.kind) {
    case SamplerKind::kAlwaysOn: return true;
    case SamplerKind::kAlwaysOff: return false;
    case SamplerKind::kTraceIdRatio: return RatioDecision(trace_id);
    case SamplerKind::kParentBasedAlwaysOn: return parent_sampled.value_or(true);
    case SamplerKind::kParentBasedAlwaysOff: return parent_sampled.value_or(false);
    case SamplerKind::kParentBasedTraceIdRatio:
      return parent_sampled ? *parent_sampled : RatioDecision(trace_id);
  }
  return true;
}

}  // namespace hoptrace
