/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Kernel-side server context: while a selected process reads an HTTP/1.x
 * request, find `traceparent` and `tracestate` in its header block, decide
 * the server span's context (its W3C parent, or a new trace), make its span
 * id, remember it as what the reading thread serves (context.bpf.h) and tell
 * the agent (HT_EV_SERVER_CTX), which reports the server span with exactly
 * these ids.
 *
 * The header block is scanned one byte at a time with a state machine kept
 * per connection, so a head split over any number of reads is handled. Limits:
 * only the captured bytes of each read are seen (targ_max_payload); a head
 * whose rest was not captured is decided on what was (HT_CTX_F_HEAD_CUT). A
 * request is recognised only at the start of a read (a second pipelined
 * request in the same read keeps the agent's own decision), and a request
 * body that itself starts with "GET " would be taken for a request.
 */
#ifndef HOPTRACE_BPF_HEAD_SCAN_BPF_H
#define HOPTRACE_BPF_HEAD_SCAN_BPF_H

#include "context.bpf.h"
#include "runtime_go.bpf.h"
#include "tcp_ctx_option.bpf.h"
#include "w3c.bpf.h"

enum ht_hs_state {
	HT_HS_IDLE = 0,    /* between requests */
	HT_HS_REQLINE = 1, /* in the request line */
	HT_HS_LINE = 2,    /* at the start of a header line */
	HT_HS_NAME = 3,    /* in a field name that may be ours */
	HT_HS_TP = 4,      /* in a traceparent value */
	HT_HS_TS = 5,      /* in a tracestate value */
	HT_HS_SKIP = 6,    /* in a line we do not care about */
	HT_HS_CR = 7,      /* CR at the start of a line: the head may end */
	HT_HS_DONE = 8,    /* the empty line that ends the head */
};

#define HT_HS_CAND_TP 1
#define HT_HS_CAND_TS 2

/* Where a connection's request head scan stands, and the server span it is
 * serving (to forget it when the response starts). */
struct ht_head_scan {
	__u64 gen;      /* of the connection; another gen is a reused fd */
	__u64 head_ts;  /* entry of the read with the request's first byte */
	__u64 cur_span; /* the connection's open server span, 0 if none */
	__u16 tp_len;   /* characters of the traceparent value (saturating) */
	__u16 tp_nows;  /* ... up to its last non-OWS character */
	__u16 ts_len;   /* characters of the joined tracestate */
	__u16 ts_nows;
	__u16 ts_hdr;   /* characters of the current tracestate field so far */
	__u8 state;     /* enum ht_hs_state */
	__u8 name_pos;
	__u8 cand;      /* HT_HS_CAND_* still possible for this name */
	__u8 tp_count;  /* traceparent fields seen */
	__u8 ts_over;   /* the joined tracestate exceeded HT_TRACESTATE_MAX */
	__u8 _pad;
	/* The scan's position in the bytes of the current syscall: here, not in
	 * the bpf_loop context on the stack, whose exact values the verifier
	 * would follow step by step ("sequence of 8193 jumps is too complex"). */
	__u16 scan_pos;
	char tp[HT_TP_KEEP];
	char ts[HT_TRACESTATE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* ht_conn_key() */
	__type(value, struct ht_head_scan);
} ht_head_scans SEC(".maps");

/* Room for the tracestate check (bpf_loop context). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_ts_check);
} ht_ts_scratch SEC(".maps");

struct ht_hs_loop {
	struct ht_head_scan *h;
	const __u8 *buf; /* HT_MAX_PAYLOAD-masked reads */
	__u32 end;       /* bytes captured; h->scan_pos is the next to scan */
};

#define HT_HS_ONES 0x0101010101010101ULL
#define HT_HS_HIGHS 0x8080808080808080ULL

/* Whether the 8 bytes at buf[pos] hold no LF. A word has a zero byte iff
 * (w - 0x01..01) & ~w & 0x80..80 is non-zero; an LF is a zero byte of
 * w ^ 0x0a..0a. buf is the data scratch's payload, which has room for
 * HT_MAX_PAYLOAD more bytes past any masked offset. */
static __always_inline bool ht_hs_no_lf(const __u8 *buf, __u32 pos)
{
	__u64 w, x;

	__builtin_memcpy(&w, &buf[pos & (HT_MAX_PAYLOAD - 1)], sizeof(w));
	x = w ^ (0x0aULL * HT_HS_ONES);
	return !((x - HT_HS_ONES) & ~x & HT_HS_HIGHS);
}

static __always_inline bool ht_is_ows(__u8 c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9112: request-line = method SP request-target SP HTTP-version. The
 * methods capture.bpf.h recognises a stream by, less CONNECT (a tunnel),
 * as little-endian words of their first 4 bytes (no table: clang 14 puts a
 * 32-byte constant array in .rodata.cst32, which libbpf's BTF rejects):
 * HT_W, in maps.bpf.h. */

/* True if the first n bytes of b may begin a request (n < 4: a prefix). */
static __always_inline bool ht_is_request_start(const __u8 *b, __u32 n)
{
	__u32 w = 0, mask;

	if (n == 0)
		return false;
	if (n > 4)
		n = 4;
	for (int j = 0; j < 4; j++) {
		if (j < n)
			w |= (__u32)b[j] << (8 * j);
	}
	mask = n == 4 ? 0xffffffff : (1u << (8 * n)) - 1;
	return w == (HT_W('G', 'E', 'T', ' ') & mask) || w == (HT_W('P', 'O', 'S', 'T') & mask) ||
	       w == (HT_W('P', 'U', 'T', ' ') & mask) || w == (HT_W('P', 'A', 'T', 'C') & mask) ||
	       w == (HT_W('H', 'E', 'A', 'D') & mask) || w == (HT_W('D', 'E', 'L', 'E') & mask) ||
	       w == (HT_W('O', 'P', 'T', 'I') & mask) || w == (HT_W('T', 'R', 'A', 'C') & mask);
}

/* The field names we look for, lower case, as little-endian words (no
 * tables, see HT_W; HT_W8 in maps.bpf.h). */
#define HT_TP_NAME_LEN 11
#define HT_TS_NAME_LEN 10

static __always_inline __u8 ht_tp_name_at(__u32 pos)
{
	const __u64 w0 = HT_W8('t', 'r', 'a', 'c', 'e', 'p', 'a', 'r'), w1 = HT_W('e', 'n', 't', 0);

	return pos < 8 ? (w0 >> (8 * pos)) & 0xff : (w1 >> (8 * (pos & 7))) & 0xff;
}

static __always_inline __u8 ht_ts_name_at(__u32 pos)
{
	const __u64 w0 = HT_W8('t', 'r', 'a', 'c', 'e', 's', 't', 'a'), w1 = HT_W('t', 'e', 0, 0);

	return pos < 8 ? (w0 >> (8 * pos)) & 0xff : (w1 >> (8 * (pos & 7))) & 0xff;
}

/* One step of the scan: a byte, or, in the states that only look for the
 * line's end (the request line, a field that is not ours: most of a head),
 * eight bytes without an LF at once. bpf_loop calls it up to once per byte;
 * it stops the loop when the bytes are all scanned. */
static long ht_hs_step(__u64 i, struct ht_hs_loop *l)
{
	struct ht_head_scan *h = l->h;
	__u32 at = h->scan_pos;
	__u8 c, lc, pos;

	if (at >= l->end)
		return 1;
	if ((h->state == HT_HS_REQLINE || h->state == HT_HS_SKIP) && at + 8 <= l->end &&
	    ht_hs_no_lf(l->buf, at)) {
		h->scan_pos = at + 8;
		return 0;
	}
	c = l->buf[at & (HT_MAX_PAYLOAD - 1)];
	h->scan_pos = at + 1;
	switch (h->state) {
	case HT_HS_REQLINE:
	case HT_HS_SKIP:
		if (c == '\n')
			h->state = HT_HS_LINE;
		return 0;
	case HT_HS_CR:
		if (c == '\n') {
			h->state = HT_HS_DONE;
			return 1;
		}
		h->state = HT_HS_SKIP; /* a stray CR: not a field we know */
		return 0;
	case HT_HS_LINE:
		if (c == '\r') {
			h->state = HT_HS_CR;
			return 0;
		}
		if (c == '\n') { /* bare LF ends the head too (RFC 9112 2.2) */
			h->state = HT_HS_DONE;
			return 1;
		}
		h->state = HT_HS_NAME;
		h->name_pos = 0;
		h->cand = HT_HS_CAND_TP | HT_HS_CAND_TS;
		/* fall through: c is the name's first character */
	case HT_HS_NAME:
		pos = h->name_pos;
		if (c == ':') {
			if ((h->cand & HT_HS_CAND_TP) && pos == HT_TP_NAME_LEN) {
				h->state = HT_HS_TP;
				h->tp_len = 0;
				h->tp_nows = 0;
				if (h->tp_count < 255)
					h->tp_count++;
			} else if ((h->cand & HT_HS_CAND_TS) && pos == HT_TS_NAME_LEN) {
				h->state = HT_HS_TS;
				h->ts_hdr = 0;
			} else {
				h->state = HT_HS_SKIP;
			}
			return 0;
		}
		if (c == '\n') {
			h->state = HT_HS_LINE;
			return 0;
		}
		/* Field names are case-insensitive (RFC 9110 5.1). */
		lc = (c >= 'A' && c <= 'Z') ? c + 32 : c;
		if (pos >= HT_TP_NAME_LEN || lc != ht_tp_name_at(pos))
			h->cand &= ~HT_HS_CAND_TP;
		if (pos >= HT_TS_NAME_LEN || lc != ht_ts_name_at(pos))
			h->cand &= ~HT_HS_CAND_TS;
		if (!h->cand)
			h->state = HT_HS_SKIP;
		else
			h->name_pos = pos + 1;
		return 0;
	case HT_HS_TP:
		if (c == '\n') {
			h->tp_len = h->tp_nows; /* trailing OWS is not the value's */
			h->state = HT_HS_LINE;
			return 0;
		}
		if (c == '\r' || (ht_is_ows(c) && h->tp_len == 0))
			return 0; /* line end, or leading OWS */
		if (h->tp_len < HT_TP_KEEP)
			h->tp[h->tp_len & (HT_TP_KEEP - 1)] = c;
		if (h->tp_len < 0xffff)
			h->tp_len++;
		if (!ht_is_ows(c))
			h->tp_nows = h->tp_len;
		return 0;
	case HT_HS_TS:
		if (c == '\n') {
			h->ts_len = h->ts_nows;
			h->state = HT_HS_LINE;
			return 0;
		}
		if (c == '\r' || (ht_is_ows(c) && h->ts_hdr == 0))
			return 0;
		/* Several tracestate fields are one list joined by "," (W3C 3.3.1.1). */
		if (h->ts_hdr == 0 && h->ts_len > 0) {
			if (h->ts_len < HT_TRACESTATE_MAX)
				h->ts[h->ts_len & (HT_TRACESTATE_MAX - 1)] = ',';
			else
				h->ts_over = 1;
			h->ts_len++;
		}
		if (h->ts_len < HT_TRACESTATE_MAX)
			h->ts[h->ts_len & (HT_TRACESTATE_MAX - 1)] = c;
		else
			h->ts_over = 1;
		if (h->ts_len < 0xffff)
			h->ts_len++;
		if (h->ts_hdr < 0xffff)
			h->ts_hdr++;
		if (!ht_is_ows(c))
			h->ts_nows = h->ts_len;
		return 0;
	default:
		return 1;
	}
}

/* One HT_EV_SERVER_CTX / HT_EV_CLIENT_CTX event: the context c (trace id,
 * flags, tracestate) with this span id and parent id. */
static __always_inline void ht_send_ctx_event(__u32 type, __u64 pid_tgid, __s32 fd, __u64 gen,
					      __u64 ts_enter, const struct ht_server_ctx *c,
					      const __u8 *span_id, const __u8 *parent_id,
					      __u8 origin, __u8 ctx_flags)
{
	struct ht_ctx_event *ev = bpf_ringbuf_reserve(&ht_events, sizeof(*ev), 0);
	__u64 ts_len;

	if (!ev) {
		ht_count(HT_CNT_RINGBUF_DROPS);
		return;
	}
	ev->hdr.type = type;
	ev->hdr.pid = pid_tgid >> 32;
	ev->hdr.tid = (__u32)pid_tgid;
	ev->hdr.fd = fd;
	ev->hdr.conn_gen = gen;
	ev->hdr.ts_enter_ns = ts_enter;
	ev->hdr.ts_exit_ns = bpf_ktime_get_ns();
	__builtin_memcpy(ev->trace_id, c->trace_id, 16);
	__builtin_memcpy(ev->span_id, span_id, 8);
	__builtin_memcpy(ev->parent_id, parent_id, 8);
	ev->trace_flags = c->flags;
	ev->origin = origin;
	ev->ctx_flags = ctx_flags;
	ev->_pad = 0;
	ev->_pad2 = 0;
	ev->stack_ids[0] = 0;
	ev->stack_ids[1] = 0;
	if (type == HT_EV_CLIENT_CTX) {
		struct ht_rt_current *rt = bpf_map_lookup_elem(&ht_rt_current, &pid_tgid);

		if (rt) {
			ev->stack_ids[0] = rt->stack_ids[0];
			ev->stack_ids[1] = rt->stack_ids[1];
		}
	}
	/* Bounded right before the call, on the register passed (the empty
	 * asm): 6.1's verifier lost a bound made earlier across a spill. */
	ts_len = c->tracestate_len;
	asm volatile("" : "+r"(ts_len));
	if (ts_len > HT_TRACESTATE_MAX)
		ts_len = HT_TRACESTATE_MAX;
	ev->tracestate_len = ts_len;
	bpf_probe_read_kernel(ev->tracestate, ts_len, c->tracestate);
	bpf_ringbuf_submit(ev, 0);
}

/* Makes the server span's context from what the scan found, remembers it and
 * reports it. */
static __always_inline void ht_hs_decide(__u64 pid_tgid, struct ht_head_scan *h,
					 struct ht_conn_info *info, __s32 fd, bool cut)
{
	__u32 zero = 0;
	struct ht_server_ctx *c = bpf_map_lookup_elem(&ht_ctx_scratch, &zero);
	struct ht_ts_check *k = bpf_map_lookup_elem(&ht_ts_scratch, &zero);
	__u8 parent_id[8] = {}, in_flags = 0, origin = HT_CTX_NEW_TRACE, ctx_flags = 0;
	__u32 ts_len = 0;
	__u64 span;
	bool sampled;

	if (!c || !k)
		return;
	if (h->tp_count == 1 &&
	    ht_parse_traceparent(h->tp, h->tp_len, c->trace_id, parent_id, &in_flags)) {
		origin = HT_CTX_REMOTE;
	} else if (h->tp_count) {
		/* Invalid, or repeated (a list of two is no traceparent): restart
		 * the trace and ignore tracestate (W3C 3.2.2, 3.3). */
		origin = HT_CTX_INVALID;
	} else if (targ_tcp_option && info->tls &&
		   ht_opt_take(info, c->trace_id, parent_id, &in_flags)) {
		/* TLS: the caller's agent sent its CLIENT span below the
		 * ciphertext, in a TCP option (tcp_ctx_option.bpf.h). */
		origin = HT_CTX_REMOTE;
		ctx_flags |= HT_CTX_F_TCP_OPTION;
	}
	if (origin != HT_CTX_REMOTE)
		ht_random_id(c->trace_id, 16);
	ht_random_id((__u8 *)&c->span_id, 8);
	span = c->span_id;
	if (origin == HT_CTX_REMOTE && h->ts_len) {
		/* An invalid list is dropped whole: "failure to parse tracestate
		 * MUST NOT affect the parsing of traceparent". */
		if (!h->ts_over && ht_tracestate_valid(k, h->ts, h->ts_len))
			ts_len = h->ts_len;
		else
			ctx_flags |= HT_CTX_F_TRACESTATE_DROPPED;
	}
	if (ts_len > HT_TRACESTATE_MAX)
		ts_len = HT_TRACESTATE_MAX;
	bpf_probe_read_kernel(c->tracestate, ts_len, h->ts);
	c->tracestate_len = ts_len;
	sampled = ht_sampled(c->trace_id, origin == HT_CTX_REMOTE ? (in_flags & 1) : -1);
	c->flags = origin == HT_CTX_REMOTE ? ((in_flags & ~1) | sampled) : sampled;
	c->reader = pid_tgid;
	c->claimed = 0;
	if (cut) {
		ctx_flags |= HT_CTX_F_HEAD_CUT;
		ht_ctx_count(HT_CTXC_HEAD_CUT);
	}

	/* A request the connection never answered is over now. */
	if (h->cur_span)
		bpf_map_delete_elem(&ht_server_ctxs, &h->cur_span);
	if (bpf_map_update_elem(&ht_server_ctxs, &span, c, BPF_ANY) == 0) {
		h->cur_span = span;
		ht_thread_push(pid_tgid, span);
		ht_go_bind(pid_tgid, span);
	}
	ht_ctx_count(HT_CTXC_SERVER);
	if (origin == HT_CTX_REMOTE)
		ht_ctx_count(HT_CTXC_REMOTE);
	else if (origin == HT_CTX_INVALID)
		ht_ctx_count(HT_CTXC_INVALID);

	ht_send_ctx_event(HT_EV_SERVER_CTX, pid_tgid, fd, info->gen, h->head_ts, c, (__u8 *)&span,
			  parent_id, origin, ctx_flags);
}

/* An ingress syscall on a followed connection moved `captured` bytes (of ret)
 * now in buf: advance the connection's head scan. */
static __always_inline void ht_hs_ingress(__u64 pid_tgid, __u64 key, struct ht_conn_info *info,
					  const struct ht_io_args *a, __s64 ret, const __u8 *buf,
					  __u32 captured)
{
	struct ht_head_scan *h = bpf_map_lookup_elem(&ht_head_scans, &key);
	struct ht_hs_loop l;
	__u32 zero = 0;

	if (h && h->gen != info->gen) {
		if (h->cur_span)
			bpf_map_delete_elem(&ht_server_ctxs, &h->cur_span);
		h->gen = info->gen;
		h->cur_span = 0;
		h->state = HT_HS_IDLE;
	}
	if (!h || h->state == HT_HS_IDLE) {
		if (captured == 0 || !ht_is_request_start(buf, captured))
			return;
		if (!h) {
			/* Any bytes will do as the initial value (here the data
			 * scratch, big enough): every field that matters is set
			 * below. */
			void *init = bpf_map_lookup_elem(&ht_scratch, &zero);

			if (!init || bpf_map_update_elem(&ht_head_scans, &key, init, BPF_ANY))
				return;
			h = bpf_map_lookup_elem(&ht_head_scans, &key);
			if (!h)
				return;
			h->gen = info->gen;
			h->cur_span = 0;
		}
		h->head_ts = a->ts_enter;
		h->state = HT_HS_REQLINE;
		h->tp_count = 0;
		h->tp_len = 0;
		h->tp_nows = 0;
		h->ts_len = 0;
		h->ts_nows = 0;
		h->ts_hdr = 0;
		h->ts_over = 0;
	}
	l.h = h;
	l.buf = buf;
	l.end = captured;
	h->scan_pos = 0;
	bpf_loop(captured, ht_hs_step, &l, 0);
	if (h->state == HT_HS_DONE) {
		ht_hs_decide(pid_tgid, h, info, a->fd, false);
		h->state = HT_HS_IDLE;
	} else if ((__u64)ret > captured) {
		/* The rest of the head was not captured: decide on what was. */
		ht_hs_decide(pid_tgid, h, info, a->fd, true);
		h->state = HT_HS_IDLE;
	}
}

/* An egress syscall on a followed connection: a response that starts ends
 * the connection's server span as far as outgoing requests go. An interim
 * "HTTP/1.1 1xx" response does not. */
static __always_inline void ht_hs_egress(__u64 key, struct ht_conn_info *info, const __u8 *buf,
					 __u32 captured)
{
	struct ht_head_scan *h = bpf_map_lookup_elem(&ht_head_scans, &key);

	if (!h || h->gen != info->gen || !h->cur_span)
		return;
	if (captured >= 10 && buf[0] == 'H' && buf[9] == '1')
		return;
	bpf_map_delete_elem(&ht_server_ctxs, &h->cur_span);
	h->cur_span = 0;
}

/* Reports the context of an outgoing request (HT_EV_CLIENT_CTX): the server
 * span c it belongs to and its own span id (injected into the request, or
 * only picked: origin). */
static __always_inline void ht_emit_client_ctx(__u64 pid_tgid, const struct ht_io_args *a,
					       const struct ht_conn_info *info,
					       const struct ht_server_ctx *c, const __u8 *span_id,
					       __u8 ctx_flags, __u8 origin)
{
	ht_send_ctx_event(HT_EV_CLIENT_CTX, pid_tgid, a->fd, info->gen, a->ts_enter, c, span_id,
			  (const __u8 *)&c->span_id, origin, ctx_flags);
}

/* An outgoing request that the propagation sk_msg program did not see (its
 * socket is not in the sockhash: out of scope, or out for now under the read
 * guard): the kernel still picks, and claims, the server span it belongs to,
 * as for an injected one, so that later picks of the thread stay in order;
 * the agent gets the pick (origin HT_CTX_PICKED). A request that carries its
 * own traceparent claims one too (the head is not scanned here). */
static __always_inline void ht_hs_request_out(__u64 pid_tgid, const struct ht_io_args *a,
					      const struct ht_conn_info *info, const __u8 *buf,
					      __u32 captured)
{
	struct ht_server_ctx *c;
	__u8 span_id[8], origin = HT_CTX_PICKED, ctx_flags = 0;
	bool opt = targ_tcp_option && info->tls;

	if (!targ_kernel_ctx || a->prop_seen || info->role != HT_ROLE_CLIENT || captured < 4 ||
	    !ht_is_request_start(buf, 4))
		return;
	c = ht_thread_pick(pid_tgid, true);
	if (!c && opt) {
		/* TLS: the context goes on in a TCP option, so the kernel
		 * makes it even for a request that starts a trace. */
		c = ht_opt_root_ctx();
		origin = HT_CTX_NEW_CLIENT;
	}
	if (!c)
		return;
	ht_random_id(span_id, 8);
	if (opt) {
		ht_opt_stage(info, c, span_id);
		ctx_flags |= HT_CTX_F_TCP_OPTION;
	}
	ht_emit_client_ctx(pid_tgid, a, info, c, span_id, ctx_flags, origin);
}

/* The connection is gone: a request it never answered is over too (else an
 * event loop's next call could take it for the oldest unclaimed one). */
static __always_inline void ht_hs_conn_gone(__u64 key)
{
	struct ht_head_scan *h;

	if (!targ_kernel_ctx)
		return;
	h = bpf_map_lookup_elem(&ht_head_scans, &key);
	if (!h)
		return;
	if (h->cur_span)
		bpf_map_delete_elem(&ht_server_ctxs, &h->cur_span);
	bpf_map_delete_elem(&ht_head_scans, &key);
}

#endif /* HOPTRACE_BPF_HEAD_SCAN_BPF_H */
