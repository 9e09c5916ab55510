/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events of net_probe.bpf.c: what TCP itself knows about the connections
 * socket_trace.bpf.c follows (RTT, retransmissions, resets, the TTL of
 * arriving packets). They travel in socket_trace's ring buffer, after the
 * same ht_event_header, so the agent sees them in order with the data.
 *
 * The event types (HT_EV_TCP_*) are in socket_trace.h's enum. Layout pinned
 * by tests/unit/event_layout_test.cc; change only by adding fields at the end.
 */
#ifndef HOPTRACE_BPF_NET_PROBE_H
#define HOPTRACE_BPF_NET_PROBE_H

#include "socket_trace.h"

/* Why a HT_EV_TCP_STATS event was sent (ht_tcp_event.reason). */
enum ht_tcp_sample_reason {
	HT_TCP_SAMPLE_FIRST = 1,    /* first segment of the connection we saw */
	HT_TCP_SAMPLE_TTL = 2,      /* the TTL / hop limit of arriving packets changed */
	HT_TCP_SAMPLE_PERIODIC = 3, /* RTT changed, at most once per targ_stats_interval_ns */
	HT_TCP_SAMPLE_ACCEPT = 4,   /* accept(2) returned it; TTL from its queued data */
};

/* ht_tcp_event.flags */
#define HT_TCP_F_TIMEOUT 0x1 /* retransmit: first one of a retransmission timeout (RTO) */

/* One event of a TCP connection followed by socket_trace. hdr.pid, hdr.fd
 * and hdr.conn_gen name that connection (hdr.tid is 0: these run in
 * softirq or timer context as often as not); ts_enter_ns == ts_exit_ns. */
struct ht_tcp_event {
	struct ht_event_header hdr;
	__u32 srtt_us;       /* smoothed RTT (tcp_sock.srtt_us >> 3) */
	__u32 rttvar_us;     /* its mean deviation (tcp_sock.mdev_us >> 2) */
	__u32 min_rtt_us;    /* windowed minimum RTT */
	__u32 total_retrans; /* segments retransmitted over the connection's life */
	__u32 total_rto;     /* retransmission timeouts over its life (0: kernel lacks it) */
	__u16 family;        /* AF_INET / AF_INET6 of the socket */
	__u8 ttl;            /* IPv4 TTL / IPv6 hop limit of the last arriving packet; 0: none */
	__u8 state;          /* TCP state (TCP_ESTABLISHED = 1, ...) */
	__u8 ca_state;       /* congestion state; 4 = loss (after a timeout) */
	__u8 flags;          /* HT_TCP_F_* */
	__u16 reason;        /* stats: enum ht_tcp_sample_reason; else 0 */
};

/* Indexes into the per-CPU counter array "hn_counters". */
enum ht_net_counter {
	HT_NET_CNT_RINGBUF_DROPS = 0, /* bpf_ringbuf_output failed: event lost */
	HT_NET_CNT_STATE_FULL = 1,    /* could not insert a connection into hn_conns */
	HT_NET_CNT_SEGMENTS = 2,      /* arriving segments of followed connections */
	HT_NET_CNT_EVENTS = 3,        /* events sent */
	HT_NET_CNT_MAX = 4,
};

#endif /* HOPTRACE_BPF_NET_PROBE_H */
