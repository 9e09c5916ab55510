// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Capture of TCP connections and their HTTP bytes, from syscall tracepoints
 * only (no kprobes, no fentry: they are unavailable on the kernels we target).
 *
 * Entry programs save the arguments of a read/write-family syscall on a
 * followed socket; exit programs turn the bytes moved into a data event.
 * accept/connect register sockets with their role; close forgets them.
 * Uprobes on the TLS library add the plaintext of TLS sockets (tls.bpf.h);
 * the agent attaches them per library file (they have no target here).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "capture.bpf.h"
#include "tls_go.bpf.h"
#include "runtime_go_probes.bpf.h"
#include "runtime_python.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ARG(ctx, n) ((ctx)->args[n])

/* ---- process identity ----------------------------------------------------- */

/* flags: HT_IDENTITY_F_*; path: the exec'd file, in kernel memory, or NULL. */
static __always_inline void ht_emit_identity(__u32 pid, __u32 ppid, __u32 flags,
					     __u64 start_boottime, const char *comm,
					     const void *path)
{
	struct ht_proc_identity_event *ev;

	ev = bpf_ringbuf_reserve(&ht_events, sizeof(*ev), 0);
	if (!ev) {
		ht_count(HT_CNT_RINGBUF_DROPS);
		return;
	}
	ev->hdr.type = HT_EV_PROC_IDENTITY;
	ev->hdr.pid = pid;
	ev->hdr.tid = pid;
	ev->hdr.fd = -1;
	ev->hdr.conn_gen = 0;
	ev->hdr.ts_enter_ns = bpf_ktime_get_ns();
	ev->hdr.ts_exit_ns = ev->hdr.ts_enter_ns;
	ev->ppid = ppid;
	ev->flags = flags;
	ev->start_boottime_ns = start_boottime;
	/* Forks and execs share the cgroup of the task that runs them. */
	ev->cgroup_id = bpf_get_current_cgroup_id();
	bpf_probe_read_kernel_str(ev->comm, sizeof(ev->comm), comm);
	ev->path[0] = 0;
	if (path)
		bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), path);
	bpf_ringbuf_submit(ev, 0);
}

/* A process the kernel has not described yet (selected by --port, forked
 * under --all, older than the agent), at its first traced connection: it
 * surely still exists now, which it may not by the time the agent reads
 * /proc. */
static __always_inline void ht_identity_once(__u32 tgid)
{
	struct task_struct *task = ht_current_task();
	__u64 start = BPF_CORE_READ(task, start_boottime);
	__u64 *sent = bpf_map_lookup_elem(&ht_identity_sent, &tgid);

	if (sent && *sent == start)
		return;
	bpf_map_update_elem(&ht_identity_sent, &tgid, &start, BPF_ANY);
	ht_emit_identity(tgid, BPF_CORE_READ(task, real_parent, tgid), HT_IDENTITY_F_FIRST_SEEN,
			 start, task->comm,
			 BPF_CORE_READ(task, mm, exe_file, f_path.dentry, d_name.name));
}

/* ---- accept / connect ---------------------------------------------------- */

static __always_inline int ht_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (ctx->ret < 0)
		return 0;
	if (ht_conn_register(pid_tgid >> 32, (__s32)ctx->ret, HT_ROLE_SERVER))
		ht_identity_once(pid_tgid >> 32);
	ht_py_accepted_conn(pid_tgid, (__s32)ctx->ret);
	return 0;
}

SEC("tp/syscalls/sys_exit_accept")
int ht_exit_accept(struct trace_event_raw_sys_exit *ctx) { return ht_accept_exit(ctx); }

SEC("tp/syscalls/sys_exit_accept4")
int ht_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return ht_accept_exit(ctx); }

SEC("tp/syscalls/sys_enter_connect")
int ht_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__s32 fd = (__s32)ARG(ctx, 0);

	if (!ht_pid_selected(pid_tgid >> 32) && !targ_port_filter)
		return 0;
	ht_py_syscall_enter(pid_tgid);
	bpf_map_update_elem(&ht_active_connect, &pid_tgid, &fd, BPF_ANY);
	ht_go_syscall_enter(pid_tgid, true);
	ht_wk_enter(pid_tgid);
	return 0;
}

SEC("tp/syscalls/sys_exit_connect")
int ht_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__s32 *fd = bpf_map_lookup_elem(&ht_active_connect, &pid_tgid);
	__s32 sfd;

	ht_py_syscall_exit(pid_tgid);
	if (!fd)
		return 0;
	sfd = *fd;
	bpf_map_delete_elem(&ht_active_connect, &pid_tgid);
	ht_go_syscall_exit(pid_tgid);
	ht_wk_exit(pid_tgid);
	if ((ctx->ret == 0 || ctx->ret == -HT_EINPROGRESS) &&
	    ht_conn_register(pid_tgid >> 32, sfd, HT_ROLE_CLIENT))
		ht_identity_once(pid_tgid >> 32);
	return 0;
}

/* ---- reads ----------------------------------------------------------------- */

/* Entries only where the kernel cannot read a syscall's arguments at its exit
 * (targ_read_at_exit: the loader leaves these unloaded otherwise). */
SEC("tp/syscalls/sys_enter_read")
int ht_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return ht_io_enter(ARG(ctx, 0), ARG(ctx, 1), 0, HT_IO_BUF, HT_SYS_READ, HT_DIR_INGRESS);
}

SEC("tp/syscalls/sys_enter_readv")
int ht_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return ht_io_enter(ARG(ctx, 0), ARG(ctx, 1), ARG(ctx, 2), HT_IO_IOV, HT_SYS_READV,
			   HT_DIR_INGRESS);
}

SEC("tp/syscalls/sys_enter_recvfrom")
int ht_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	if (ARG(ctx, 3) & HT_MSG_PEEK)
		return 0;
	return ht_io_enter(ARG(ctx, 0), ARG(ctx, 1), 0, HT_IO_BUF, HT_SYS_RECVFROM, HT_DIR_INGRESS);
}

SEC("tp/syscalls/sys_enter_recvmsg")
int ht_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	if (ARG(ctx, 2) & HT_MSG_PEEK)
		return 0;
	return ht_msg_enter(ARG(ctx, 0), ARG(ctx, 1), HT_SYS_RECVMSG, HT_DIR_INGRESS);
}

#define HT_READ_EXIT(name, sys)                                            \
	SEC("tp/syscalls/sys_exit_" #name)                                 \
	int ht_exit_##name(struct trace_event_raw_sys_exit *ctx)           \
	{                                                                  \
		__u64 pid_tgid;                                            \
                                                                           \
		if (targ_read_at_exit)                                     \
			return ht_read_exit(ctx->ret, sys);                \
		pid_tgid = bpf_get_current_pid_tgid();                     \
		if (ht_may_own_conns(pid_tgid >> 32))                      \
			ht_io_exit(pid_tgid, ctx->ret, sys);               \
		return 0;                                                  \
	}

HT_READ_EXIT(read, HT_SYS_READ)
HT_READ_EXIT(readv, HT_SYS_READV)
HT_READ_EXIT(recvfrom, HT_SYS_RECVFROM)
HT_READ_EXIT(recvmsg, HT_SYS_RECVMSG)

/* ---- writes ---------------------------------------------------------------- */

SEC("tp/syscalls/sys_enter_write")
int ht_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return ht_io_enter(ARG(ctx, 0), ARG(ctx, 1), 0, HT_IO_BUF, HT_SYS_WRITE, HT_DIR_EGRESS);
}

SEC("tp/syscalls/sys_enter_writev")
int ht_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return ht_io_enter(ARG(ctx, 0), ARG(ctx, 1), ARG(ctx, 2), HT_IO_IOV, HT_SYS_WRITEV,
			   HT_DIR_EGRESS);
}

SEC("tp/syscalls/sys_enter_sendto")
int ht_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return ht_io_enter(ARG(ctx, 0), ARG(ctx, 1), 0, HT_IO_BUF, HT_SYS_SENDTO, HT_DIR_EGRESS);
}

SEC("tp/syscalls/sys_enter_sendmsg")
int ht_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return ht_msg_enter(ARG(ctx, 0), ARG(ctx, 1), HT_SYS_SENDMSG, HT_DIR_EGRESS);
}

/* One exit program per syscall: the tracepoints are per syscall. After the
 * pick in ht_io_exit, the syscall's runtime context (ht_rt_current) ends. */
#define HT_WRITE_EXIT(name, sys)                                           \
	SEC("tp/syscalls/sys_exit_" #name)                                 \
	int ht_exit_##name(struct trace_event_raw_sys_exit *ctx)           \
	{                                                                  \
		__u64 pid_tgid = bpf_get_current_pid_tgid();               \
                                                                           \
		if (!ht_may_own_conns(pid_tgid >> 32))                     \
			return 0;                                          \
		if (ht_io_exit(pid_tgid, ctx->ret, sys))                   \
			ht_wk_exit(pid_tgid);                              \
		ht_py_syscall_exit(pid_tgid);                              \
		return 0;                                                  \
	}

HT_WRITE_EXIT(write, HT_SYS_WRITE)
HT_WRITE_EXIT(writev, HT_SYS_WRITEV)
HT_WRITE_EXIT(sendto, HT_SYS_SENDTO)
HT_WRITE_EXIT(sendmsg, HT_SYS_SENDMSG)

#ifndef HT_NO_KERNEL_CTX
/* Native thread pools: wake-ups hand a request to a worker (runtime_wakeup.bpf.h). */
SEC("tp_btf/sched_waking")
int BPF_PROG(ht_wk_sched_waking, struct task_struct *p)
{
	return ht_wk_waking(p);
}
#endif

/* ---- TLS plaintext (uprobes, attached by the agent) ---------------------- */

/* int SSL_write(SSL *ssl, const void *buf, int num) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_write, void *ssl, const void *buf, int num)
{
	return ht_tls_enter((__u64)ssl, (__u64)buf, num > 0 ? num : 0, 0, HT_SYS_SSL_WRITE,
			    HT_DIR_EGRESS);
}

/* int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_write_ex, void *ssl, const void *buf, __u64 num, void *written)
{
	return ht_tls_enter((__u64)ssl, (__u64)buf, num, (__u64)written, HT_SYS_SSL_WRITE,
			    HT_DIR_EGRESS);
}

/* int SSL_read(SSL *ssl, void *buf, int num) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_read, void *ssl, void *buf, int num)
{
	return ht_tls_enter((__u64)ssl, (__u64)buf, num > 0 ? num : 0, 0, HT_SYS_SSL_READ,
			    HT_DIR_INGRESS);
}

/* int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_read_ex, void *ssl, void *buf, __u64 num, void *readbytes)
{
	return ht_tls_enter((__u64)ssl, (__u64)buf, num, (__u64)readbytes, HT_SYS_SSL_READ,
			    HT_DIR_INGRESS);
}

/* The return of all four: the entry saved which one it was. */
SEC("uretprobe")
int BPF_KRETPROBE(ht_ssl_return, int ret)
{
	return ht_tls_return(ret);
}

/* Go crypto/tls (tls_go.bpf.h), attached per Go process at the entry and at
 * each return instruction of the two methods. */

/* func (c *Conn) Write(b []byte) (int, error) */
SEC("uprobe")
int ht_gotls_write(struct pt_regs *ctx)
{
	return ht_gotls_enter(ctx, HT_SYS_GOTLS_WRITE, HT_DIR_EGRESS);
}

/* func (c *Conn) Read(b []byte) (int, error) */
SEC("uprobe")
int ht_gotls_read(struct pt_regs *ctx)
{
	return ht_gotls_enter(ctx, HT_SYS_GOTLS_READ, HT_DIR_INGRESS);
}

/* The return instructions of each (one program per direction: see
 * ht_gotls_emit). */
SEC("uprobe")
int ht_gotls_write_ret(struct pt_regs *ctx)
{
	return ht_gotls_return(ctx, HT_DIR_EGRESS);
}

SEC("uprobe")
int ht_gotls_read_ret(struct pt_regs *ctx)
{
	return ht_gotls_return(ctx, HT_DIR_INGRESS);
}

/* ---- close ----------------------------------------------------------------- */

SEC("tp/syscalls/sys_enter_close")
int ht_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__s32 fd = (__s32)ARG(ctx, 0);
	__u64 key = ht_conn_key(pid_tgid >> 32, fd);
	struct ht_conn_info *info;

	if (!ht_may_own_conns(pid_tgid >> 32))
		return 0;
	info = bpf_map_lookup_elem(&ht_conns, &key);
	if (!info)
		return 0;
	if (info->reported)
		ht_emit_conn(HT_EV_CONN_CLOSE, pid_tgid, fd, info, bpf_ktime_get_ns());
	bpf_map_delete_elem(&ht_sk_owners, &info->sk);
	bpf_map_delete_elem(&ht_conns, &key);
	ht_hs_conn_gone(key);
	return 0;
}

/* A tracked socket reached TCP_CLOSE while its connection was still in
 * ht_conns: it died without close(2) (exit, close_range, dup2 over the fd,
 * a reset). End the connection now rather than at the idle timeout. */
/* This and the process tracepoints below are BTF tracepoints (raw, typed):
 * they run for every socket and task on the machine, and unlike a perf-event
 * tracepoint no trace record is built before the program runs; their links
 * also close at once instead of waiting for grace periods. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(ht_sock_state, const struct sock *skp, int oldstate, int newstate)
{
	__u64 sk = (__u64)skp;
	struct ht_sk_owner *o;
	struct ht_conn_info *info;
	__u64 conn_key, gen;

	if (newstate != HT_TCP_CLOSE || BPF_CORE_READ(skp, sk_protocol) != HT_IPPROTO_TCP)
		return 0;
	o = bpf_map_lookup_elem(&ht_sk_owners, &sk);
	if (!o)
		return 0;
	conn_key = o->conn_key;
	gen = o->gen;
	bpf_map_delete_elem(&ht_sk_owners, &sk);
	info = bpf_map_lookup_elem(&ht_conns, &conn_key);
	if (!info || info->gen != gen)
		return 0;
	/* The owner, not whichever task runs this (often softirq context). */
	if (info->reported)
		ht_emit_conn(HT_EV_CONN_CLOSE, (conn_key & 0xffffffff00000000ULL) | (conn_key >> 32),
			     (__s32)conn_key, info, bpf_ktime_get_ns());
	bpf_map_delete_elem(&ht_conns, &conn_key);
	ht_hs_conn_gone(conn_key);
	return 0;
}

/* ---- process lifecycle ----------------------------------------------------- */

static __always_inline void ht_emit_proc(__u32 type, __u32 pid, __u32 tid, __u32 ppid,
					 __s32 exit_code)
{
	struct ht_proc_event ev = {};
	__u64 now = bpf_ktime_get_ns();

	ev.hdr.type = type;
	ev.hdr.pid = pid;
	ev.hdr.tid = tid;
	ev.hdr.fd = -1;
	ev.hdr.ts_enter_ns = now;
	ev.hdr.ts_exit_ns = now;
	ev.ppid = ppid;
	ev.exit_code = exit_code;
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	if (bpf_ringbuf_output(&ht_events, &ev, sizeof(ev), 0))
		ht_count(HT_CNT_RINGBUF_DROPS);
}

/* Children of a selected process are selected: forking servers (nginx
 * workers, gunicorn) serve from the child. Done here so no request of the
 * child can slip through before the agent hears of it. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(ht_sched_fork, struct task_struct *parent_task, struct task_struct *child_task)
{
	__u32 parent = BPF_CORE_READ(parent_task, tgid);
	__u32 child = BPF_CORE_READ(child_task, pid);

	/* A new thread (CLONE_THREAD: the child joins the parent's thread
	 * group) is not a new process: nothing to select or announce. */
	if (BPF_CORE_READ(child_task, tgid) == parent ||
	    !bpf_map_lookup_elem(&ht_selected_pids, &parent))
		return 0;
	ht_pid_set_selected(child, true);
	/* A child that never execs is known by its parent's name. */
	ht_emit_identity(child, parent, HT_IDENTITY_F_FORK, BPF_CORE_READ(child_task, start_boottime),
			 parent_task->comm, NULL);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ht_sched_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *task;
	__u64 pid_tgid = bpf_get_current_pid_tgid(), start;
	__u32 tgid = pid_tgid >> 32, flags = HT_IDENTITY_F_EXEC;
	char comm[HT_COMM_LEN] = {};

	if (tgid == targ_agent_tgid)
		return 0;
	if (!ht_pid_selected(tgid)) {
		/* Name matching (--exe) wants every exec; otherwise only a
		 * selected process's own exec matters: it changes who it is. */
		if (!targ_exec_events)
			return 0;
		/* comm is the basename of the new file by now (begin_new_exec). */
		bpf_get_current_comm(comm, sizeof(comm));
		if (!bpf_map_lookup_elem(&ht_selected_comms, comm)) {
			ht_emit_proc(HT_EV_PROC_EXEC, tgid, (__u32)pid_tgid, 0, 0);
			return 0;
		}
		ht_pid_set_selected(tgid, true);
		flags |= HT_IDENTITY_F_NAME_MATCH;
	}
	ht_py_proc_gone(tgid);
	task = ht_current_task();
	start = BPF_CORE_READ(task, start_boottime);
	bpf_map_update_elem(&ht_identity_sent, &tgid, &start, BPF_ANY);
	ht_emit_identity(tgid, BPF_CORE_READ(task, real_parent, tgid), flags, start, task->comm,
			 BPF_CORE_READ(bprm, filename));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ht_sched_exit, struct task_struct *p)
{
	struct task_struct *task = ht_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;

	/* Only the last thread of the group ends the process. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	if (!ht_pid_selected(tgid))
		return 0;
	ht_emit_proc(HT_EV_PROC_EXIT, tgid, (__u32)pid_tgid, BPF_CORE_READ(task, real_parent, tgid),
		     BPF_CORE_READ(task, exit_code));
	ht_py_proc_gone(tgid);
	ht_pid_set_selected(tgid, false);
	bpf_map_delete_elem(&ht_identity_sent, &tgid);
	return 0;
}
