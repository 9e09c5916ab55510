/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Kernel-side trace context: the server spans each thread is serving right
 * now, decided by the capture programs when a request is read
 * (head_scan.bpf.h) and used by the propagation programs when the thread
 * connects or writes a request of its own (propagation.bpf.c). Both objects
 * declare these maps; the agent loads socket_trace first and makes
 * propagation reuse its maps (bpf_map__reuse_fd), so they share one copy.
 */
#ifndef HOPTRACE_BPF_CONTEXT_BPF_H
#define HOPTRACE_BPF_CONTEXT_BPF_H

#include "maps.bpf.h"
#include "propagation.h"

/* Set by the agent between open and load. */
const volatile bool targ_kernel_ctx = false;    /* decide contexts in the kernel */
const volatile __u32 targ_sampler = 3;          /* hoptrace::SamplerKind */
const volatile __u64 targ_sample_threshold = 0; /* see ht_sampled() */

/* hoptrace::SamplerKind, whose decision the kernel must repeat: the sampled
 * flag it sends downstream is the one the agent records by. */
enum ht_sampler_kind {
	HT_SAMPLER_ALWAYS_ON = 0,
	HT_SAMPLER_ALWAYS_OFF = 1,
	HT_SAMPLER_RATIO = 2,
	HT_SAMPLER_PB_ALWAYS_ON = 3,
	HT_SAMPLER_PB_ALWAYS_OFF = 4,
	HT_SAMPLER_PB_RATIO = 5,
};

/* A server span some thread is serving: created when its request head has
 * been read, deleted when the response starts. */
struct ht_server_ctx {
	__u8 trace_id[16];
	__u64 span_id;
	__u64 reader; /* pid_tgid of the thread that read the request */
	__u8 flags;   /* W3C trace-flags of the server span */
	__u8 claimed; /* an outgoing connection or request has used it */
	__u16 tracestate_len;
	__u32 _pad;
	char tracestate[HT_TRACESTATE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64); /* span id */
	__type(value, struct ht_server_ctx);
} ht_server_ctxs SEC(".maps");

/* The requests a thread has read and not answered yet, oldest first: one
 * for a thread-per-request server, as many as it juggles for an event loop.
 * A queue per thread: seq numbers head..tail-1 in ht_thread_q. Entries whose
 * server span is over (ht_server_ctxs has no entry any more) are dropped as
 * the head passes them. */
#define HT_THREAD_MAX 1024 /* entries looked at per pick; older ones fall off */

struct ht_thread_ctx {
	__u64 head; /* seq of the oldest entry that may still be live */
	__u64 tail; /* seq of the next entry */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ht_thread_ctx);
} ht_thread_ctxs SEC(".maps");

struct ht_thread_q_key {
	__u64 pid_tgid;
	__u64 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ht_thread_q_key);
	__type(value, __u64); /* span id in ht_server_ctxs */
} ht_thread_q SEC(".maps");

/* Room to build a context: too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_server_ctx);
} ht_ctx_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_CTXC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ht_ctx_counters SEC(".maps");

static __always_inline void ht_ctx_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ht_ctx_counters, &idx);

	if (v)
		*v += 1;
}

/* n random bytes, never all zero (W3C: all-zero ids are invalid). n is a
 * multiple of 4. */
static __always_inline void ht_random_id(__u8 *dst, int n)
{
	__u32 any = 0;

	for (int i = 0; i < n; i += 4) {
		__u32 r = bpf_get_prandom_u32();

		any |= r;
		__builtin_memcpy(dst + i, &r, 4);
	}
	if (!any)
		dst[n - 1] = 1;
}

/* OpenTelemetry trace-id ratio, as hoptrace::Sampler: the low 56 bits of the
 * trace id, big-endian, against (1 - ratio) * 2^56. */
static __always_inline bool ht_ratio_sampled(const __u8 *trace_id)
{
	__u64 r = 0;

	for (int i = 9; i < 16; i++)
		r = (r << 8) | trace_id[i];
	return r >= targ_sample_threshold;
}

/* parent: -1 no parent, 0 parent not sampled, 1 parent sampled. */
static __always_inline bool ht_sampled(const __u8 *trace_id, int parent)
{
	switch (targ_sampler) {
	case HT_SAMPLER_ALWAYS_ON:
		return true;
	case HT_SAMPLER_ALWAYS_OFF:
		return false;
	case HT_SAMPLER_RATIO:
		return ht_ratio_sampled(trace_id);
	case HT_SAMPLER_PB_ALWAYS_OFF:
		return parent > 0;
	case HT_SAMPLER_PB_RATIO:
		return parent < 0 ? ht_ratio_sampled(trace_id) : parent > 0;
	default: /* parentbased_always_on */
		return parent != 0;
	}
}

/* Remembers that the current thread now serves span_id. */
static __always_inline void ht_thread_push(__u64 pid_tgid, __u64 span_id)
{
	struct ht_thread_ctx *t = bpf_map_lookup_elem(&ht_thread_ctxs, &pid_tgid);
	struct ht_thread_ctx fresh = {};
	struct ht_thread_q_key k = { .pid_tgid = pid_tgid };

	if (!t) {
		bpf_map_update_elem(&ht_thread_ctxs, &pid_tgid, &fresh, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&ht_thread_ctxs, &pid_tgid);
		if (!t)
			return;
	}
	k.seq = t->tail;
	if (bpf_map_update_elem(&ht_thread_q, &k, &span_id, BPF_ANY))
		return;
	t->tail = k.seq + 1;
	if (t->tail - t->head > HT_THREAD_MAX)
		t->head = t->tail - HT_THREAD_MAX;
}

struct ht_pick_loop {
	__u64 pid_tgid;
	__u64 base;       /* seq of loop index 0 (the thread's head) */
	__u64 tail;
	__u64 first_live; /* seq of the first live entry, tail if none */
	__u64 chosen;     /* oldest unclaimed span, 0 if none */
	__u64 newest;     /* newest live span seen */
};

static long ht_pick_step(__u64 i, struct ht_pick_loop *l)
{
	struct ht_thread_q_key k = { .pid_tgid = l->pid_tgid, .seq = l->base + i };
	struct ht_server_ctx *c;
	__u64 *span;

	if (k.seq >= l->tail)
		return 1;
	span = bpf_map_lookup_elem(&ht_thread_q, &k);
	c = span ? bpf_map_lookup_elem(&ht_server_ctxs, span) : NULL;
	if (!c) {
		/* answered (or evicted): forget it */
		if (span)
			bpf_map_delete_elem(&ht_thread_q, &k);
		return 0;
	}
	if (l->first_live == l->tail)
		l->first_live = k.seq;
	l->newest = *span;
	if (!c->claimed) {
		l->chosen = *span;
		return 1;
	}
	return 0;
}

/* Runtime context (issue 11). Where a runtime multiplexes requests onto
 * threads (asyncio, thread pools that hand work over, goroutines, Node), the
 * thread that writes a request is not the one that read the request it serves,
 * so the thread queue above guesses. A runtime's own probes (or the syscall
 * programs reading the runtime's state: Python's current Context, Go's current
 * goroutine) say exactly which server span the code running on a thread serves
 * by setting ht_rt_current[pid_tgid] for the syscall under way.
 *
 * Contract for a setter: the entry is valid only for the syscall the thread is
 * in (connect, write, sendmsg ...), so whoever sets it at a syscall's entry
 * deletes it at that syscall's exit (ht_rt_clear), and never leaves one behind
 * for a thread of a process it does not follow. span_id == 0 means the runtime
 * knows the code serves no request: no parent rather than a guess. */
struct ht_rt_current {
	__u64 span_id; /* key of ht_server_ctxs, or 0: serves no request */
	__u32 source;  /* enum ht_rt_source, for counters and debugging */
	__u32 _pad;
	/* Ids of the probed-call stacks (struct hu_stack_key.id) a request
	 * written now is made inside, closest first, 0 if none: for runtimes
	 * whose unit of work is not the thread (Go: goroutines). Sent with
	 * the request's HT_EV_CLIENT_CTX. */
	__u64 stack_ids[2];
};

enum ht_rt_source {
	HT_RT_NONE = 0,
	HT_RT_PYTHON = 1,
	HT_RT_GO = 2,
	HT_RT_NODE = 3,
	HT_RT_WAKEUP = 4, /* native thread pools: inherited through a wake-up */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ht_rt_current);
} ht_rt_current SEC(".maps");

static __always_inline void ht_rt_set_stacks(__u64 pid_tgid, __u64 span_id, __u32 source,
					     __u64 stack0, __u64 stack1)
{
	struct ht_rt_current v = { .span_id = span_id, .source = source };

	v.stack_ids[0] = stack0;
	v.stack_ids[1] = stack1;
	bpf_map_update_elem(&ht_rt_current, &pid_tgid, &v, BPF_ANY);
}

static __always_inline void ht_rt_set(__u64 pid_tgid, __u64 span_id, __u32 source)
{
	ht_rt_set_stacks(pid_tgid, span_id, source, 0, 0);
}

static __always_inline void ht_rt_clear(__u64 pid_tgid)
{
	bpf_map_delete_elem(&ht_rt_current, &pid_tgid);
}

/* The server span an outgoing request of this thread belongs to: the oldest
 * one nothing has claimed yet (an event loop handles requests in the order it
 * read them), else the newest (a thread-per-request server making its second
 * call). claim marks the one returned. NULL if the thread serves nothing. */
static __always_inline struct ht_server_ctx *ht_thread_pick(__u64 pid_tgid, bool claim)
{
	struct ht_thread_ctx *t;
	struct ht_rt_current *rt = bpf_map_lookup_elem(&ht_rt_current, &pid_tgid);
	struct ht_pick_loop l = {};
	struct ht_server_ctx *c;
	__u64 span, n;

	if (rt) {
		/* The runtime knows: its answer, even "none", beats a guess. */
		span = rt->span_id;
		c = span ? bpf_map_lookup_elem(&ht_server_ctxs, &span) : NULL;
		ht_ctx_count(c ? HT_CTXC_RT_PICKED : HT_CTXC_RT_GONE);
		if (c && claim)
			c->claimed = 1;
		return c;
	}
	t = bpf_map_lookup_elem(&ht_thread_ctxs, &pid_tgid);
	if (!t)
		return NULL;
	l.pid_tgid = pid_tgid;
	l.base = t->head;
	l.tail = t->tail;
	l.first_live = l.tail;
	n = l.tail - l.base;
	if (n > HT_THREAD_MAX)
		n = HT_THREAD_MAX;
	bpf_loop(n, ht_pick_step, &l, 0);
	/* Entries before the first live one are gone for good (push keeps
	 * tail - head <= HT_THREAD_MAX, so the loop saw them all). */
	t->head = l.first_live;
	span = l.chosen ? l.chosen : l.newest;
	if (!span)
		return NULL;
	c = bpf_map_lookup_elem(&ht_server_ctxs, &span);
	if (c && claim && l.chosen)
		c->claimed = 1;
	return c;
}

/* Lower-case hex of n bytes into dst (2n chars). */
static __always_inline void ht_hex(char *dst, const __u8 *src, int n)
{
	for (int i = 0; i < n; i++) {
		__u8 hi = src[i] >> 4, lo = src[i] & 0xf;

		dst[2 * i] = hi < 10 ? '0' + hi : 'a' + hi - 10;
		dst[2 * i + 1] = lo < 10 ? '0' + lo : 'a' + lo - 10;
	}
}

#endif /* HOPTRACE_BPF_CONTEXT_BPF_H */
