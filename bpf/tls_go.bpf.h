/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * TLS plaintext of Go programs: uprobes on crypto/tls.(*Conn).Write and
 * (*Conn).Read, at their entry and at each of their return instructions
 * (found by disassembly: Go copies goroutine stacks while a call runs, so a
 * uretprobe's hijacked return address would move under the kernel's feet).
 *
 * Go's amd64 ABIInternal (Go 1.17+; the agent checks the functions start
 * with the R14 stack check) passes (c *Conn, b []byte) in AX, BX, CX and
 * returns (n int, err error) in AX, BX, CX; R14 holds the current g.
 *
 * The socket: the tls.Conn's own net.Conn, followed at the entry through
 * the *net.TCPConn (its itab is compared with the one the agent found in the
 * binary) to netFD -> poll.FD.Sysfd. Not the syscall made inside the call:
 * a Read served from crypto/tls's buffer makes none, a Read that would block
 * parks the goroutine and resumes it on another thread, and the syscall
 * programs could only tell the goroutine from the task's user registers
 * (bpf_task_pt_regs needs a BTF task: 5.11+). The fd is known before any
 * byte moves, so the socket is marked TLS (its ciphertext ignored by the
 * syscall programs: ht_tls_on_syscall) before the call writes any.
 *
 * Entry state is keyed by goroutine (tgid, g), not by thread.
 *
 * Order (see tls.bpf.h): a Write of at most one TLS record goes out at its
 * entry, before its ciphertext can reach the peer; longer ones, and every
 * Read, at the return, with the byte count the call returned.
 *
 * Included by socket_trace.bpf.c after capture.bpf.h (ht_emit_io, tls.bpf.h).
 */
#ifndef HOPTRACE_BPF_TLS_GO_BPF_H
#define HOPTRACE_BPF_TLS_GO_BPF_H

#include "tls_go.h"

/* Go processes whose crypto/tls is probed (set by the agent). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct ht_gotls_proc);
} ht_gotls_procs SEC(".maps");

struct ht_gotls_call {
	__u64 buf;
	__u64 num; /* len(b) */
	__u64 ts_enter;
	__u64 gen; /* the connection's generation at the entry */
	__s32 fd;
	__u16 syscall;  /* HT_SYS_GOTLS_READ / HT_SYS_GOTLS_WRITE */
	__u8 direction; /* enum ht_direction */
	__u8 _pad;
};

/* A call in flight per goroutine. LRU: a call a panic unwound costs a slot
 * until the goroutine's next call (or another) takes it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ht_gotls_key);
	__type(value, struct ht_gotls_call);
} ht_gotls_calls SEC(".maps");

/* The fd under tls.Conn c of process p, or -1 when its net.Conn is not a
 * *net.TCPConn. */
static __always_inline __s32 ht_gotls_fd(const struct ht_gotls_proc *p, __u64 c)
{
	__u64 iface[2] = {}, netfd = 0;
	__s64 sysfd = -1;

	if (bpf_probe_read_user(iface, sizeof(iface), (void *)(c + p->conn_off)) ||
	    iface[0] != p->tcpconn_itab || !iface[1])
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(iface[1] + p->netfd_off)) || !netfd)
		return -1;
	if (bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + p->sysfd_off)) ||
	    sysfd < 0 || sysfd > 0x7fffffff)
		return -1;
	return (__s32)sysfd;
}

/* Sends a call's plaintext as a data event of its connection. direction is
 * a constant at each call site: each program is verified for one direction
 * only (the ingress and egress paths of ht_emit_io together cost the
 * verifier twice as much). */
static __always_inline void ht_gotls_emit(__u64 pid_tgid, const struct ht_gotls_call *call,
					  struct ht_conn_info *info, __u64 moved, const __u8 direction)
{
	struct ht_io_args args = {};
	__u64 key = ht_conn_key(pid_tgid >> 32, call->fd);

	args.ts_enter = call->ts_enter;
	args.arg = call->buf;
	args.fd = call->fd;
	args.syscall = call->syscall;
	args.kind = HT_IO_BUF;
	args.direction = direction;
	/* Go: the goroutine's request, for the kernel-side contexts of a
	 * request written now (runtime_go.bpf.h), as at a write syscall. */
	if (direction == HT_DIR_EGRESS)
		ht_go_syscall_enter(pid_tgid, false);
	ht_emit_io(pid_tgid, key, info, &args, (__s64)moved, false);
	if (direction == HT_DIR_EGRESS)
		ht_go_syscall_exit(pid_tgid);
}

static __always_inline int ht_gotls_enter(struct pt_regs *ctx, __u16 syscall, __u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_gotls_key k = { .tgid = pid_tgid >> 32, .g = ctx->r14 };
	struct ht_gotls_proc *p = bpf_map_lookup_elem(&ht_gotls_procs, &k.tgid);
	struct ht_gotls_call call = {};
	struct ht_conn_info *info;
	__s32 fd;

	if (!p || !k.g)
		return 0;
	fd = ht_gotls_fd(p, ctx->ax);
	if (fd < 0) {
		ht_count(HT_CNT_GOTLS_NO_FD);
		return 0;
	}
	info = ht_conn_lookup(k.tgid, fd);
	if (!info)
		return 0; /* not a followed socket */
	ht_tls_mark(info);
	call.buf = ctx->bx;
	call.num = ctx->cx;
	call.ts_enter = bpf_ktime_get_ns();
	call.gen = info->gen;
	call.fd = fd;
	call.syscall = syscall;
	call.direction = direction;
	if (direction == HT_DIR_EGRESS && call.num > 0 && call.num <= HT_TLS_RECORD_MAX) {
		/* One record: out now, before its ciphertext (no return state). */
		ht_count(HT_CNT_GOTLS_CALLS);
		ht_gotls_emit(pid_tgid, &call, info, call.num, HT_DIR_EGRESS);
		return 0;
	}
	bpf_map_update_elem(&ht_gotls_calls, &k, &call, BPF_ANY);
	return 0;
}

/* At a return instruction of the method of `direction`: AX = n, the bytes
 * the call moved. */
static __always_inline int ht_gotls_return(struct pt_regs *ctx, const __u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_gotls_key k = { .tgid = pid_tgid >> 32, .g = ctx->r14 };
	struct ht_gotls_call *c = bpf_map_lookup_elem(&ht_gotls_calls, &k);
	struct ht_gotls_call call;
	struct ht_conn_info *info;
	__s64 n = (__s64)ctx->ax;
	__u64 key;

	if (!c)
		return 0;
	call = *c;
	bpf_map_delete_elem(&ht_gotls_calls, &k);
	if (call.direction != direction)
		return 0; /* not this method's call (cannot happen: no nesting) */
	if (n <= 0 || n > 0x7fffffff || (__u64)n > call.num)
		return 0;
	key = ht_conn_key(k.tgid, call.fd);
	info = bpf_map_lookup_elem(&ht_conns, &key);
	if (!info || info->gen != call.gen)
		return 0; /* closed (and the fd perhaps reused) meanwhile */
	ht_count(HT_CNT_GOTLS_CALLS);
	ht_gotls_emit(pid_tgid, &call, info, (__u64)n, direction);
	return 0;
}

#endif /* HOPTRACE_BPF_TLS_GO_BPF_H */
