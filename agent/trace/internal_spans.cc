#include "agent/trace/internal_spans.h"

#include <cxxabi.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace hoptrace {
namespace {

// std::type_info::name() is a mangled type ("St16invalid_argument").
std::string DemangleType(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                             std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

}  // namespace

InternalSpans::InternalSpans(ProcessRegistry* processes, FunctionLookup functions,
                             ServingSpan serving, StackReader stacks, SpanCallback emit,
                             InternalSpanOptions options, IdGenerator ids)
    : processes_(processes),
      functions_(std::move(functions)),
      serving_(std::move(serving)),
      stacks_(std::move(stacks)),
      emit_(std::move(emit)),
      options_(options),
      ids_(std::move(ids)),
      sampler_(options.sampler) {}

SpanContextRecord InternalSpans::ChildOf(const SpanContextRecord& parent) {
  SpanContextRecord ctx;
  ctx.trace_id = parent.trace_id;
  ctx.parent_span_id = parent.span_id;
  ctx.span_id = ids_.NewSpanId();
  ctx.flags = parent.flags;  // the parent's sampling decision stands
  ctx.tracestate = parent.tracestate;
  return ctx;
}

void InternalSpans::MakeRoom() {
  if (open_.size() < options_.max_open) return;
  auto oldest = open_.begin();
  for (auto it = open_.begin(); it != open_.end(); ++it) {
    if (it->second.seen_ns < oldest->second.seen_ns) oldest = it;
  }
  open_.erase(oldest);
  ++stats_.open_expired;
}

SpanContextRecord InternalSpans::ContextOf(uint32_t pid, uint64_t context_id,
                                           const hu_frame* frames, uint32_t index) {
  // A copy, not a pointer into open_: making room may drop the outermost.
  std::optional<SpanContextRecord> parent;
  std::optional<SpanContextRecord> server;
  for (uint32_t i = 0; i <= index; ++i) {
    const Key key{pid, context_id, frames[i].entry_ns, frames[i].function_id};
    auto it = open_.find(key);
    if (it == open_.end()) {
      SpanContextRecord ctx;
      if (parent) {
        ctx = ChildOf(*parent);
      } else if ((server = serving_(pid, frames[0].tid, context_id, frames[0].entry_ns))) {
        ctx = ChildOf(*server);
        ++stats_.with_server_parent;
      } else {
        ctx.trace_id = ids_.NewTraceId();
        ctx.span_id = ids_.NewSpanId();
        ctx.flags = sampler_.ShouldSample(ctx.trace_id, std::nullopt) ? kTraceFlagSampled : 0;
      }
      MakeRoom();
      it = open_.emplace(key, Open{std::move(ctx), frames[i].entry_ns}).first;
    }
    parent = it->second.ctx;
  }
  return *parent;
}

void InternalSpans::OnCall(const hu_call_event& ev, bool abandoned,
                           const std::optional<CodeLocation>& where) {
  const uint32_t pid = ev.hdr.pid;
  // A returned call is frames[index]; abandoned ones are [index, depth).
  const uint32_t last = abandoned ? ev.depth - 1u : ev.index;
  ContextOf(pid, ev.context_id, ev.frames, last);
  for (uint32_t i = ev.index; i <= last; ++i) {
    const hu_frame& f = ev.frames[i];
    auto it = open_.find(Key{pid, ev.context_id, f.entry_ns, f.function_id});
    if (it == open_.end()) continue;
    SpanContextRecord ctx = std::move(it->second.ctx);
    open_.erase(it);
    if (ev.hdr.ts_exit_ns < f.entry_ns || ev.hdr.ts_exit_ns - f.entry_ns < options_.min_duration_ns) {
      continue;  // an inner call shorter than the threshold: counted in the kernel
    }
    Emit(pid, ev.context_id, f, ev.hdr.ts_exit_ns, ctx, ev, abandoned,
         where && !abandoned && i == ev.index ? &*where : nullptr);
  }
}

void InternalSpans::Emit(uint32_t pid, uint64_t context_id, const hu_frame& frame,
                         uint64_t end_ns, const SpanContextRecord& ctx, const hu_call_event& ev,
                         bool abandoned, const CodeLocation* where) {
  const uprobes::FunctionInfo* fn = functions_(frame.function_id);
  if (!fn) {
    ++stats_.unknown_function;
    return;
  }
  if ((ctx.flags & kTraceFlagSampled) == 0) {
    ++stats_.sampled_out;
    return;
  }
  Span span;
  span.trace_id = ctx.trace_id;
  span.span_id = ctx.span_id;
  span.parent_span_id = ctx.parent_span_id;
  span.flags = ctx.flags;
  span.trace_state = ctx.tracestate;
  span.kind = SpanKind::kInternal;
  span.name = fn->name;
  span.start_unix_nano = static_cast<uint64_t>(static_cast<int64_t>(frame.entry_ns) +
                                               options_.monotonic_to_unix_ns);
  span.end_unix_nano =
      static_cast<uint64_t>(static_cast<int64_t>(end_ns) + options_.monotonic_to_unix_ns);
  span.resource = processes_->Get(static_cast<pid_t>(pid))->resource;
  auto& a = span.attributes;
  AddAttribute(a, "code.function.name", fn->name);
  if (fn->python) {
    // The file and first line of the code that ran, as CPython reports
    // them; one spec may match several files and functions.
    if (where && !where->file.empty()) {
      AddAttribute(a, "code.file.path", where->file);
      if (where->line > 0) AddAttribute(a, "code.line.number", static_cast<int64_t>(where->line));
    }
  } else {
    AddAttribute(a, "hoptrace.code.file", fn->file);  // the ELF file holding the function
    if (!fn->source_file.empty()) {
      AddAttribute(a, "code.file.path", fn->source_file);
      AddAttribute(a, "code.line.number", static_cast<int64_t>(fn->source_line));
    }
  }
  AddAttribute(a, "thread.id", static_cast<int64_t>(frame.tid));
  if (ev.flags & HU_F_GO) {
    char g[24];
    snprintf(g, sizeof(g), "0x%llx", static_cast<unsigned long long>(context_id));
    AddAttribute(a, "hoptrace.go.g", g);
  }
  if (!abandoned && (ev.flags & HU_F_PY_RAISED)) {
    // A Python function left by an exception (tp_name of its type).
    const std::string type = ev.exception[0] != '\0'
                                 ? std::string(ev.exception, strnlen(ev.exception, sizeof(ev.exception)))
                                 : std::string("exception");
    span.status = StatusCode::kError;
    span.status_message = "exception " + type;
    SpanEvent e;
    e.name = "exception";
    e.time_unix_nano = span.end_unix_nano;
    AddAttribute(e.attributes, "exception.type", type);
    span.events.push_back(std::move(e));
    AddAttribute(a, "error.type", type);
  }
  if (abandoned) {
    ++stats_.abandoned;
    span.status = StatusCode::kError;
    if ((ev.flags & HU_F_THROWN) && ev.exception[0] != '\0') {
      const std::string type =
          DemangleType(std::string(ev.exception, strnlen(ev.exception, sizeof(ev.exception))).c_str());
      span.status_message = "exception " + type;
      SpanEvent e;
      e.name = "exception";
      e.time_unix_nano = span.end_unix_nano;
      AddAttribute(e.attributes, "exception.type", type);
      span.events.push_back(std::move(e));
      AddAttribute(a, "error.type", type);
    } else {
      span.status_message = (ev.flags & HU_F_GO)
                                ? "did not return (a panic unwound it)"
                                : "did not return (unwound by an exception or longjmp)";
      AddAttribute(a, "error.type", "unwound");
    }
  }
  ++stats_.spans;
  emit_(std::move(span));
}

std::optional<SpanContextRecord> InternalSpans::InnermostOpen(uint32_t pid, uint64_t stack_id,
                                                              uint64_t ts_ns) {
  std::optional<hu_stack> st = stacks_(pid, stack_id);
  if (!st) return std::nullopt;
  const uint32_t depth = std::min<uint32_t>(st->depth, HU_MAX_DEPTH);
  // The calls open when the request was written, outermost first. The
  // agent reads the stack later than that: calls begun since are not
  // parents, and calls that have returned since are still in their slots
  // above `depth` with their end time (until a newer call takes the slot).
  uint32_t open = 0;
  uint64_t outer_entry = 0;
  for (uint32_t i = 0; i < HU_MAX_DEPTH; ++i) {
    const hu_frame& f = st->frames[i];
    const bool ended_after = i >= depth && st->exit_ns[i] > ts_ns;
    if (f.entry_ns > ts_ns || f.entry_ns < outer_entry || f.entry_ns == 0 ||
        (i >= depth && !ended_after)) {
      break;
    }
    outer_entry = f.entry_ns;
    open = i + 1;
  }
  if (open == 0) return std::nullopt;
  ++stats_.client_parents;
  return ContextOf(pid, stack_id, st->frames, open - 1);
}

void InternalSpans::OnProcessExit(uint32_t pid) {
  open_.erase(open_.lower_bound(Key{pid, 0, 0, 0}), open_.lower_bound(Key{pid + 1, 0, 0, 0}));
}

void InternalSpans::Tick(uint64_t now_ns) {
  for (auto it = open_.begin(); it != open_.end();) {
    if (now_ns > it->second.seen_ns && now_ns - it->second.seen_ns > options_.open_ttl_ns) {
      it = open_.erase(it);
      ++stats_.open_expired;
    } else {
      ++it;
    }
  }
}

}  // namespace hoptrace
