// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * The network half of a trace: for every TCP connection socket_trace.bpf.c
 * follows, what TCP knows (smoothed RTT and its variation, retransmissions,
 * timeouts, resets) and the TTL / hop limit of the packets that reach it.
 *
 * A separate object so that it can be left out (hoptrace run
 * --no-net-probes) or fail to load without costing the capture. The loader
 * gives it socket_trace's maps: ht_sk_owners says which sockets are ours,
 * ht_events carries our events in order with the data events.
 *
 * tcp tracepoints through tp_btf (typed, no copy of the arguments); one
 * syscall tracepoint (accept), because a request can reach a socket before
 * accept(2) returns it and socket_trace starts following it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "tcp_facts.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Every segment that reaches an established socket, on the whole host: the
 * hot path. Not ours: one lookup. Ours, until the interval is over
 * (hn_between_samples): that lookup, a counter and TCP's clock against the
 * time the owner entry keeps (quiet_until_us), not a second lookup for our
 * state (README, "Benchmarks": per run, one segment followed and one not
 * per nginx request, median 142 -> 132 ns reported). */
SEC("tp_btf/tcp_probe")
int BPF_PROG(hn_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = (__u64)sk;
	struct ht_sk_owner *owner = bpf_map_lookup_elem(&ht_sk_owners, &key);
	struct tcp_sock *tp;
	struct hn_conn *st;

	if (!owner)
		return 0;
	hn_count(HT_NET_CNT_SEGMENTS);
	tp = bpf_skc_to_tcp_sock(sk);
	if (tp && tp->tcp_mstamp < owner->quiet_until_us)
		return 0;
	st = hn_conn_of(key, owner);
	if (!st)
		return 0;
	if (!hn_between_samples(sk, st))
		hn_sample(sk, st, hn_skb_ttl_btf(skb), 0);
	/* Quiet until the next look is due, once there is nothing to wait
	 * for (the conditions of hn_between_samples). */
	if (st->emitted && st->ttl)
		owner->quiet_until_us = (st->last_check_ns + targ_stats_interval_ns) / 1000;
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int hn_tcp_retransmit(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct hn_conn *st;
	__u8 flags = 0;

	/* Count only what left, as the kernel does (total_retrans). Newer
	 * kernels report failed attempts too, with the error as a third
	 * argument; their event has an err field. Elsewhere the branch is gone
	 * before the verifier looks, and with it the read of a missing argument. */
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb, err) &&
	    (int)ctx[2] != 0)
		return 0;
	st = hn_conn_known((__u64)sk);
	if (!st)
		return 0;
	/* A timeout counts once, at its first retransmission (total_rto is
	 * raised before it, tcp_update_rto_stats()). Kernels before 6.7 lack
	 * the counter: there, any retransmission in the loss state counts. */
	if (bpf_core_field_exists(tp->total_rto)) {
		__u32 rto = BPF_CORE_READ(tp, total_rto);

		if (rto != st->total_rto)
			flags |= HT_TCP_F_TIMEOUT;
		st->total_rto = rto;
	} else if (BPF_CORE_READ_BITFIELD_PROBED((struct inet_connection_sock *)sk,
						 icsk_ca_state) == HT_TCP_CA_LOSS) {
		flags |= HT_TCP_F_TIMEOUT;
	}
	hn_emit(HT_EV_TCP_RETRANSMIT, sk, st, flags, 0, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(hn_tcp_receive_reset, struct sock *sk)
{
	struct hn_conn *st = hn_conn_known((__u64)sk);

	if (st)
		hn_emit(HT_EV_TCP_RESET_RECEIVED, sk, st, 0, 0, bpf_ktime_get_ns());
	return 0;
}

/* sk is NULL for a reset that answers a segment no socket wanted. Only the
 * first argument is read: the others changed over kernel versions. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(hn_tcp_send_reset, const struct sock *csk)
{
	struct hn_conn *st;

	if (!csk)
		return 0;
	st = hn_conn_known((__u64)csk);
	if (st)
		hn_emit(HT_EV_TCP_RESET_SENT, (struct sock *)csk, st, 0, 0, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(hn_tcp_destroy_sock, struct sock *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&hn_conns, &key);
	return 0;
}

/* A server's first request may have arrived before accept(2) returned the
 * socket: tcp_probe saw it while the socket was nobody's. Its IP header is
 * still in the receive queue. Runs after socket_trace's program on the same
 * tracepoint (attached later), which has registered the socket by now. */
static __always_inline int hn_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_conn_info *info;
	struct hn_conn *st;
	struct sk_buff *skb;
	struct sock *sk;
	__u64 key;

	if (ctx->ret < 0)
		return 0;
	key = ht_conn_key(pid_tgid >> 32, (__s32)ctx->ret);
	info = bpf_map_lookup_elem(&ht_conns, &key);
	if (!info)
		return 0;
	sk = (struct sock *)info->sk;
	st = hn_conn_followed(info->sk);
	if (!st)
		return 0;
	skb = BPF_CORE_READ(sk, sk_receive_queue.next);
	hn_sample(sk, st, skb && (void *)skb != (void *)&sk->sk_receive_queue ? hn_skb_ttl(skb) : 0,
		  HT_TCP_SAMPLE_ACCEPT);
	return 0;
}

SEC("tp/syscalls/sys_exit_accept")
int hn_exit_accept(struct trace_event_raw_sys_exit *ctx) { return hn_accept_exit(ctx); }

SEC("tp/syscalls/sys_exit_accept4")
int hn_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return hn_accept_exit(ctx); }
