// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Node.js runtime context (runtime_node.bpf.h): the announce and the writes
 * it binds. Loaded only when the user opted a process in (--node-inject);
 * its maps shared with socket_trace.bpf.c are that object's (the agent
 * reuses their fds, NodeRuntimeLoader). Attached after the capture, so at a
 * syscall's exit the capture's program has run before ht_rt_current goes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "runtime_node.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp/syscalls/sys_enter_pread64")
int ht_node_enter_pread64(struct trace_event_raw_sys_enter *ctx)
{
	ht_node_pread(bpf_get_current_pid_tgid(), (__s32)ctx->args[0], ctx->args[3]);
	return 0;
}

#define HT_NODE_SYSCALL(name, is_connect)                                  \
	SEC("tp/syscalls/sys_enter_" #name)                                \
	int ht_node_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                                  \
		ht_node_enter(bpf_get_current_pid_tgid(), (__s32)ctx->args[0], \
			      is_connect);                                 \
		return 0;                                                  \
	}                                                                  \
	SEC("tp/syscalls/sys_exit_" #name)                                 \
	int ht_node_exit_##name(struct trace_event_raw_sys_exit *ctx)      \
	{                                                                  \
		ht_node_exit(bpf_get_current_pid_tgid());                  \
		return 0;                                                  \
	}

HT_NODE_SYSCALL(connect, true)
HT_NODE_SYSCALL(write, false)
HT_NODE_SYSCALL(writev, false)
HT_NODE_SYSCALL(sendto, false)
HT_NODE_SYSCALL(sendmsg, false)

/* A process that execs or exits carries no script any more: forget it here,
 * at once (the agent forgets it too, later). */
static __always_inline void ht_node_gone(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;

	if ((__u32)pid_tgid != tgid)
		return; /* a thread; exec makes the caller the leader first */
	bpf_map_delete_elem(&ht_node_procs, &tgid);
}

/* BTF tracepoints (raw, typed): no trace record is built for them, and
 * their links close at once (a perf-event tracepoint's waits for grace
 * periods). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(ht_node_exec, struct task_struct *p)
{
	ht_node_gone();
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ht_node_exit_proc, struct task_struct *p)
{
	ht_node_gone();
	return 0;
}
