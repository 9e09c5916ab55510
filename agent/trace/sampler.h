// Head sampling, as OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG define it
// (OpenTelemetry SDK configuration spec). The decision is made once per
// span when its context is decided, and travels in the W3C sampled flag.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/trace/span.h"

namespace hoptrace {

enum class SamplerKind {
  kAlwaysOn,
  kAlwaysOff,
  kTraceIdRatio,
  kParentBasedAlwaysOn,  // the default
  kParentBasedAlwaysOff,
  kParentBasedTraceIdRatio,
};

struct SamplerConfig {
  SamplerKind kind = SamplerKind::kParentBasedAlwaysOn;
  double ratio = 1.0;  // for the trace-id-ratio kinds, in [0, 1]
};

// Parses OTEL_TRACES_SAMPLER names ("always_on", "parentbased_traceidratio",
// ...) and the ratio argument (empty: 1.0). Returns an error message on bad
// input, or nullopt and fills *out.
std::optional<std::string> ParseSampler(std::string_view name, std::string_view arg,
                                        SamplerConfig* out);
std::string_view SamplerName(SamplerKind kind);

class Sampler {
 public:
  explicit Sampler(SamplerConfig config = {});
  // Whether a span of trace_id is recorded and exported. parent_sampled is
  // the sampled flag of its parent when it has one (remote or local).
  bool ShouldSample(const TraceId& trace_id, std::optional<bool> parent_sampled) const;
  const SamplerConfig& config() const { return config_; }
  // The ratio kinds sample iff the trace id's low 56 bits >= this (the
  // kernel repeats the decision: bpf/context.bpf.h).
  uint64_t threshold() const { return threshold_; }

 private:
  bool RatioDecision(const TraceId& trace_id) const;

  SamplerConfig config_;
  uint64_t threshold_;  // sample iff the trace id's low 56 bits >= threshold_
};

}  // namespace hoptrace
