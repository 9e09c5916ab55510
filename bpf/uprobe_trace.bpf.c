// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * The software trace: how long each call of a function the user named took,
 * and which probed calls it ran inside (bpf/uprobe_trace.h).
 *
 * hu_entry runs at a probed function's first instruction and pushes a frame
 * on the thread's (Go: goroutine's) stack of open calls; hu_return runs at
 * each of its return instructions (found by disassembly, never uretprobes:
 * see uprobes/return_sites.h) and pops it. A call shorter than
 * targ_min_duration_ns is only counted; a longer one is sent with the frames
 * around it, so the agent can nest it without asking the kernel again.
 *
 * Calls that never return leave frames behind; they are found and sent as
 * abandoned at the next hit on the same stack: an entry whose stack pointer
 * is at or above theirs (their stack is gone: an exception or longjmp
 * unwound it), or a return of a call below them. The depth is bounded, a
 * thread's stack is freed when it empties or the thread exits, and the map
 * of stacks is LRU: nothing grows without bound.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "uprobe_trace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u64 targ_min_duration_ns = 100000; /* shorter calls: counted, not sent */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* set by the agent */
	__type(key, struct hu_site_key);
	__type(value, struct hu_site);
} hu_sites SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* set by the agent */
	__type(key, struct hu_stack_key);
	__type(value, struct hu_stack);
} hu_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HU_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hu_counters SEC(".maps");

/* The capture's ring buffer (the loader hands us its fd). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} ht_events SEC(".maps");

/* Stack and event are too big for the BPF stack: a zeroed template. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hu_stack);
} hu_empty SEC(".maps");

static __always_inline void hu_count_n(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&hu_counters, &idx);

	if (v)
		*v += n;
}

static __always_inline void hu_count(__u32 idx)
{
	hu_count_n(idx, 1);
}

static __always_inline const struct hu_site *hu_site_of(struct pt_regs *ctx, __u32 pid)
{
	struct hu_site_key key = { .pid = pid, .addr = PT_REGS_IP(ctx) };

	return bpf_map_lookup_elem(&hu_sites, &key);
}

static __always_inline void hu_stack_key_of(struct pt_regs *ctx, const struct hu_site *site,
					    __u64 pid_tgid, struct hu_stack_key *key)
{
	key->pid = pid_tgid >> 32;
	key->_pad = 0;
	/* Go's register ABI keeps the running goroutine (g) in r14. */
	key->id = (site->flags & HU_SITE_F_GO) ? ctx->r14 : (__u32)pid_tgid;
}

/* Where a Python function that returned is defined (hu_py_call_event). */
struct hu_py_where {
	const char *path; /* co_filename, NUL-terminated, HU_PY_PATH_MAX readable */
	__u32 path_len;
	__u32 line;
};

static __always_inline void hu_fill(struct hu_call_event *e, const struct hu_stack *st,
				    const struct hu_stack_key *key, __u32 type, __u32 index,
				    __u32 depth, __u64 end_ns, __u16 flags, const char *exception,
				    __u64 pid_tgid)
{
	e->hdr.type = type;
	e->hdr.pid = pid_tgid >> 32;
	e->hdr.tid = (__u32)pid_tgid;
	e->hdr.fd = -1;
	e->hdr.conn_gen = 0;
	e->hdr.ts_enter_ns = st->frames[index & (HU_MAX_DEPTH - 1)].entry_ns;
	e->hdr.ts_exit_ns = end_ns;
	e->context_id = key->id;
	e->index = index;
	e->depth = depth;
	e->flags = flags;
	e->_pad = 0;
	__builtin_memcpy(e->exception, exception, sizeof(e->exception));
	__builtin_memcpy(e->frames, st->frames, sizeof(e->frames));
}

/* Sends frames[index] (or [index, depth) when abandoned) with its parents;
 * with where (a Python function's return), as a hu_py_call_event. */
static __always_inline void hu_send(const struct hu_stack *st, const struct hu_stack_key *key,
				    __u32 type, __u32 index, __u32 depth, __u64 end_ns,
				    __u16 flags, const char *exception, __u64 pid_tgid,
				    const struct hu_py_where *where)
{
	struct hu_py_call_event *pe;
	struct hu_call_event *e;

	if (where) {
		pe = bpf_ringbuf_reserve(&ht_events, sizeof(*pe), 0);
		if (!pe) {
			hu_count(HU_CNT_RINGBUF_DROPS);
			return;
		}
		hu_fill(&pe->call, st, key, type, index, depth, end_ns, flags | HU_F_PY_WHERE,
			exception, pid_tgid);
		pe->line = where->line;
		pe->path_len = where->path_len < HU_PY_PATH_MAX ? where->path_len : 0;
		pe->_pad = 0;
		if (bpf_probe_read_kernel(pe->path, sizeof(pe->path), where->path))
			pe->path_len = 0;
		bpf_ringbuf_submit(pe, 0);
		return;
	}
	e = bpf_ringbuf_reserve(&ht_events, sizeof(*e), 0);
	if (!e) {
		hu_count(HU_CNT_RINGBUF_DROPS);
		return;
	}
	hu_fill(e, st, key, type, index, depth, end_ns, flags, exception, pid_tgid);
	bpf_ringbuf_submit(e, 0);
}

/* Frames [from, depth) never returned: send them once, forget them. */
static __always_inline void hu_abandon(struct hu_stack *st, const struct hu_stack_key *key,
				       __u32 from, __u64 now, __u16 flags, __u64 pid_tgid)
{
	__u32 depth = st->depth;
	__u64 end = now;

	if (depth > HU_MAX_DEPTH)
		depth = HU_MAX_DEPTH;
	if (from >= depth)
		return;
	from &= HU_MAX_DEPTH - 1;
	if (st->throw_ns > st->frames[from].entry_ns) {
		/* A C++ exception left them: they ended when it was thrown. */
		end = st->throw_ns;
		flags |= HU_F_THROWN;
	}
	for (__u32 i = 0; i < HU_MAX_DEPTH; i++) {
		if (i >= from && i < depth)
			st->exit_ns[i] = end;
	}
	hu_count_n(HU_CNT_ABANDONED, depth - from);
	if (end - st->frames[from].entry_ns >= targ_min_duration_ns)
		hu_send(st, key, HT_EV_FUNC_ABANDONED, from, depth, end, flags, st->exception,
			pid_tgid, NULL);
	st->depth = from;
	st->throw_ns = 0;
}

/* How many frames are still callers of code running at stack pointer sp:
 * a frame whose stack pointer is at or below sp is not (the stack grows
 * down): its stack was unwound without a return. Python frames hold no
 * stack pointer (their calls always report their end): not judged here. */
static __always_inline __u32 hu_live_frames(const struct hu_stack *st, __u32 depth, __u64 sp)
{
	for (__u32 i = 0; i < HU_MAX_DEPTH; i++) {
		if (i < depth && !(st->frames[i].function_id & HU_FUNCTION_PY) &&
		    st->frames[i].sp <= sp)
			return i;
	}
	return depth;
}

/* The stack of open calls under key; a new empty one when create is set. */
static __always_inline struct hu_stack *hu_stack_get(const struct hu_stack_key *key, bool create)
{
	struct hu_stack *st = bpf_map_lookup_elem(&hu_stacks, key);
	struct hu_stack *empty;
	__u32 zero = 0;

	if (st || !create)
		return st;
	empty = bpf_map_lookup_elem(&hu_empty, &zero);
	if (!empty || bpf_map_update_elem(&hu_stacks, key, empty, BPF_NOEXIST) != 0) {
		hu_count(HU_CNT_STACK_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&hu_stacks, key);
}

/* Pushes a call at the stack's top, after dropping the frames the stack
 * pointer shows gone. */
static __always_inline void hu_push(struct hu_stack *st, const struct hu_stack_key *key,
				    __u64 now, __u64 sp, __u64 frame_sp, __u32 function_id,
				    bool go, __u64 pid_tgid)
{
	__u32 depth = st->depth, live;

	if (depth > HU_MAX_DEPTH)
		depth = HU_MAX_DEPTH;
	/* Not for Go, whose goroutine stacks are copied as they grow. */
	live = go ? depth : hu_live_frames(st, depth, sp);
	if (live < depth) {
		hu_abandon(st, key, live, now, 0, pid_tgid);
		depth = live;
	}
	if (depth >= HU_MAX_DEPTH) {
		hu_count(HU_CNT_TOO_DEEP);
		return;
	}
	st->frames[depth].entry_ns = now;
	st->frames[depth].sp = frame_sp;
	st->frames[depth].function_id = function_id;
	st->frames[depth].tid = (__u32)pid_tgid;
	st->exit_ns[depth] = 0;
	st->depth = depth + 1;
}

/* frames[match] returned at now: calls above it never did (a Go panic it
 * recovered from, an exception it caught). where: a Python function's. */
static __always_inline void hu_pop(struct hu_stack *st, const struct hu_stack_key *key,
				   __u32 match, __u32 depth, __u64 now, __u16 flags,
				   const char *exception, __u64 pid_tgid,
				   const struct hu_py_where *where)
{
	match &= HU_MAX_DEPTH - 1;
	if (match + 1 < depth)
		hu_abandon(st, key, match + 1, now, flags & HU_F_GO, pid_tgid);
	hu_count(HU_CNT_CALLS);
	if (now - st->frames[match].entry_ns >= targ_min_duration_ns)
		hu_send(st, key, HT_EV_FUNC_CALL, match, match + 1, now, flags, exception, pid_tgid,
			where);
	else
		hu_count(HU_CNT_SHORT);
	st->exit_ns[match] = now;
	st->depth = match;
}

SEC("uprobe")
int hu_entry(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	const struct hu_site *site = hu_site_of(ctx, pid_tgid >> 32);
	struct hu_stack_key key;
	struct hu_stack *st;
	__u64 now, sp = PT_REGS_SP(ctx), frame_sp = sp;

	if (!site || site->kind != HU_SITE_ENTRY)
		return 0;
	now = bpf_ktime_get_ns();
	hu_stack_key_of(ctx, site, pid_tgid, &key);
	st = hu_stack_get(&key, true);
	if (!st)
		return 0;
	if (site->flags & HU_SITE_F_GO) {
		__u64 hi = 0;
		__u32 top = st->depth;

		/* A Go frame is kept by its distance from its stack's top
		 * (runtime.g begins with stack{lo, hi}), which the copy of a
		 * growing stack keeps. runtime.morestack runs a function again
		 * from its entry on the grown stack: the same call at the same
		 * distance, not a new one (a recursive call is deeper). */
		if (bpf_probe_read_user(&hi, sizeof(hi), (const void *)(ctx->r14 + 8)) == 0 && hi > sp)
			frame_sp = hi - sp;
		if (top > 0 && top <= HU_MAX_DEPTH) {
			top = (top - 1) & (HU_MAX_DEPTH - 1);
			if (st->frames[top].function_id == site->function_id &&
			    st->frames[top].sp == frame_sp && st->exit_ns[top] == 0) {
				hu_count(HU_CNT_GO_RESTARTS);
				return 0;
			}
		}
	}
	hu_push(st, &key, now, sp, frame_sp, site->function_id, site->flags & HU_SITE_F_GO,
		pid_tgid);
	return 0;
}

SEC("uprobe")
int hu_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	const struct hu_site *site = hu_site_of(ctx, pid_tgid >> 32);
	struct hu_stack_key key;
	struct hu_stack *st;
	__u64 now, sp = PT_REGS_SP(ctx);
	__u32 depth, match = HU_MAX_DEPTH;
	bool go;

	if (!site || site->kind != HU_SITE_RETURN)
		return 0;
	now = bpf_ktime_get_ns();
	go = site->flags & HU_SITE_F_GO;
	hu_stack_key_of(ctx, site, pid_tgid, &key);
	st = bpf_map_lookup_elem(&hu_stacks, &key);
	if (!st)
		return 0;
	depth = st->depth;
	if (depth > HU_MAX_DEPTH)
		depth = HU_MAX_DEPTH;
	/* The innermost open call of this function; in C and C++ also at this
	 * very stack pointer (at ret it points where it did at entry), which
	 * tells recursive calls apart exactly. */
	for (__u32 i = HU_MAX_DEPTH; i > 0; i--) {
		__u32 f = i - 1;

		if (f >= depth)
			continue;
		if (st->frames[f].function_id == site->function_id &&
		    (go || st->frames[f].sp == sp)) {
			match = f;
			break;
		}
	}
	if (match >= HU_MAX_DEPTH) {
		hu_count(HU_CNT_UNMATCHED);
		return 0;
	}
	hu_pop(st, &key, match, depth, now, go ? HU_F_GO : 0, st->exception, pid_tgid, NULL);
	/* A stack stays with the calls it ended, for the agent's reads of what
	 * was open when a request was written (it reads late): a thread's until
	 * it exits, a goroutine's until the LRU needs the room (a reused g's
	 * old calls ended before anything the new goroutine writes, so the
	 * agent's time checks never take them for open; the agent also deletes
	 * a process's stacks at its exit). */
	return 0;
}

/* __cxa_throw(void *obj, std::type_info *tinfo, void (*dest)(void *)):
 * remember when and what, for the frames the exception will unwind.
 * __cxa_begin_catch(void *): called by the frame that catches it, so every
 * probed frame at or below its stack pointer has been unwound: sent now,
 * before the handler calls anything that would look nested in them. */
SEC("uprobe")
int hu_exception(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	const struct hu_site *site = hu_site_of(ctx, pid_tgid >> 32);
	struct hu_stack_key key;
	struct hu_stack *st;
	const char *name = NULL;
	__u64 sp = PT_REGS_SP(ctx);
	__u32 depth, live;
	void *tinfo;

	if (!site || (site->kind != HU_SITE_THROW && site->kind != HU_SITE_CATCH))
		return 0;
	hu_stack_key_of(ctx, site, pid_tgid, &key);
	st = bpf_map_lookup_elem(&hu_stacks, &key);
	if (!st || st->depth == 0)
		return 0; /* no probed call open: nothing to tell */
	if (site->kind == HU_SITE_CATCH) {
		depth = st->depth;
		if (depth > HU_MAX_DEPTH)
			depth = HU_MAX_DEPTH;
		live = hu_live_frames(st, depth, sp);
		hu_abandon(st, &key, live, bpf_ktime_get_ns(), 0, pid_tgid);
		return 0;
	}
	st->throw_ns = bpf_ktime_get_ns();
	/* std::type_info is { vtable pointer, const char *__name }. */
	tinfo = (void *)PT_REGS_PARM2(ctx);
	if (bpf_probe_read_user(&name, sizeof(name), tinfo + 8) != 0 ||
	    bpf_probe_read_user_str(st->exception, sizeof(st->exception), name) < 0)
		st->exception[0] = '\0';
	return 0;
}

#include "uprobe_python.bpf.h"

/* A thread that exits with calls open frees its stack here (goroutine
 * stacks go with the process: the agent deletes them at its exit). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(hu_thread_exit, struct task_struct *p)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct hu_stack_key key = { .pid = pid_tgid >> 32, .id = (__u32)pid_tgid };

	bpf_map_delete_elem(&hu_stacks, &key);
	return 0;
}
