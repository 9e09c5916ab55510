/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The wake-up model (issue 11, item 5): native thread pools, and Python's
 * plain ThreadPoolExecutor.submit / loop.run_in_executor, whose workers never
 * read the request they call out for. No runtime hook says which request a
 * worker serves; the scheduler does, sometimes: the thread that read a
 * request (its queue in context.bpf.h) puts it on a work queue and wakes a
 * worker (futex, condition variable). The worker inherits that request for
 * its outgoing connects and writes (ht_rt_current, source HT_RT_WAKEUP) until
 * the request is answered or a later wake-up makes the answer doubtful.
 *
 * A wrong parent is worse than none, so every doubt ends in "none" (span 0):
 *  - only a thread that reads requests hands one over, and only a request it
 *    read itself that no other thread has been handed yet; with two or more
 *    such requests waiting, the worker may pop either: none;
 *  - a worker woken again, for another request, before it called out for
 *    the one it was handed (a mutex or GIL hand-off, or another worker took
 *    its item) may serve either: none, until both are answered;
 *  - a worker that called out for a live request is busy with it: later
 *    wake-ups (mutex noise, the network) do not change it;
 *  - a thread that reads requests itself keeps its own queue.
 * Where it stops: a reader that juggles many requests (an event loop feeding
 * a pool) rarely has exactly one waiting, so under concurrency most of its
 * workers' calls get none; hand-offs without a wake-up (a worker that finds
 * the queue non-empty) get none; chains (worker hands to worker) get none.
 *
 * Cost: one program per wake-up on the machine (tp_btf/sched_waking: it runs
 * in the waker, where sched_wakeup may run on the wakee's CPU after an IPI), which
 * returns after comparing two tgids unless waker and wakee are threads of one
 * process, then one map lookup unless that process is selected.
 */
#ifndef HOPTRACE_BPF_RUNTIME_WAKEUP_BPF_H
#define HOPTRACE_BPF_RUNTIME_WAKEUP_BPF_H

#include "context.bpf.h"
#include "maps.bpf.h"
#include "runtime_wakeup.h"

#define HT_WK_SCAN 8 /* newest entries of the waker's queue looked at */

struct ht_wk_thread {
	__u64 span_id; /* request inherited, 0: none (doubtful) */
	__u64 hold[2]; /* span_id == 0: the requests the doubt is about */
	__u64 epoch;   /* the process's ht_wk_epochs when it was handed */
	__u8 used;     /* an outgoing connect/write took span_id */
	__u8 _pad[7];
};

/* A reader's last hand-off: was it taken before the next one? */
struct ht_wk_reader {
	__u64 task;     /* struct task_struct * of the worker, read back with probe reads */
	__u64 switches; /* its nvcsw + nivcsw at the wake-up: unchanged = has not run */
	__u64 span_id;
	__u32 tid;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid of a reader */
	__type(value, struct ht_wk_reader);
} ht_wk_readers SEC(".maps");

/* Per process: outgoing calls made by workers no hand-off explains (a worker
 * that found the queue non-empty, or took another's item). A hand-off
 * followed by one of those before its worker called out is in doubt. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, __u64);
} ht_wk_epochs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid of a worker */
	__type(value, struct ht_wk_thread);
} ht_wk_threads SEC(".maps");

/* Which worker each request was handed to: once only. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);   /* span id */
	__type(value, __u64); /* pid_tgid of the worker */
} ht_wk_handed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_WKC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ht_wk_counters SEC(".maps");

static __always_inline void ht_wk_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ht_wk_counters, &idx);

	if (v)
		*v += 1;
}

static __always_inline bool ht_wk_live(__u64 span)
{
	return span && bpf_map_lookup_elem(&ht_server_ctxs, &span);
}

/* Does the entry still say anything? A handed request lives until answered;
 * a doubt lives while either request it is about does. */
static __always_inline bool ht_wk_thread_live(const struct ht_wk_thread *t)
{
	if (t->span_id)
		return ht_wk_live(t->span_id);
	return ht_wk_live(t->hold[0]) || ht_wk_live(t->hold[1]);
}

static __always_inline __u64 ht_wk_switches(struct task_struct *t)
{
	return BPF_CORE_READ(t, nvcsw) + BPF_CORE_READ(t, nivcsw);
}

/* Records this hand-off as the reader's last; true if the last one before
 * it went to a worker that has not run since (then that worker's hand-off
 * is made doubtful too). The worker's task is read back with probe reads
 * (it may have exited: its tid must still match). */
static __always_inline bool ht_wk_last_pending(__u64 reader, struct task_struct *p, __u64 wakee,
					       __u64 span)
{
	struct ht_wk_reader *r = bpf_map_lookup_elem(&ht_wk_readers, &reader);
	struct ht_wk_reader now = {
		.task = (__u64)p, .switches = ht_wk_switches(p), .span_id = span, .tid = (__u32)wakee,
	};
	bool pending = false;

	if (r && r->tid != (__u32)wakee) {
		struct task_struct *last = (struct task_struct *)r->task;
		__u64 last_key = (wakee & ~0xffffffffULL) | r->tid;
		struct ht_wk_thread *lt;

		if (BPF_CORE_READ(last, pid) == r->tid && !BPF_CORE_READ(last, on_cpu) &&
		    ht_wk_switches(last) == r->switches) {
			lt = bpf_map_lookup_elem(&ht_wk_threads, &last_key);
			if (lt && lt->span_id == r->span_id && !lt->used) {
				lt->hold[0] = lt->span_id;
				lt->hold[1] = span;
				lt->span_id = 0;
				pending = true;
			}
		}
	}
	bpf_map_update_elem(&ht_wk_readers, &reader, &now, BPF_ANY);
	return pending;
}

/* The body of the tp_btf/sched_waking program (socket_trace.bpf.c: a program
 * here would be in every object that includes capture.bpf.h). */
static __always_inline int ht_wk_waking(struct task_struct *p)
{
	__u64 waker = bpf_get_current_pid_tgid();
	__u64 wakee = (__u64)p->tgid << 32 | (__u32)p->pid;
	struct ht_thread_ctx *q;
	struct ht_wk_thread *t, fresh = {};
	__u64 cand = 0, span, tail, *epoch;
	__u32 unhanded = 0, tgid = waker >> 32;

	if (wakee >> 32 != waker >> 32 || wakee == waker || !ht_pid_selected(waker >> 32))
		return 0;
	ht_wk_count(HT_WKC_SEEN);
	if (bpf_map_lookup_elem(&ht_thread_ctxs, &wakee)) {
		/* A worker that wakes the reader of the request it called out
		 * for hands its result back (a future): its part is done, and
		 * the next item it pops needs a hand-off of its own (the
		 * entry says nothing any more). */
		t = bpf_map_lookup_elem(&ht_wk_threads, &waker);
		if (t && t->used && t->span_id) {
			struct ht_server_ctx *c = bpf_map_lookup_elem(&ht_server_ctxs, &t->span_id);

			if (c && c->reader == wakee) {
				t->hold[0] = 0;
				t->hold[1] = 0;
				t->span_id = 0;
			}
		}
		ht_wk_count(HT_WKC_READER);
		return 0;
	}
	t = bpf_map_lookup_elem(&ht_wk_threads, &wakee);
	q = bpf_map_lookup_elem(&ht_thread_ctxs, &waker);
	if (t && t->used && t->span_id && ht_wk_live(t->span_id)) {
		/* Calling out for a live request: a wake-up by another worker
		 * (a lock) or the network says nothing. One by a reader may be
		 * the next item for a worker whose part is done while its
		 * reader has not answered yet (Python's submit().result()):
		 * doubt. */
		if (q && q->tail != q->head) {
			t->hold[0] = t->span_id;
			t->hold[1] = 0;
			t->span_id = 0;
			ht_wk_count(HT_WKC_AMBIGUOUS);
		}
		ht_wk_count(HT_WKC_BUSY);
		return 0;
	}
	if (!q) {
		/* A worker woken by another worker before it called out was
		 * waiting for the queue's lock: the other may have popped its
		 * item first. */
		if (t && t->span_id && !t->used && ht_wk_live(t->span_id)) {
			t->hold[0] = t->span_id;
			t->hold[1] = 0;
			t->span_id = 0;
			ht_wk_count(HT_WKC_AMBIGUOUS);
		}
		ht_wk_count(HT_WKC_NOISE);
		return 0;
	}
	tail = q->tail;
	for (int i = 0; i < HT_WK_SCAN; i++) {
		struct ht_thread_q_key k = { .pid_tgid = waker, .seq = tail - 1 - i };
		struct ht_server_ctx *c;
		__u64 *s, *to;

		if (k.seq < q->head || k.seq >= tail)
			break;
		s = bpf_map_lookup_elem(&ht_thread_q, &k);
		if (!s)
			continue;
		span = *s;
		c = bpf_map_lookup_elem(&ht_server_ctxs, &span);
		if (!c || c->reader != waker)
			continue;
		to = bpf_map_lookup_elem(&ht_wk_handed, &span);
		if (to)
			continue; /* some worker has it (maybe this one) */
		unhanded++;
		cand = span;
	}
	if (!unhanded) {
		ht_wk_count(HT_WKC_NOTHING);
		return 0;
	}
	if (unhanded > 1) {
		/* The worker may pop any of them. */
		fresh.hold[0] = cand;
		fresh.hold[1] = t && t->span_id ? t->span_id : 0;
		bpf_map_update_elem(&ht_wk_threads, &wakee, &fresh, BPF_ANY);
		ht_wk_count(HT_WKC_AMBIGUOUS);
		return 0;
	}
	if (t && ht_wk_thread_live(t)) {
		/* Woken again before it called out: for the request it was
		 * handed, or for this one? */
		fresh.hold[0] = cand;
		fresh.hold[1] = t->span_id ? t->span_id : t->hold[0];
		bpf_map_update_elem(&ht_wk_threads, &wakee, &fresh, BPF_ANY);
		bpf_map_update_elem(&ht_wk_handed, &cand, &wakee, BPF_ANY);
		ht_wk_count(HT_WKC_AMBIGUOUS);
		return 0;
	}
	bpf_map_update_elem(&ht_wk_handed, &cand, &wakee, BPF_ANY);
	if (ht_wk_last_pending(waker, p, wakee, cand)) {
		/* The worker woken before has not run yet: either may pop either. */
		fresh.hold[0] = cand;
		bpf_map_update_elem(&ht_wk_threads, &wakee, &fresh, BPF_ANY);
		ht_wk_count(HT_WKC_PENDING);
		return 0;
	}
	fresh.span_id = cand;
	epoch = bpf_map_lookup_elem(&ht_wk_epochs, &tgid);
	fresh.epoch = epoch ? *epoch : 0;
	bpf_map_update_elem(&ht_wk_threads, &wakee, &fresh, BPF_ANY);
	ht_wk_count(HT_WKC_HANDED);
	return 0;
}

/* At the entry of an outgoing connect or write of a selected process: a
 * worker a wake-up handed a request to (or left in doubt) answers for the
 * syscall, unless another runtime's setter already did (BPF_NOEXIST). */
static __always_inline void ht_wk_enter(__u64 pid_tgid)
{
	struct ht_rt_current v = { .source = HT_RT_WAKEUP };
	__u32 tgid = pid_tgid >> 32;
	struct ht_wk_thread *t;
	__u64 *epoch, one = 1;

	if (!targ_kernel_ctx)
		return;
	t = bpf_map_lookup_elem(&ht_wk_threads, &pid_tgid);
	epoch = bpf_map_lookup_elem(&ht_wk_epochs, &tgid);
	if (!t) {
		/* Never handed anything: the thread model applies; but a thread
		 * that reads no requests either took some worker's item. */
		if (epoch && !bpf_map_lookup_elem(&ht_thread_ctxs, &pid_tgid))
			__sync_fetch_and_add(epoch, 1);
		return;
	}
	if (bpf_map_lookup_elem(&ht_thread_ctxs, &pid_tgid)) {
		/* Woken before it read a request of its own (a thread per
		 * request, new): it serves what it reads, its own queue. */
		bpf_map_delete_elem(&ht_wk_threads, &pid_tgid);
		return;
	}
	if (t->span_id && !t->used && ht_wk_live(t->span_id) && epoch && *epoch != t->epoch) {
		/* Some worker called out unexplained since: it may have taken
		 * this one's item. */
		t->hold[0] = t->span_id;
		t->span_id = 0;
		ht_wk_count(HT_WKC_EPOCH);
	}
	if (!ht_wk_thread_live(t)) {
		/* Whatever this worker serves, no hand-off says which (a doubt
		 * about live requests explains it: one of them). */
		if (!epoch) {
			bpf_map_update_elem(&ht_wk_epochs, &tgid, &one, BPF_NOEXIST);
			epoch = bpf_map_lookup_elem(&ht_wk_epochs, &tgid);
		}
		if (epoch)
			__sync_fetch_and_add(epoch, 1);
	}
	v.span_id = t->span_id;
	if (t->span_id)
		t->used = 1;
	if (bpf_map_update_elem(&ht_rt_current, &pid_tgid, &v, BPF_NOEXIST) == 0)
		ht_wk_count(HT_WKC_USED);
}

/* At that syscall's exit: our entry only, a runtime's own stays its own. */
static __always_inline void ht_wk_exit(__u64 pid_tgid)
{
	struct ht_rt_current *rt;

	if (!targ_kernel_ctx)
		return;
	rt = bpf_map_lookup_elem(&ht_rt_current, &pid_tgid);
	if (rt && rt->source == HT_RT_WAKEUP)
		bpf_map_delete_elem(&ht_rt_current, &pid_tgid);
}

#endif /* HOPTRACE_BPF_RUNTIME_WAKEUP_BPF_H */
