/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Go runtime context (issue 11): which request a goroutine serves.
 *
 * Goroutines migrate between OS threads, and net/http's client writes a
 * request from its connection's own writeLoop goroutine, so the thread
 * queue of context.bpf.h guesses wrong for Go. Instead:
 *
 * - A goroutine that reads a server request serves it (ht_go_bind, called
 *   where head_scan.bpf.h decides the server span): net/http reads a request
 *   and runs its handler on one goroutine.
 * - A goroutine created by one that serves a request serves it too
 *   (runtime.newproc1: the entry saves callergp, its return instructions
 *   read the new g; return sites found by disassembly, no uretprobes: Go
 *   moves stacks). Every creation re-binds the g, so reused g's never keep
 *   a dead goroutine's request.
 * - A channel send that wakes a parked receiver (runtime.send) hands the
 *   sender's request to the receiver, unless the receiver serves a request
 *   of its own (OWN/CHILD): the handler's send on persistConn.writech wakes
 *   the writeLoop, which then writes that handler's request. Mutex and
 *   WaitGroup wake-ups (semrelease) are not hand-offs and are not followed.
 *
 * At a syscall the agent asks about (egress writes and connect of a followed
 * socket) the current goroutine is read from the task's user registers: on
 * amd64 Go's ABIInternal keeps the current g in r14 (the agent checks that
 * the binary's runtime functions start with the r14 stack check before it
 * turns this on: ht_go_procs), and the syscall wrappers
 * (internal/runtime/syscall/linux.Syscall6) are ABIInternal. The answer goes
 * to ht_rt_current for that syscall only, as the contract in context.bpf.h
 * asks. Only processes the agent put in ht_go_procs are looked at.
 */
#ifndef HOPTRACE_BPF_RUNTIME_GO_BPF_H
#define HOPTRACE_BPF_RUNTIME_GO_BPF_H

#include "context.bpf.h"
#include "runtime_go.h"

/* Go processes whose runtime probes are attached (by the agent). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, __u32);
} ht_go_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ht_go_key);
	__type(value, struct ht_go_binding);
} ht_go_gs SEC(".maps");

/* runtime.newproc1 in flight per thread: its callergp. It runs on the
 * system stack, so the thread cannot switch goroutines before it returns. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid */
	__type(value, __u64);
} ht_go_newproc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_GOC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ht_go_counters SEC(".maps");

static __always_inline void ht_go_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ht_go_counters, &idx);

	if (v)
		*v += 1;
}

/* The current goroutine of a thread in a syscall: r14 of its user registers. */
static __always_inline __u64 ht_go_current_g(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);

	return BPF_CORE_READ(regs, r14);
}

/* The thread just read the head of server request span_id. */
static __always_inline void ht_go_bind(__u64 pid_tgid, __u64 span_id)
{
	__u32 tgid = pid_tgid >> 32;
	struct ht_go_key k = { .tgid = tgid };
	struct ht_go_binding b = { .span_id = span_id, .kind = HT_GO_OWN };

	if (!bpf_map_lookup_elem(&ht_go_procs, &tgid))
		return;
	k.g = ht_go_current_g();
	if (!k.g)
		return;
	b.origin_g = k.g;
	bpf_map_update_elem(&ht_go_gs, &k, &b, BPF_ANY);
	ht_go_count(HT_GOC_BOUND);
}

/* Entry of a syscall that may pick a server span (a write of a followed
 * socket, connect): tell context.bpf.h what the goroutine serves. A connect
 * gets "nothing": in Go the dialing goroutine is not the one that writes
 * (the connection's writeLoop does, and may write another request first),
 * so the first request must not be bound at connect. */
static __always_inline void ht_go_syscall_enter(__u64 pid_tgid, bool connect)
{
	__u32 tgid = pid_tgid >> 32;
	struct ht_go_key k = { .tgid = tgid };
	struct ht_go_binding *b = NULL;
	__u64 span = 0;

	if (!bpf_map_lookup_elem(&ht_go_procs, &tgid))
		return;
	if (!connect) {
		k.g = ht_go_current_g();
		b = k.g ? bpf_map_lookup_elem(&ht_go_gs, &k) : NULL;
		span = b ? b->span_id : 0;
	}
	/* Whose probed calls a request written now is made in: this
	 * goroutine's, else those of the one it works for. */
	ht_rt_set_stacks(pid_tgid, span, HT_RT_GO, k.g,
			 b && b->origin_g != k.g ? b->origin_g : 0);
	ht_go_count(span ? HT_GOC_SET : HT_GOC_UNBOUND);
}

/* A write of a followed socket moved bytes and made its picks: a request
 * handed over by a channel send is written now, so the hand-off is spent
 * (the connection's writeLoop serves the next request only if the next
 * send hands it over; a send into the channel's buffer, which wakes nobody,
 * then gives "none", not the last request's span). Clears the syscall's
 * answer as ht_go_syscall_exit does. */
static __always_inline void ht_go_write_done(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;
	struct ht_go_key k = { .tgid = tgid };
	struct ht_go_binding *b;

	if (!bpf_map_lookup_elem(&ht_go_procs, &tgid))
		return;
	ht_rt_clear(pid_tgid);
	k.g = ht_go_current_g();
	b = k.g ? bpf_map_lookup_elem(&ht_go_gs, &k) : NULL;
	if (b && b->kind == HT_GO_HANDOFF)
		bpf_map_delete_elem(&ht_go_gs, &k);
}

/* That syscall's exit. */
static __always_inline void ht_go_syscall_exit(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;

	if (bpf_map_lookup_elem(&ht_go_procs, &tgid))
		ht_rt_clear(pid_tgid);
}

#endif /* HOPTRACE_BPF_RUNTIME_GO_BPF_H */
