/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Trace context across TLS in a TCP header option (wire format:
 * tcp_ctx_option.h). Two halves, in two objects that share these maps (the
 * propagation object reuses the capture's, by name):
 *
 * Sender, selected processes only:
 *   - capture (head_scan.bpf.h ht_hs_request_out, at the first socket write
 *     of an SSL_write, or after it for memory BIOs): a TLS request's CLIENT
 *     context is staged by socket cookie with the sequence number of its
 *     first byte (the socket's write_seq then);
 *   - sockops (propagation.bpf.c, WRITE_HDR_OPT_CB_FLAG set at
 *     ACTIVE_ESTABLISHED only on sockets a selected process connected):
 *     HDR_OPT_LEN_CB reserves 28 bytes for the segment holding that byte
 *     (and in tcp_current_mss's call while it waits, so that segment sizes
 *     leave room), WRITE_HDR_OPT_CB checks the segment's sequence range and
 *     writes the option; the staged context is then forgotten.
 *
 * Receiver: sockops sets PARSE_UNKNOWN_HDR_OPT_CB_FLAG on passive sockets of
 * the propagation cgroup; PARSE_HDR_OPT_CB keeps the last context that came
 * by socket cookie; the capture's head scan (ht_hs_decide), for a TLS
 * request of a selected process with no traceparent, takes it as the
 * server span's remote parent, once. No option: the agent's same-host links
 * (counted: absent).
 *
 * Kernels: header-option callbacks and helpers since 5.10 (0813a841566f
 * "bpf: tcp: Allow bpf prog to write and parse TCP header option"); none of
 * this needs a pid in sockops, so 6.1's sockops (no
 * bpf_get_current_pid_tgid) runs it as it is. targ_tcp_option is off where
 * the agent's probe finds no bpf_reserve_hdr_opt.
 */
#ifndef HOPTRACE_BPF_TCP_CTX_OPTION_BPF_H
#define HOPTRACE_BPF_TCP_CTX_OPTION_BPF_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "context.bpf.h"
#include "tcp_ctx_option.h"

/* Set by the agent between open and load, in both objects. */
const volatile bool targ_tcp_option = false;

#define HT_TCPHDR_SYN 0x02
#define HT_ENOMSG 42
/* enum of the same name in linux/bpf.h: tcp_current_mss() asking, no skb. */
#define HT_WRITE_HDR_TCP_CURRENT_MSS 1

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* socket cookie */
	__type(value, struct ht_tcpopt_pending);
} ht_tcpopt_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* socket cookie */
	__type(value, struct ht_tcpopt_received);
} ht_tcpopt_in SEC(".maps");

/* The socket's cookie if someone asked for it already (sockops did, for
 * every socket it serves), else 0. */
static __always_inline __u64 ht_sk_cookie(__u64 sk)
{
	return BPF_CORE_READ((struct sock *)sk, __sk_common.skc_cookie.counter);
}

/* ---- sender, capture side ------------------------------------------------ */

/* The context of a TLS request whose writer serves no request: a new trace
 * (span id 0: no parent), in the context scratch. */
static __always_inline struct ht_server_ctx *ht_opt_root_ctx(void)
{
	__u32 zero = 0;
	struct ht_server_ctx *c = bpf_map_lookup_elem(&ht_ctx_scratch, &zero);

	if (!c)
		return NULL;
	ht_random_id(c->trace_id, 16);
	c->span_id = 0;
	c->flags = ht_sampled(c->trace_id, -1);
	c->tracestate_len = 0;
	c->claimed = 0;
	ht_ctx_count(HT_CTXC_OPT_ROOT);
	return c;
}

/* Hands the context of a TLS request (trace of c, parent span_id) to sockops
 * for the segment that will carry the request's first byte. */
static __always_inline void ht_opt_stage(const struct ht_conn_info *info,
					 const struct ht_server_ctx *c, const __u8 *span_id)
{
	/* Out of the CO-RE read: its access chain would be relocated too, and
	 * ht_conn_info is ours, not the kernel's. */
	struct tcp_sock *tp = (struct tcp_sock *)info->sk;
	struct ht_tcpopt_pending p = {};
	__u64 cookie = ht_sk_cookie(info->sk);
	__u16 exid = (c->flags & 1) ? HT_TCPOPT_EXID_SAMPLED : HT_TCPOPT_EXID_UNSAMPLED;

	if (!cookie) /* sockops never saw it: not a socket it serves */
		return;
	p.opt.kind = HT_TCPOPT_EXP;
	p.opt.len = HT_TCPOPT_CTX_LEN;
	p.opt.exid[0] = exid >> 8;
	p.opt.exid[1] = exid & 0xff;
	__builtin_memcpy(p.opt.trace_id, c->trace_id, 16);
	__builtin_memcpy(p.opt.parent_id, span_id, 8);
	p.seq = BPF_CORE_READ(tp, write_seq);
	if (!bpf_map_update_elem(&ht_tcpopt_out, &cookie, &p, BPF_ANY))
		ht_ctx_count(HT_CTXC_OPT_STAGED);
}

/* ---- receiver, capture side ---------------------------------------------- */

/* The context that came in a TCP option with this TLS request, if any and not
 * taken yet: trace id and parent id into the caller's buffers. */
static __always_inline bool ht_opt_take(const struct ht_conn_info *info, __u8 *trace_id,
					__u8 *parent_id, __u8 *flags)
{
	__u64 cookie = ht_sk_cookie(info->sk);
	struct ht_tcpopt_received *r;

	r = cookie ? bpf_map_lookup_elem(&ht_tcpopt_in, &cookie) : NULL;
	if (!r || r->taken) {
		ht_ctx_count(HT_CTXC_OPT_ABSENT);
		return false;
	}
	r->taken = 1;
	__builtin_memcpy(trace_id, r->trace_id, 16);
	__builtin_memcpy(parent_id, r->parent_id, 8);
	*flags = r->flags;
	ht_ctx_count(HT_CTXC_OPT_USED);
	return true;
}

/* ---- sockops ---------------------------------------------------------------
 * snd_nxt is the first byte of a segment carrying new data (tcp_write_xmit
 * sends at snd_nxt); a retransmission starts below it. */

static __always_inline int ht_opt_len(struct bpf_sock_ops *skops)
{
	struct ht_tcpopt_pending *p;
	__u32 nxt = skops->snd_nxt;
	__u64 cookie;
	bool mss = skops->args[0] == HT_WRITE_HDR_TCP_CURRENT_MSS;

	if (skops->skb_tcp_flags & HT_TCPHDR_SYN)
		return 1;
	if (!mss && skops->skb_len == 0) /* a pure ACK */
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	p = bpf_map_lookup_elem(&ht_tcpopt_out, &cookie);
	if (!p)
		return 1;
	if ((__s32)(nxt - p->seq) > 0) {
		/* Its first byte is out already (a write path we staged too
		 * late for, or a segment with no room). */
		bpf_map_delete_elem(&ht_tcpopt_out, &cookie);
		ht_ctx_count(HT_CTXC_OPT_UNSENT);
		return 1;
	}
	/* A segment [nxt, nxt + len) that ends before the request: nothing. */
	if (!mss && (__s32)(p->seq - (nxt + skops->skb_len)) >= 0)
		return 1;
	if (bpf_reserve_hdr_opt(skops, HT_TCPOPT_CTX_LEN, 0) && !mss) {
		bpf_map_delete_elem(&ht_tcpopt_out, &cookie);
		ht_ctx_count(HT_CTXC_OPT_NO_ROOM);
	}
	return 1;
}

static __always_inline int ht_opt_write(struct bpf_sock_ops *skops)
{
	struct ht_tcpopt_pending *p;
	struct tcphdr *th = skops->skb_data;
	__u32 seq, hdr, len;
	__u64 cookie;

	if (skops->args[0] == HT_WRITE_HDR_TCP_CURRENT_MSS)
		return 1;
	if ((void *)(th + 1) > skops->skb_data_end)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	p = bpf_map_lookup_elem(&ht_tcpopt_out, &cookie);
	if (!p)
		return 1;
	seq = bpf_ntohl(th->seq);
	hdr = th->doff * 4;
	len = skops->skb_len > hdr ? skops->skb_len - hdr : 0;
	/* The kernel fills reserved room we leave unused with NOPs. */
	if ((__s32)(p->seq - seq) < 0 || (__s32)(p->seq - (seq + len)) >= 0)
		return 1;
	if (bpf_store_hdr_opt(skops, &p->opt, sizeof(p->opt), 0))
		ht_ctx_count(HT_CTXC_OPT_NO_ROOM);
	else
		ht_ctx_count(HT_CTXC_OPT_SENT);
	bpf_map_delete_elem(&ht_tcpopt_out, &cookie);
	return 1;
}

static __always_inline bool ht_opt_ids_valid(const struct ht_tcp_ctx_option *o)
{
	__u64 t0, t1, s;

	__builtin_memcpy(&t0, o->trace_id, 8);
	__builtin_memcpy(&t1, o->trace_id + 8, 8);
	__builtin_memcpy(&s, o->parent_id, 8);
	return (t0 | t1) && s;
}

/* Same trace id and parent id (word loads: no memcmp in BPF). */
static __always_inline bool ht_opt_same(const struct ht_tcpopt_received *r,
					const struct ht_tcp_ctx_option *o)
{
	__u64 a[3], b[3];

	__builtin_memcpy(a, r->trace_id, 16);
	__builtin_memcpy(&a[2], r->parent_id, 8);
	__builtin_memcpy(b, o->trace_id, 16);
	__builtin_memcpy(&b[2], o->parent_id, 8);
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2];
}

static __always_inline int ht_opt_parse(struct bpf_sock_ops *skops)
{
	struct ht_tcp_ctx_option o = { .kind = HT_TCPOPT_EXP, .len = 4 };
	struct ht_tcpopt_received r = {}, *old;
	__u64 cookie;
	long n;

	o.exid[0] = HT_TCPOPT_EXID_SAMPLED >> 8;
	o.exid[1] = HT_TCPOPT_EXID_SAMPLED & 0xff;
	n = bpf_load_hdr_opt(skops, &o, sizeof(o), 0);
	if (n == -HT_ENOMSG) {
		__builtin_memset(&o, 0, sizeof(o));
		o.kind = HT_TCPOPT_EXP;
		o.len = 4;
		o.exid[0] = HT_TCPOPT_EXID_UNSAMPLED >> 8;
		o.exid[1] = HT_TCPOPT_EXID_UNSAMPLED & 0xff;
		n = bpf_load_hdr_opt(skops, &o, sizeof(o), 0);
		r.flags = 0;
	} else {
		r.flags = 1;
	}
	if (n != HT_TCPOPT_CTX_LEN || o.len != HT_TCPOPT_CTX_LEN || !ht_opt_ids_valid(&o))
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	old = bpf_map_lookup_elem(&ht_tcpopt_in, &cookie);
	/* The same option again (every segment cut from one TSO/GSO send
	 * carries it): nothing new, and a taken one stays taken. */
	if (old && ht_opt_same(old, &o))
		return 1;
	__builtin_memcpy(r.trace_id, o.trace_id, 16);
	__builtin_memcpy(r.parent_id, o.parent_id, 8);
	bpf_map_update_elem(&ht_tcpopt_in, &cookie, &r, BPF_ANY);
	ht_ctx_count(HT_CTXC_OPT_RECEIVED);
	return 1;
}

#endif /* HOPTRACE_BPF_TCP_CTX_OPTION_BPF_H */
