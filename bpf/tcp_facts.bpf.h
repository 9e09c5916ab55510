/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* The shared logic of net_probe.bpf.c: which sockets are ours (socket_trace's
 * ht_sk_owners, whose fd the loader hands to this object), what TCP knows
 * about them, and the TTL of the packets that reach them. CO-RE reads only. */
#ifndef HOPTRACE_BPF_TCP_FACTS_BPF_H
#define HOPTRACE_BPF_TCP_FACTS_BPF_H

#include "maps.bpf.h"
#include "net_probe.h"

#define HT_ETH_P_IP 0x0800
#define HT_ETH_P_IPV6 0x86DD
#define HT_TCP_CA_LOSS 4

/* Set by the agent between open and load. */
const volatile __u64 targ_stats_interval_ns = 200000000; /* RTT samples per connection */

/* What this object remembers of a followed socket. It outlives the owner
 * entry (close(2) drops that before TCP sends its FIN or RST) and goes when
 * TCP destroys the socket (tcp:tcp_destroy_sock). */
struct hn_conn {
	__u64 conn_key; /* ht_conns key of the owner: tgid << 32 | fd */
	__u64 gen;
	__u64 last_emit_ns;
	__u64 last_check_ns; /* hn_sample's last look at TTL and RTT */
	__u32 srtt_us;
	__u32 rttvar_us;
	__u32 total_rto;
	__u8 ttl;
	__u8 emitted;
	__u16 _pad;
};

/* struct sock * -> its owner and what we last told the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct hn_conn);
} hn_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_NET_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hn_counters SEC(".maps");

static __always_inline void hn_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&hn_counters, &idx);

	if (v)
		*v += 1;
}

/* Our state of sk, (re)started from its owner when the owner is new. */
static __always_inline struct hn_conn *hn_conn_start(__u64 sk, const struct ht_sk_owner *owner)
{
	struct hn_conn fresh = { .conn_key = owner->conn_key, .gen = owner->gen };

	if (bpf_map_update_elem(&hn_conns, &sk, &fresh, BPF_ANY)) {
		hn_count(HT_NET_CNT_STATE_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&hn_conns, &sk);
}

/* Our state of sk, which socket_trace follows (owner). */
static __always_inline struct hn_conn *hn_conn_of(__u64 sk, const struct ht_sk_owner *owner)
{
	struct hn_conn *st = bpf_map_lookup_elem(&hn_conns, &sk);

	if (st && st->gen == owner->gen)
		return st;
	/* New to us, or a socket socket_trace registered again. */
	return hn_conn_start(sk, owner);
}

/* Our state of sk if socket_trace follows it now; NULL otherwise. One
 * lookup when not ours. */
static __always_inline struct hn_conn *hn_conn_followed(__u64 sk)
{
	struct ht_sk_owner *owner = bpf_map_lookup_elem(&ht_sk_owners, &sk);

	return owner ? hn_conn_of(sk, owner) : NULL;
}

/* Our state of sk if socket_trace follows it or followed it until close(2)
 * (which forgets the owner before TCP sends its last segments or a RST).
 * For rare events: two lookups when not ours. */
static __always_inline struct hn_conn *hn_conn_known(__u64 sk)
{
	struct ht_sk_owner *owner = bpf_map_lookup_elem(&ht_sk_owners, &sk);
	struct hn_conn *st = bpf_map_lookup_elem(&hn_conns, &sk);

	if (!owner || (st && st->gen == owner->gen))
		return st;
	return hn_conn_start(sk, owner);
}

/* TTL (IPv4) or hop limit (IPv6) of a packet whose buffer starts at head,
 * with its network header at nh and its ethertype proto (network order);
 * 0 if the header cannot be read. */
static __always_inline __u8 hn_ttl_at(unsigned char *head, __u16 nh, __u16 proto)
{
	__u8 ttl = 0;

	if (!head || nh == (__u16)~0U)
		return 0;
	if (proto == bpf_htons(HT_ETH_P_IP))
		bpf_probe_read_kernel(&ttl, 1, head + nh + offsetof(struct iphdr, ttl));
	else if (proto == bpf_htons(HT_ETH_P_IPV6))
		bpf_probe_read_kernel(&ttl, 1, head + nh + offsetof(struct ipv6hdr, hop_limit));
	return ttl;
}

/* skb as an untyped pointer (a syscall tracepoint's): every field through
 * bpf_probe_read_kernel. */
static __always_inline __u8 hn_skb_ttl(const struct sk_buff *skb)
{
	return hn_ttl_at(BPF_CORE_READ(skb, head), BPF_CORE_READ(skb, network_header),
			 BPF_CORE_READ(skb, protocol));
}

/* skb as a tp_btf argument (a trusted BTF pointer): its fields are plain
 * loads the verifier checks against BTF (Linux 5.5, 9e15db66136a "bpf:
 * Implement accurate raw_tp context access via BTF"), not three helper calls
 * per arriving segment. */
static __always_inline __u8 hn_skb_ttl_btf(const struct sk_buff *skb)
{
	return hn_ttl_at(skb->head, skb->network_header, skb->protocol);
}

static __always_inline void hn_emit(__u32 type, struct sock *sk, struct hn_conn *st, __u8 flags,
				    __u16 reason, __u64 now)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	struct ht_tcp_event ev = {};

	ev.hdr.type = type;
	ev.hdr.pid = st->conn_key >> 32;
	ev.hdr.fd = (__s32)st->conn_key;
	ev.hdr.conn_gen = st->gen;
	ev.hdr.ts_enter_ns = now;
	ev.hdr.ts_exit_ns = now;
	ev.srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	ev.rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2;
	ev.min_rtt_us = BPF_CORE_READ(tp, rtt_min.s[0].v);
	ev.total_retrans = BPF_CORE_READ(tp, total_retrans);
	/* total_rto came with Linux 6.7; older kernels report 0. */
	if (bpf_core_field_exists(tp->total_rto))
		ev.total_rto = BPF_CORE_READ(tp, total_rto);
	ev.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	ev.ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	ev.ttl = st->ttl;
	ev.flags = flags;
	ev.reason = reason;
	st->srtt_us = ev.srtt_us;
	st->rttvar_us = ev.rttvar_us;
	st->last_emit_ns = now;
	st->emitted = 1;
	if (bpf_ringbuf_output(&ht_events, &ev, sizeof(ev), 0))
		hn_count(HT_NET_CNT_RINGBUF_DROPS);
	else
		hn_count(HT_NET_CNT_EVENTS);
}

/* Whether a segment of a connection already described (TTL included)
 * arrives before the interval since the last look is over: then it says
 * nothing new and costs a counter. The clock is TCP's own (tcp_mstamp, microseconds of the same
 * monotonic clock, refreshed at the socket's last send or receive: at most
 * one exchange behind) instead of a clock read per segment (~28 ns here;
 * the coarse clock is not for tracing programs). TTL and RTT are looked at
 * once per interval. */
static __always_inline bool hn_between_samples(struct sock *sk, const struct hn_conn *st)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	/* Not before the TTL is known: an accept's sample may have found no
	 * segment queued to read it from. */
	return st->emitted && st->ttl && tp &&
	       tp->tcp_mstamp * 1000 < st->last_check_ns + targ_stats_interval_ns;
}

/* A segment arrived (ttl 0: unknown). Tells the agent on the first one, when
 * the TTL changes (a new route), and when the RTT moved, at most once per
 * targ_stats_interval_ns: a busy connection costs a few events a second. */
static __always_inline void hn_sample(struct sock *sk, struct hn_conn *st, __u8 ttl, __u16 reason)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 now = bpf_ktime_get_ns();
	bool ttl_new = ttl && ttl != st->ttl;
	__u16 why = reason;

	st->last_check_ns = now;
	if (ttl_new)
		st->ttl = ttl;
	if (!why) {
		if (!st->emitted)
			why = HT_TCP_SAMPLE_FIRST;
		else if (ttl_new)
			why = HT_TCP_SAMPLE_TTL;
		else if (now - st->last_emit_ns >= targ_stats_interval_ns &&
			 ((BPF_CORE_READ(tp, srtt_us) >> 3) != st->srtt_us ||
			  (BPF_CORE_READ(tp, mdev_us) >> 2) != st->rttvar_us))
			why = HT_TCP_SAMPLE_PERIODIC;
	}
	if (!why)
		return;
	/* A connection socket_trace found not to be HTTP makes no span: say
	 * nothing of it (one more lookup, per event, not per segment). */
	struct ht_conn_info *info = bpf_map_lookup_elem(&ht_conns, &st->conn_key);

	if (info && info->gen == st->gen && ht_proto_ignored(info->proto)) {
		st->emitted = 1; /* and ask again only once per interval */
		st->last_emit_ns = now;
		return;
	}
	hn_emit(HT_EV_TCP_STATS, sk, st, 0, why, now);
}

#endif /* HOPTRACE_BPF_TCP_FACTS_BPF_H */
