// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Black-box context propagation for the processes of one cgroup (the agent
 * attaches ht_sockops to the cgroup the configuration names, and ht_sk_msg to
 * ht_prop_sockhash):
 *
 * - ht_sockops (ht_sockops_task on kernels before 6.10, see there), when a
 *   selected process connects: remembers in the socket which server span the
 *   connecting thread serves (context.bpf.h), and once the connection is
 *   established puts the socket in ht_prop_sockhash. Other processes'
 *   sockets never enter it.
 * - ht_sk_msg, on every message written to a socket in the sockhash: inserts
 *   a traceparent into HTTP/1.x requests that carry none (inject.bpf.h).
 * - TLS: ht_sockops writes a TLS request's context into a TCP option of the
 *   segment that starts it, and keeps the one a peer's agent sent on an
 *   accepted connection (tcp_ctx_option.bpf.h).
 * - The read guard (ht_read_guard, set by the agent on kernels whose
 *   sockhash answers FIONREAD with 0, see PropagationLoader): a socket is in
 *   the sockhash only while it has nothing to read. ht_sockops takes it out
 *   when the peer acknowledges what it wrote (BPF_SOCK_OPS_RTT_CB: under the
 *   socket lock, before any byte of the answer can be read); the agent puts
 *   it back once the process has read the whole response.
 *
 * The maps this object shares with socket_trace.bpf.c (selection, the
 * capture's connections and syscalls in flight, the contexts, the ring
 * buffer) are that object's: the agent reuses their fds.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "inject.bpf.h"
#include "sock.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define HT_EBUSY 16

/* Written by the agent after load (.bss): enum ht_guard_mode, see above. */
volatile __u8 ht_guard_mode = HT_GUARD_OFF;

/* Guard "detect": processes seen asking FIONREAD (their sockets are
 * guarded), and the sockets in the sockhash now (cookie -> tgid), so that a
 * FIONREAD on one of them is known at once. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} ht_fionread_users SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} ht_prop_armed SEC(".maps");

#define HT_FIONREAD 0x541B

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, __u64);
} ht_prop_sockhash SEC(".maps");

/* The connecting thread, in sockops: see ht_sockops and ht_sockops_task. */
static __always_inline __u64 ht_task_pid_tgid(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();

	return (__u64)BPF_CORE_READ(t, tgid) << 32 | (__u32)BPF_CORE_READ(t, pid);
}

static __always_inline int ht_sockops_run(struct bpf_sock_ops *skops, bool from_task)
{
	struct bpf_sock *sk = skops->sk;
	struct ht_prop_sock *ps;
	struct ht_server_ctx *c;
	__u64 pid_tgid, cookie;
	__u32 flags;
	long err;

	if (!sk)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* connect(2) runs this in the connecting thread: the one place
		 * where both the process and the request it serves are known. */
		pid_tgid = from_task ? ht_task_pid_tgid() : bpf_get_current_pid_tgid();
		if (!ht_prop_selected(pid_tgid >> 32, skops->remote_port))
			return 1;
		ps = bpf_sk_storage_get(&ht_prop_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!ps)
			return 1;
		ps->selected = 1;
		ps->tgid = pid_tgid >> 32;
		c = ht_thread_pick(pid_tgid, true);
		ps->bound_span = c ? c->span_id : 0;
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		/* softirq context: only the mark made at connect counts. */
		ps = bpf_sk_storage_get(&ht_prop_socks, sk, 0, 0);
		if (!ps || !ps->selected)
			return 1;
		cookie = bpf_get_socket_cookie(skops);
		ps->cookie = cookie;
		/* TLS requests of this socket may carry their context in a TCP
		 * option (tcp_ctx_option.bpf.h): the header callbacks. */
		flags = skops->bpf_sock_ops_cb_flags;
		if (targ_tcp_option)
			flags |= BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG;
		err = bpf_sock_hash_update(skops, &ht_prop_sockhash, &cookie, BPF_NOEXIST);
		if (!err) {
			ht_ctx_count(HT_CTXC_SOCK_ADDED);
			if (ht_guard_mode != HT_GUARD_OFF)
				flags |= BPF_SOCK_OPS_RTT_CB_FLAG;
			if (ht_guard_mode == HT_GUARD_DETECT)
				bpf_map_update_elem(&ht_prop_armed, &cookie, &ps->tgid, BPF_ANY);
		} else if (err == -HT_EBUSY)
			ht_ctx_count(HT_CTXC_SOCK_BUSY); /* another sk_msg program has it */
		else
			ht_ctx_count(HT_CTXC_SOCK_FAILED);
		if (flags != skops->bpf_sock_ops_cb_flags)
			bpf_sock_ops_cb_flags_set(skops, flags);
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		/* A connection accepted in the cgroup: contexts that come in a
		 * TCP option are kept by socket cookie (the cookie made now);
		 * only a selected process's reads take them. */
		if (!targ_tcp_option)
			return 1;
		bpf_get_socket_cookie(skops);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		/* Clear-text HTTP gets its traceparent in-band (sk_msg): no
		 * header callbacks for its segments from now on. */
		ps = bpf_sk_storage_get(&ht_prop_socks, sk, 0, 0);
		if (ps && ps->kind == HT_PK_HTTP) {
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
							 ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
			return 1;
		}
		return ht_opt_len(skops);
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		return ht_opt_write(skops);
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		return ht_opt_parse(skops);
	case BPF_SOCK_OPS_RTT_CB:
		/* The peer acknowledged bytes this socket sent (a request):
		 * an answer may follow, so out of the sockhash it goes (only
		 * sockets the guard armed get this callback). */
		ps = bpf_sk_storage_get(&ht_prop_socks, sk, 0, 0);
		if (!ps || !ps->cookie)
			return 1;
		/* "detect": only the sockets of processes that ask FIONREAD. */
		if (ht_guard_mode == HT_GUARD_DETECT &&
		    !bpf_map_lookup_elem(&ht_fionread_users, &ps->tgid))
			return 1;
		if (!bpf_map_delete_elem(&ht_prop_sockhash, &ps->cookie))
			ht_ctx_count(HT_CTXC_DISARMED);
		bpf_map_delete_elem(&ht_prop_armed, &ps->cookie);
		return 1;
	default:
		return 1;
	}
}

/* sockops may call bpf_get_current_pid_tgid() since eb166e522c77 ("bpf:
 * Allow helper bpf_get_[ns_]current_pid_tgid() for all prog types", 6.10).
 * Older kernels (Debian 12's 6.1) refuse the program ("unknown func"); there
 * the agent loads ht_sockops_task instead, which reads the same ids from the
 * current task (bpf_get_current_task and bpf_probe_read_kernel are allowed
 * in every program type of a CAP_PERFMON loader since f470378c7562 ("bpf:
 * Extend bpf_base_func_proto helpers with probe_* and *current_task*", 5.8)).
 * The agent probes which one this kernel takes and loads only that one. */
SEC("sockops")
int ht_sockops(struct bpf_sock_ops *skops)
{
	return ht_sockops_run(skops, false);
}

SEC("sockops")
int ht_sockops_task(struct bpf_sock_ops *skops)
{
	return ht_sockops_run(skops, true);
}

/* Guard "detect" (attached only then): a FIONREAD by a selected process, or
 * on a socket in the sockhash. The process is marked (its sockets are
 * guarded from now on); when the socket was in the sockhash this kernel
 * answered 0 whatever waits, and the agent takes the socket out and wakes
 * its reader (HT_EV_FIONREAD). */
SEC("tracepoint/syscalls/sys_enter_ioctl")
int ht_ioctl_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid, cookie = 0;
	struct ht_fionread_event *ev;
	struct sock *sk;
	__u32 tgid, flags = 0;
	__u8 one = 1;

	if ((__u32)ctx->args[1] != HT_FIONREAD || ht_guard_mode != HT_GUARD_DETECT)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	sk = ht_tcp_sock_of_fd((__s32)ctx->args[0]);
	if (!sk)
		return 0;
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (cookie && bpf_map_lookup_elem(&ht_prop_armed, &cookie))
		flags |= HT_FIONREAD_F_ARMED;
	else if (!ht_pid_selected(tgid))
		return 0;
	if (!bpf_map_lookup_elem(&ht_fionread_users, &tgid)) {
		bpf_map_update_elem(&ht_fionread_users, &tgid, &one, BPF_ANY);
		flags |= HT_FIONREAD_F_FIRST;
	}
	if (!flags)
		return 0;
	ev = bpf_ringbuf_reserve(&ht_events, sizeof(*ev), 0);
	if (!ev) {
		ht_count(HT_CNT_RINGBUF_DROPS);
		return 0;
	}
	ev->hdr.type = HT_EV_FIONREAD;
	ev->hdr.pid = tgid;
	ev->hdr.tid = (__u32)pid_tgid;
	ev->hdr.fd = (__s32)ctx->args[0];
	ev->hdr.conn_gen = 0;
	ev->hdr.ts_enter_ns = bpf_ktime_get_ns();
	ev->hdr.ts_exit_ns = ev->hdr.ts_enter_ns;
	ev->flags = flags;
	ev->_pad = 0;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("sk_msg")
int ht_sk_msg(struct sk_msg_md *msg)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_prop_sock *ps;
	struct ht_io_args *a;
	__u32 size;

	/* The writer, not just the socket's creator, must be selected (a
	 * socket can be inherited or passed to another process). */
	if (!ht_prop_selected(pid_tgid >> 32, msg->remote_port))
		return SK_PASS;
	if (!msg->sk)
		return SK_PASS;
	/* The capture must not pick a context for this write too. */
	a = bpf_map_lookup_elem(&ht_active_io, &pid_tgid);
	if (a && a->live)
		a->prop_seen = 1;
	ps = bpf_sk_storage_get(&ht_prop_socks, msg->sk, 0, 0);
	if (!ps || ps->kind == HT_PK_OTHER)
		return SK_PASS;
	size = msg->size;
	ht_msg_inject(msg, pid_tgid, ps);
	if (msg->size != size) /* the agent compares the kernel's counts with its own */
		ps->wire_delta += (__s64)msg->size - (__s64)size;
	return SK_PASS;
}
