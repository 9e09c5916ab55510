#include "agent/trace/trace_stitcher.h"

#include <algorithm>
#include <cstring>

namespace hoptrace {
namespace {

uint64_t ThreadKey(uint32_t pid, uint32_t tid) { return (uint64_t{pid} << 32) | tid; }

// Key of received_: the process and the traceparent ids it received.
std::string ReceivedKey(uint32_t pid, const TraceId& trace_id, const SpanId& parent_id) {
  std::string key(4 + 16 + 8, '\0');
  memcpy(key.data(), &pid, 4);
  memcpy(key.data() + 4, trace_id.bytes.data(), 16);
  memcpy(key.data() + 20, parent_id.bytes.data(), 8);
  return key;
}

}  // namespace

// The connection as the client sees it: client end first. A server looks up
// the same key with its ends swapped.
TraceStitcher::TupleKey TraceStitcher::TupleKeyOf(const ConnInfo& c, bool client_view) {
  TupleKey key;
  const auto& a = client_view ? c.local_addr : c.remote_addr;
  const auto& b = client_view ? c.remote_addr : c.local_addr;
  uint16_t pa = client_view ? c.local_port : c.remote_port;
  uint16_t pb = client_view ? c.remote_port : c.local_port;
  uint8_t* p = key.bytes.data();
  memcpy(p, &c.family, 2);
  memcpy(p + 2, a.data(), 16);
  memcpy(p + 18, &pa, 2);
  memcpy(p + 20, b.data(), 16);
  memcpy(p + 36, &pb, 2);
  // Five words folded by multiply and xor-shift: the maps reduce the hash
  // modulo a prime, and a tuple differs from its neighbours in the ports.
  // (std::hash of the bytes, murmur over 38 octets, was ~115 instructions.)
  uint64_t words[5] = {};
  static_assert(sizeof(words) >= sizeof(key.bytes));
  memcpy(words, key.bytes.data(), key.bytes.size());
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (uint64_t w : words) {
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
  }
  key.hash = static_cast<size_t>(h);
  return key;
}

size_t TraceStitcher::TupleKeyHash::operator()(const TupleKey& k) const { return k.hash; }

KernelContext KernelContextFrom(const CtxEvent& ev) {
  const ht_ctx_event& e = *ev.ctx;
  KernelContext k;
  k.server = ev.hdr->type == HT_EV_SERVER_CTX;
  k.ts_ns = ev.hdr->ts_enter_ns;
  k.origin = static_cast<ht_ctx_origin>(e.origin);
  k.ctx_flags = e.ctx_flags;
  memcpy(k.ctx.trace_id.bytes.data(), e.trace_id, 16);
  memcpy(k.ctx.span_id.bytes.data(), e.span_id, 8);
  // A SERVER span's parent is the remote caller's span, when there was one.
  if (!k.server || k.origin == HT_CTX_REMOTE)
    memcpy(k.ctx.parent_span_id.bytes.data(), e.parent_id, 8);
  k.ctx.flags = e.trace_flags;
  k.ctx.tracestate = std::string(ev.tracestate);
  if (!k.server) std::copy(std::begin(e.stack_ids), std::end(e.stack_ids), k.stack_ids.begin());
  return k;
}

TraceStitcher::TraceStitcher(ProcessRegistry* processes, SpanCallback emit,
                             TraceStitcherOptions options, IdGenerator ids)
    : processes_(processes),
      emit_(std::move(emit)),
      options_(options),
      ids_(std::move(ids)),
      sampler_(options.sampler) {}

void TraceStitcher::OnKernelContext(const ConnId& conn, KernelContext k) {
  if (kernel_size_ >= options_.max_kernel_contexts) {
    // Bounded: drop the oldest decision of the connection with the oldest.
    auto oldest = kernel_.begin();
    for (auto it = kernel_.begin(); it != kernel_.end(); ++it) {
      if (it->second.front().ts_ns < oldest->second.front().ts_ns) oldest = it;
    }
    oldest->second.pop_front();
    --kernel_size_;
    ++stats_.kernel_contexts_unmatched;
    if (oldest->second.empty()) kernel_.erase(oldest);
  }
  kernel_[conn].push_back(std::move(k));
  ++kernel_size_;
}

void TraceStitcher::ApplyAlias(SpanContextRecord* ctx) const {
  if (trace_alias_.empty()) return;
  auto it =
      trace_alias_.find(std::string(reinterpret_cast<const char*>(ctx->trace_id.bytes.data()), 16));
  if (it != trace_alias_.end()) ctx->trace_id = it->second.to;
}

std::optional<KernelContext> TraceStitcher::TakeKernelContext(const ConnId& conn, bool server,
                                                              uint64_t ts) {
  auto it = kernel_.find(conn);
  if (it == kernel_.end()) return std::nullopt;
  auto& q = it->second;
  std::optional<KernelContext> found;
  // Decisions are in request order; one made before this request's first
  // byte belongs to a request the parser never reported (garbage, a lost
  // event): drop it.
  while (!q.empty() && q.front().ts_ns <= ts) {
    KernelContext k = std::move(q.front());
    q.pop_front();
    --kernel_size_;
    if (k.ts_ns == ts && k.server == server) {
      ApplyAlias(&k.ctx);
      found = std::move(k);
      break;
    }
    ++stats_.kernel_contexts_unmatched;
  }
  if (q.empty()) kernel_.erase(it);
  return found;
}

SpanContextRecord TraceStitcher::NewRoot() {
  SpanContextRecord ctx;
  ctx.trace_id = ids_.NewTraceId();
  ctx.span_id = ids_.NewSpanId();
  ctx.flags = sampler_.ShouldSample(ctx.trace_id, std::nullopt) ? kTraceFlagSampled : 0;
  return ctx;
}

SpanContextRecord TraceStitcher::ChildOf(const TraceId& trace_id, const SpanId& parent_id,
                                         uint8_t flags, std::string tracestate) {
  SpanContextRecord ctx;
  ctx.trace_id = trace_id;
  ctx.parent_span_id = parent_id;
  ctx.span_id = ids_.NewSpanId();
  ctx.tracestate = std::move(tracestate);
  ctx.flags = ChildFlags(trace_id, flags);
  return ctx;
}

uint8_t TraceStitcher::ChildFlags(const TraceId& trace_id, uint8_t parent_flags) {
  const bool sampled = sampler_.ShouldSample(trace_id, (parent_flags & kTraceFlagSampled) != 0);
  return static_cast<uint8_t>((parent_flags & ~kTraceFlagSampled) |
                              (sampled ? kTraceFlagSampled : 0));
}

bool TraceStitcher::AddAlias(const TraceId& from, const TraceId& to, uint64_t ts) {
  if (trace_alias_.size() >= options_.max_outbound) return false;
  trace_alias_[std::string(reinterpret_cast<const char*>(from.bytes.data()), 16)] = Alias{to, ts};
  return true;
}

SpanContextRecord TraceStitcher::ServerContext(const ConnInfo& conn, const RequestStart& req,
                                               NewTrace* new_trace) {
  *new_trace = NewTrace::kNo;
  // The client side of this connection, if traced here, is always seen
  // first: it wrote the bytes this read returns. Pop it even when the
  // request carries its own traceparent, to keep the queue in step.
  std::optional<SpanContextRecord> local_parent;
  if (conn.tuple_known) {
    auto it = outbound_.find(TupleKeyOf(conn, /*client_view=*/false));
    if (it != outbound_.end()) {
      local_parent = std::move(it->second.front().ctx);
      it->second.pop_front();
      --outbound_size_;
      if (it->second.empty()) outbound_.erase(it);
    }
  }

  if (auto k = TakeKernelContext(conn.id, /*server=*/true, req.timing.first_byte_ts_enter)) {
    // The kernel's ids are the ones it sends on: they win.
    ++stats_.server_spans_from_kernel;
    if (k->origin == HT_CTX_REMOTE) ++stats_.server_spans_with_remote_parent;
    if (k->ctx_flags & HT_CTX_F_TCP_OPTION) ++stats_.server_spans_from_tcp_option;
    if (k->origin == HT_CTX_INVALID) ++stats_.invalid_traceparent;
    SpanContextRecord ctx = std::move(k->ctx);
    if (k->origin == HT_CTX_REMOTE && local_parent && local_parent->trace_id == ctx.trace_id &&
        local_parent->span_id != ctx.parent_span_id) {
      // The caller traced here passed on a traceparent it did not make (a
      // proxy, or a client that reused its parent's header): its CLIENT
      // span is the closer parent, in the same trace.
      ctx.parent_span_id = local_parent->span_id;
      ++stats_.server_spans_relinked;
    }
    if (k->origin == HT_CTX_NEW_TRACE && local_parent) {
      // No header, but the caller is traced on this host (its requests are
      // not injected): the 4-tuple names the parent. The kernel's span id
      // stays, and its trace id, already sent on in the requests this
      // server makes, becomes an alias of the caller's: every span this
      // agent reports under it joins the caller's trace. The sampled flag
      // and tracestate stay the kernel's, as on the wire.
      if (AddAlias(ctx.trace_id, local_parent->trace_id, req.timing.first_byte_ts_enter)) {
        ++stats_.kernel_traces_aliased;
      }
      ctx.trace_id = local_parent->trace_id;
      ctx.parent_span_id = local_parent->span_id;
      ++stats_.server_spans_linked_locally;
    }
    if (k->origin == HT_CTX_NEW_TRACE && !local_parent) *new_trace = NewTrace::kKernel;
    return ctx;
  }
  if (auto tp = req.traceparent) {
    auto parsed = ParseTraceparent(*tp, req.tracestate.value_or(""));
    if (parsed) {
      ++stats_.server_spans_with_remote_parent;
      SpanContextRecord ctx = ChildOf(parsed->trace_id, parsed->parent_id, parsed->flags,
                                      std::move(parsed->tracestate));
      if (local_parent && local_parent->trace_id == ctx.trace_id &&
          local_parent->span_id != ctx.parent_span_id) {
        ctx.parent_span_id = local_parent->span_id;
        ++stats_.server_spans_relinked;
      }
      return ctx;
    }
    ++stats_.invalid_traceparent;  // W3C: restart the trace, ignore tracestate
  }
  if (local_parent) {
    ++stats_.server_spans_linked_locally;
    return ChildOf(local_parent->trace_id, local_parent->span_id, local_parent->flags,
                   std::move(local_parent->tracestate));
  }
  *new_trace = NewTrace::kAgent;
  return NewRoot();
}

bool TraceStitcher::AdoptWaitingServer(const ConnInfo& conn, const SpanContextRecord& caller,
                                       uint64_t ts) {
  if (waiting_servers_.empty()) return false;
  auto w = waiting_servers_.find(TupleKeyOf(conn, /*client_view=*/true));
  if (w == waiting_servers_.end()) return false;
  const ConnId server_conn = w->second;
  auto p = pending_.find(server_conn);
  if (p == pending_.end() || !p->second.waiting.waiting) return false;
  WaitingServer& ws = p->second.waiting;
  ws.waiting = false;
  auto e = std::find_if(p->second.q.begin(), p->second.q.end(),
                        [&](const PendingExchange& x) { return x.exchange_id == ws.exchange_id; });
  if (e == p->second.q.end() || e->ctx.span_id != ws.span_id) return false;
  // Everything already reported under the server's trace id on this host
  // (its own calls) follows it into the caller's trace.
  AddAlias(e->ctx.trace_id, caller.trace_id, ts);
  auto adopt = [&](SpanContextRecord* ctx) {
    ctx->trace_id = caller.trace_id;
    ctx->parent_span_id = caller.span_id;
    if (!ws.from_kernel) {
      ctx->flags = ChildFlags(caller.trace_id, caller.flags);
      ctx->tracestate = caller.tracestate;
    }
  };
  adopt(&e->ctx);
  if (auto t = thread_server_.find(ThreadKey(server_conn.pid, ws.tid)); t != thread_server_.end()) {
    for (auto& open : t->second) {
      if (open.ctx.span_id == ws.span_id) adopt(&open.ctx);
    }
  }
  ++stats_.server_spans_linked_locally;
  ++stats_.server_spans_linked_late;
  return true;
}

SpanContextRecord TraceStitcher::ClientContext(const ConnInfo& conn, const RequestStart& req,
                                               std::array<uint64_t, 2>* stacks) {
  // Only the first request of a connection has a bound parent.
  std::optional<SpanContextRecord> bound;
  if (auto b = bound_at_connect_.find(conn.id); b != bound_at_connect_.end()) {
    bound = std::move(b->second);
    bound_at_connect_.erase(b);
  }
  if (auto k = TakeKernelContext(conn.id, /*server=*/false, req.timing.first_byte_ts_enter)) {
    // The kernel wrote this span's id into the request: exactly these ids.
    ++stats_.client_spans_from_kernel;
    MarkClaimed(conn.id.pid, req.timing.tid, k->ctx.parent_span_id);
    *stacks = k->stack_ids;
    return std::move(k->ctx);
  }
  std::optional<TraceContext> own;
  if (auto tp = req.traceparent) {
    own = ParseTraceparent(*tp, req.tracestate.value_or(""));
  }
  if (own) {
    auto r = received_.find(ReceivedKey(conn.id.pid, own->trace_id, own->parent_id));
    if (r != received_.end()) {
      // A traceparent this process received, passed on unchanged (nginx,
      // any proxy): the request belongs to the SERVER span that got it.
      ++stats_.client_spans_passthrough;
      const SpanContextRecord& parent = r->second;
      return ChildOf(parent.trace_id, parent.span_id, parent.flags, parent.tracestate);
    }
  }
  if (bound) {
    ++stats_.client_spans_with_thread_parent;
    return ChildOf(bound->trace_id, bound->span_id, bound->flags, std::move(bound->tracestate));
  }
  if (const ThreadServer* t = PickThreadServer(conn.id.pid, req.timing.tid)) {
    const SpanContextRecord& parent = t->ctx;
    ++stats_.client_spans_with_thread_parent;
    return ChildOf(parent.trace_id, parent.span_id, parent.flags, parent.tracestate);
  }
  if (own) {
    return ChildOf(own->trace_id, own->parent_id, own->flags, std::move(own->tracestate));
  }
  return NewRoot();
}

void TraceStitcher::OnRequestStart(const ConnInfo& conn, Role role, const RequestStart& request) {
  const bool server = role == Role::kServer;
  std::array<uint64_t, 2> stacks{};
  NewTrace new_trace = NewTrace::kNo;
  SpanContextRecord ctx =
      server ? ServerContext(conn, request, &new_trace) : ClientContext(conn, request, &stacks);
  ApplyAlias(&ctx);  // also for contexts read from headers the kernel wrote
  if (!server && open_spans_ != nullptr) {
    // Made inside a probed call of the same trace: that call is the closer
    // parent. Only the parent changes: the ids on the wire stay. The
    // thread's calls, or those of the goroutines the kernel named.
    if (stacks[0] == 0) stacks[0] = request.timing.tid;
    for (uint64_t stack : stacks) {
      if (stack == 0) continue;
      auto in = open_spans_->InnermostOpen(conn.id.pid, stack, request.timing.first_byte_ts_enter);
      if (!in) continue;
      if (in->trace_id == ctx.trace_id) ctx.parent_span_id = in->span_id;
      break;
    }
  }
  auto& pending = pending_[conn.id];
  if (server) {
    auto& open = thread_server_[ThreadKey(conn.id.pid, request.timing.tid)];
    if (open.size() >= kMaxThreadOpen) open.pop_front();
    open.push_back(ThreadServer{ctx, conn.id, request.timing.first_byte_ts_enter});
    if (new_trace != NewTrace::kNo && conn.tuple_known) {
      if (!pending.tuple_registered) {
        pending.tuple_registered = true;
        if (waiting_servers_.size() < options_.max_outbound) {
          waiting_servers_.insert_or_assign(TupleKeyOf(conn, /*client_view=*/false), conn.id);
        }
      }
      // The oldest still pending waits (pipelined requests: their callers
      // come in order).
      WaitingServer& w = pending.waiting;
      if (!w.waiting || std::none_of(pending.q.begin(), pending.q.end(), [&](const PendingExchange& x) {
            return x.exchange_id == w.exchange_id;
          })) {
        w = WaitingServer{true, request.exchange_id, request.timing.tid,
                          new_trace == NewTrace::kKernel, ctx.span_id};
      }
    }
    if (ctx.parent_span_id.IsValid() && received_.size() < options_.max_outbound) {
      if (request.traceparent) {
        if (auto in = ParseTraceparent(*request.traceparent)) {
          received_[ReceivedKey(conn.id.pid, in->trace_id, in->parent_id)] = ctx;
        }
      }
    }
  } else if (conn.tuple_known &&
             !AdoptWaitingServer(conn, ctx, request.timing.first_byte_ts_enter)) {
    if (outbound_size_ >= options_.max_outbound) {
      // Bounded: the oldest waiting context is the least likely to be claimed.
      auto oldest = outbound_.begin();
      for (auto it = outbound_.begin(); it != outbound_.end(); ++it) {
        if (it->second.front().ts_ns < oldest->second.front().ts_ns) oldest = it;
      }
      oldest->second.pop_front();
      --outbound_size_;
      ++stats_.outbound_expired;
      if (oldest->second.empty()) outbound_.erase(oldest);
    }
    outbound_[TupleKeyOf(conn, /*client_view=*/true)].push_back(
        Outbound{ctx, request.timing.first_byte_ts_enter});
    ++outbound_size_;
  }
  if (pending.q.size() >= kMaxPendingPerConnection) pending.q.pop_front();
  pending.q.push_back(PendingExchange{request.exchange_id, std::move(ctx)});
}

void TraceStitcher::OnExchange(const ConnInfo& conn, Role role, Exchange exchange,
                               const std::optional<Closing>& closing) {
  const bool server = role == Role::kServer;
  std::optional<SpanContextRecord> found;
  if (auto it = pending_.find(conn.id); it != pending_.end()) {
    auto& q = it->second.q;
    for (auto e = q.begin(); e != q.end(); ++e) {
      if (e->exchange_id == exchange.exchange_id) {
        found = std::move(e->ctx);
        q.erase(e);
        break;
      }
    }
  }
  // OnRequestStart always comes first; be safe anyway.
  SpanContextRecord ctx = found ? std::move(*found) : NewRoot();
  if (server) {
    if (auto t = thread_server_.find(ThreadKey(conn.id.pid, exchange.request.tid));
        t != thread_server_.end()) {
      auto& open = t->second;
      for (auto e = open.begin(); e != open.end(); ++e) {
        if (e->ctx.span_id == ctx.span_id) {
          open.erase(e);
          break;
        }
      }
      // An empty entry stays until a connection goes (OnConnectionGone
      // sweeps them): erasing it here made every request allocate a new
      // deque (two allocations, one of 512 bytes).
    }
    if (auto tp = exchange.details->Traceparent()) {
      if (auto in = ParseTraceparent(*tp)) {
        auto r = received_.find(ReceivedKey(conn.id.pid, in->trace_id, in->parent_id));
        if (r != received_.end() && r->second.span_id == ctx.span_id) received_.erase(r);
      }
    }
  } else if (conn.tuple_known) {
    // The server read this request before it answered, so a traced server
    // has claimed its context by now; what is left has no traced server.
    auto o = outbound_.find(TupleKeyOf(conn, /*client_view=*/true));
    if (o != outbound_.end()) {
      auto& q = o->second;
      for (auto e = q.begin(); e != q.end(); ++e) {
        if (e->ctx.span_id == ctx.span_id) {
          q.erase(e);
          --outbound_size_;
          break;
        }
      }
      if (q.empty()) outbound_.erase(o);
    }
  }
  if (closing && closing->reason == CloseReason::kShutdown) {
    // The agent is stopping, not the exchange failing: report nothing false.
    ++stats_.dropped_at_shutdown;
    return;
  }
  if ((ctx.flags & kTraceFlagSampled) == 0) {
    ++stats_.sampled_out;
    return;
  }
  ApplyAlias(&ctx);  // its trace may have joined a caller's since it started
  auto process = processes_->Get(static_cast<pid_t>(conn.id.pid));
  emit_(BuildSpan(conn, server, exchange, ctx, closing, *process, options_.span));
  ++stats_.spans;
}

void TraceStitcher::OnConnectionGone(const ConnInfo& conn) {
  if (auto p = pending_.find(conn.id); p != pending_.end()) {
    if (p->second.tuple_registered && conn.tuple_known) {
      auto w = waiting_servers_.find(TupleKeyOf(conn, /*client_view=*/false));
      if (w != waiting_servers_.end() && w->second == conn.id) waiting_servers_.erase(w);
    }
    pending_.erase(p);
  }
  bound_at_connect_.erase(conn.id);
  if (auto k = kernel_.find(conn.id); k != kernel_.end()) {
    kernel_size_ -= k->second.size();
    stats_.kernel_contexts_unmatched += k->second.size();
    kernel_.erase(k);
  }
  for (auto it = thread_server_.begin(); it != thread_server_.end();) {
    auto& open = it->second;
    std::erase_if(open, [&](const ThreadServer& t) { return t.conn == conn.id; });
    it = open.empty() ? thread_server_.erase(it) : std::next(it);
  }
}

void TraceStitcher::OnConnectionOpen(const ConnInfo& conn, uint32_t tid) {
  if (conn.kernel_role != HT_ROLE_CLIENT) return;
  if (bound_at_connect_.size() >= options_.max_outbound) return;
  if (const ThreadServer* t = PickThreadServer(conn.id.pid, tid)) {
    bound_at_connect_[conn.id] = t->ctx;
  }
}

std::optional<SpanContextRecord> TraceStitcher::ServingSpan(uint32_t pid, uint32_t tid) const {
  auto it = thread_server_.find(ThreadKey(pid, tid));
  if (it == thread_server_.end() || it->second.empty()) return std::nullopt;
  return it->second.back().ctx;
}

std::optional<SpanContextRecord> TraceStitcher::OpenServerSpan(uint32_t pid, const SpanId& span_id,
                                                               uint64_t before_ns) const {
  for (const auto& [key, open] : thread_server_) {
    if (key >> 32 != pid) continue;
    for (const ThreadServer& t : open) {
      if (t.ctx.span_id == span_id) {
        if (t.ts_ns > before_ns) return std::nullopt;
        return t.ctx;
      }
    }
  }
  return std::nullopt;
}

size_t TraceStitcher::open_server_spans() const {
  size_t n = 0;
  for (const auto& [key, open] : thread_server_) n += open.size();
  return n;
}

const TraceStitcher::ThreadServer* TraceStitcher::PickThreadServer(uint32_t pid, uint32_t tid) {
  auto it = thread_server_.find(ThreadKey(pid, tid));
  if (it == thread_server_.end() || it->second.empty()) return nullptr;
  for (auto& t : it->second) {
    if (!t.claimed) {
      t.claimed = true;
      return &t;
    }
  }
  return &it->second.back();
}

void TraceStitcher::MarkClaimed(uint32_t pid, uint32_t tid, const SpanId& span_id) {
  auto it = thread_server_.find(ThreadKey(pid, tid));
  if (it == thread_server_.end()) return;
  for (auto& t : it->second) {
    if (t.ctx.span_id == span_id) {
      t.claimed = true;
      return;
    }
  }
}

void TraceStitcher::Tick(uint64_t now_ns) {
  for (auto it = outbound_.begin(); it != outbound_.end();) {
    auto& q = it->second;
    while (!q.empty() && now_ns > q.front().ts_ns &&
           now_ns - q.front().ts_ns > options_.outbound_ttl_ns) {
      q.pop_front();
      --outbound_size_;
      ++stats_.outbound_expired;
    }
    it = q.empty() ? outbound_.erase(it) : std::next(it);
  }
  for (auto it = trace_alias_.begin(); it != trace_alias_.end();) {
    it = now_ns > it->second.ts_ns && now_ns - it->second.ts_ns > options_.outbound_ttl_ns
             ? trace_alias_.erase(it)
             : std::next(it);
  }
  // Decisions for requests the agent never saw (a connection it does not
  // follow, events lost) go after the same time.
  for (auto it = kernel_.begin(); it != kernel_.end();) {
    auto& q = it->second;
    while (!q.empty() && now_ns > q.front().ts_ns &&
           now_ns - q.front().ts_ns > options_.outbound_ttl_ns) {
      q.pop_front();
      --kernel_size_;
      ++stats_.kernel_contexts_unmatched;
    }
    it = q.empty() ? kernel_.erase(it) : std::next(it);
  }
}

}  // namespace hoptrace
