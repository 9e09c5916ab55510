// SPDX-License-Identifier: GPL-2.0
/* What a hook costs a process the agent does not trace: the same early
 * return ("not selected") under the two ways a BPF program can see syscalls
 * without kprobes, and a tcp_probe program (every segment reaching an
 * established socket on the host) with and without the lookup hoptrace's
 * hn_tcp_probe makes for a socket that is not ours.
 * build/tests/bench/ht_syscall_hook_bench loads one set at a time
 * (syscall_hook_bench.cc says what each shows). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 targ_tgid = 0; /* never the bench itself: it is "not selected" */
__u64 hits = 0;

static __always_inline int selected(void)
{
	if ((bpf_get_current_pid_tgid() >> 32) != targ_tgid)
		return 0;
	__sync_fetch_and_add(&hits, 1);
	return 0;
}

/* hoptrace's way: one perf-backed event per syscall kind and direction. */
SEC("tracepoint/syscalls/sys_enter_write")
int tp_enter_write(void *ctx) { return selected(); }

SEC("tracepoint/syscalls/sys_exit_write")
int tp_exit_write(void *ctx) { return selected(); }

/* The alternative: the raw sys_enter/sys_exit pair, every syscall of every
 * process, dispatched by number inside the program. */
SEC("tp_btf/sys_enter")
int BPF_PROG(raw_enter, struct pt_regs *regs, long id)
{
	if (id != 1 /* __NR_write */)
		return 0;
	return selected();
}

SEC("tp_btf/sys_exit")
int BPF_PROG(raw_exit, struct pt_regs *regs, long ret)
{
	return selected();
}

/* Sockets "followed": never one of the bench's own, like ht_sk_owners for a
 * socket of a process nobody selected (same map type and size). */
struct sk_owner {
	__u64 conn_key;
	__u64 gen;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sk_owner);
} owners SEC(".maps");

__u64 tcp_runs = 0;

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_trivial, struct sock *sk, const struct sk_buff *skb)
{
	__sync_fetch_and_add(&tcp_runs, 1);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_lookup, struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = (__u64)sk;

	__sync_fetch_and_add(&tcp_runs, 1);
	if (bpf_map_lookup_elem(&owners, &key))
		__sync_fetch_and_add(&hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
