// SPDX-License-Identifier: GPL-2.0
/* What a syscall hook costs a process the agent does not trace: the same
 * early return ("not selected") under the two ways a BPF program can see
 * syscalls without kprobes. build/tests/bench/ht_syscall_hook_bench loads
 * one pair at a time (syscall_hook_bench.cc says what each shows). */
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

char LICENSE[] SEC("license") = "GPL";
