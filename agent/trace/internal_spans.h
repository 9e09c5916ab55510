// INTERNAL spans from probed function calls (bpf/uprobe_trace.h events).
//
// The kernel sends a call when it returns (or is found abandoned), with the
// calls still open around it, outermost first. A call's context is made the
// first time anyone needs it: when it returns, when a call inside it
// returns (it is their parent), or when the thread writes a request inside
// it (TraceStitcher asks InnermostOpen, which reads the thread's open calls
// from the kernel at that moment). Its parent is the call around it, else
// the SERVER span its thread is serving, else none (a new trace).
// Contexts of calls still open are kept per (pid, thread or goroutine,
// entry time, function), bounded and expired.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>

#include "agent/process/process_registry.h"
#include "agent/trace/span_builder.h"
#include "agent/trace/sampler.h"
#include "agent/trace/trace_context.h"
#include "agent/trace/trace_stitcher.h"
#include "uprobe_trace.h"
#include "uprobes/probe_manager.h"

namespace hoptrace {

struct InternalSpanOptions {
  int64_t monotonic_to_unix_ns = 0;
  uint64_t min_duration_ns = 100'000;  // as the kernel's threshold: abandoned inner calls too
  size_t max_open = 65536;             // contexts of calls still open
  uint64_t open_ttl_ns = 600ull * 1000 * 1000 * 1000;
  SamplerConfig sampler;
};

struct InternalSpanStats {
  uint64_t spans = 0;               // INTERNAL spans emitted
  uint64_t abandoned = 0;           // of which calls that never returned
  uint64_t with_server_parent = 0;  // outermost call inside a SERVER span
  uint64_t client_parents = 0;      // requests made inside a probed call
  uint64_t open_expired = 0;        // contexts of calls never seen to end
  uint64_t unknown_function = 0;
  uint64_t sampled_out = 0;
};

// Where the function of one call is defined, when the call's event says
// (Python: co_filename and co_firstlineno, which differ between the files and
// functions one spec matches).
struct CodeLocation {
  std::string file;  // code.file.path
  int line = 0;      // code.line.number; 0: unknown
};

class InternalSpans : public OpenSpanSource {
 public:
  using FunctionLookup = std::function<const uprobes::FunctionInfo*(uint32_t id)>;
  using StackReader = std::function<std::optional<hu_stack>(uint32_t pid, uint64_t id)>;
  // The SERVER span an outermost call serves: of its goroutine (context_id,
  // where the runtime says), else of the thread it started on (tid). The
  // span must have begun before the call (entry_ns).
  using ServingSpan = std::function<std::optional<SpanContextRecord>(
      uint32_t pid, uint32_t tid, uint64_t context_id, uint64_t entry_ns)>;
  using SpanCallback = std::function<void(Span)>;

  InternalSpans(ProcessRegistry* processes, FunctionLookup functions, ServingSpan serving,
                StackReader stacks, SpanCallback emit, InternalSpanOptions options,
                IdGenerator ids = IdGenerator());

  // where: of frames[index] when it returned (a Python function's).
  void OnCall(const hu_call_event& ev, bool abandoned,
              const std::optional<CodeLocation>& where = std::nullopt);
  std::optional<SpanContextRecord> InnermostOpen(uint32_t pid, uint64_t stack_id,
                                                 uint64_t ts_ns) override;
  void OnProcessExit(uint32_t pid);
  void Tick(uint64_t now_ns);

  const InternalSpanStats& stats() const { return stats_; }
  size_t open_contexts() const { return open_.size(); }

 private:
  using Key = std::tuple<uint32_t, uint64_t, uint64_t, uint32_t>;  // pid, ctx id, entry, function
  struct Open {
    SpanContextRecord ctx;
    uint64_t seen_ns;  // entry time: for expiry
  };
  // The context of frames[index], making those of the frames around it first.
  SpanContextRecord ContextOf(uint32_t pid, uint64_t context_id, const hu_frame* frames,
                              uint32_t index);
  SpanContextRecord ChildOf(const SpanContextRecord& parent);
  void Emit(uint32_t pid, uint64_t context_id, const hu_frame& frame, uint64_t end_ns,
            const SpanContextRecord& ctx, const hu_call_event& ev, bool abandoned,
            const CodeLocation* where);
  void MakeRoom();

  ProcessRegistry* processes_;
  FunctionLookup functions_;
  ServingSpan serving_;
  StackReader stacks_;
  SpanCallback emit_;
  InternalSpanOptions options_;
  IdGenerator ids_;
  Sampler sampler_;
  InternalSpanStats stats_;
  std::map<Key, Open> open_;
};

}  // namespace hoptrace
