/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * traceparent injection into HTTP/1.x requests, for the sk_msg program of
 * propagation.bpf.c: recognise a request at the start of a message, leave it
 * alone if its head already has a valid traceparent, else insert
 *   traceparent: 00-<trace id>-<new span id>-<flags>\r\n
 *   tracestate: <the server span's tracestate>\r\n      (when it has one)
 * right after the request line with bpf_msg_push_data (an invalid or repeated
 * traceparent, and its tracestate, are taken out first), and report the new
 * span id to the agent (HT_EV_CLIENT_CTX).
 *
 * Limits: the head is looked at in the first HT_INJ_SCAN bytes of the
 * message; a traceparent the application writes later, in another write,
 * is not seen (and the request ends up with two). The request line must be
 * in the message that starts the request.
 */
#ifndef HOPTRACE_BPF_INJECT_BPF_H
#define HOPTRACE_BPF_INJECT_BPF_H

#include "head_scan.bpf.h"

#define HT_INJ_SCAN 4096 /* bytes of a message looked at; power of two */
#define HT_INJ_MAX 2048  /* room for the inserted lines; power of two */
#define HT_TP_LINE_LEN 70 /* "traceparent: " 55 "\r\n" */
#define HT_INJ_LINEARIZE_MAX 65536 /* messages made one piece again after insertion */

/* Sockets whose first message was not an HTTP request: the agent takes them
 * out of the sockhash (only its own bpf(2) may: sk_msg programs cannot
 * delete from a sockmap), so they get the kernel's plain TCP paths back
 * (kernels that lack the tcp_bpf_ioctl fix answer FIONREAD with 0 for
 * sockets in a sockmap). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* socket cookie */
	__type(value, __u8);
} ht_prop_release SEC(".maps");

static __always_inline void ht_prop_not_http(struct ht_prop_sock *ps)
{
	__u8 one = 1;

	if (ps->kind != HT_PK_UNKNOWN)
		return;
	ps->kind = HT_PK_OTHER;
	ht_ctx_count(HT_CTXC_NOT_HTTP);
	if (ps->cookie)
		bpf_map_update_elem(&ht_prop_release, &ps->cookie, &one, BPF_ANY);
}

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ht_prop_sock);
} ht_prop_socks SEC(".maps");

#define HT_RQ_MAX_CUT 4 /* traceparent/tracestate lines we can take out */

/* The scan's state lives in the per-CPU scratch, not on the stack: the
 * verifier follows the values of a stack context exactly, and a bpf_loop
 * callback whose context changes is verified again for every new state it can
 * reach (since 6.7, ab5cfac139ab "bpf: verify callbacks as if they are called
 * unknown number of times"): a byte-scanning state machine made ht_sk_msg
 * pass the one-million-instruction limit. Map memory is just "some value" to
 * the verifier, so the callback is verified a few times, whatever it scans. */
struct ht_req_loop {
	__u32 state;
	__u32 pos;
	__u32 cand;
	__u32 line1_end;  /* index after the request line's LF, 0 if not seen */
	__u32 line_start; /* of the current header line */
	__u32 ncut;       /* traceparent/tracestate lines seen */
	__u32 cut_start[HT_RQ_MAX_CUT];
	__u32 cut_end[HT_RQ_MAX_CUT];
	__u32 tp_count;
	__u32 tp_len;
	__u32 tp_nows;
	char tp[HT_TP_KEEP];
};

struct ht_msg_scratch {
	__u8 buf[HT_INJ_SCAN];
	char ins[HT_INJ_MAX];
	struct ht_req_loop req;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_msg_scratch);
} ht_msg_scratch SEC(".maps");

/* bpf_msg_* remote_port: network byte order, in the upper half on
 * little-endian (sock_ops and sk_msg shift it there). */
static __always_inline __u16 ht_ctx_port(__u32 remote_port)
{
	return remote_port > 0xffff ? bpf_ntohl(remote_port) : bpf_ntohs((__u16)remote_port);
}

/* Is the process (or, with --port, the peer's port) selected? */
static __always_inline bool ht_prop_selected(__u32 tgid, __u32 remote_port)
{
	__u16 port;

	if (ht_pid_selected(tgid))
		return true;
	if (!targ_port_filter || tgid == targ_agent_tgid)
		return false;
	port = ht_ctx_port(remote_port);
	return bpf_map_lookup_elem(&ht_selected_ports, &port) != NULL;
}

/* ---- the head of an outgoing request ---------------------------------------
 * One pass over the head: where the request line ends, and every traceparent
 * and tracestate field line (to leave a valid traceparent alone, or to take
 * out an invalid one with the tracestate that came with it). */

enum ht_req_state {
	HT_RQ_LINE1 = 0, /* request line */
	HT_RQ_START = 1, /* start of a header line */
	HT_RQ_NAME = 2,  /* in a name that may be ours */
	HT_RQ_SKIP = 3,
	HT_RQ_CR = 4,
	HT_RQ_END = 5,   /* the empty line: head complete */
	HT_RQ_TP = 6,    /* in a traceparent value */
	HT_RQ_TS = 7,    /* in a tracestate value */
};

/* bpf_loop's context: pointers only (see struct ht_req_loop). */
struct ht_rq_ctx {
	struct ht_req_loop *l;
	const __u8 *buf;
};

static __always_inline void ht_rq_line_done(struct ht_req_loop *l, __u64 i)
{
	__u32 n = l->ncut;

	if (n < HT_RQ_MAX_CUT) {
		l->cut_start[n & (HT_RQ_MAX_CUT - 1)] = l->line_start;
		l->cut_end[n & (HT_RQ_MAX_CUT - 1)] = i + 1;
	}
	l->ncut = n + 1;
	l->state = HT_RQ_START;
}

static long ht_rq_step(__u64 i, struct ht_rq_ctx *x)
{
	struct ht_req_loop *l = x->l;
	__u8 c = x->buf[i & (HT_INJ_SCAN - 1)], lc;
	__u32 pos;

	switch (l->state) {
	case HT_RQ_LINE1:
		if (c == '\n') {
			l->line1_end = i + 1;
			l->state = HT_RQ_START;
		}
		return 0;
	case HT_RQ_SKIP:
		if (c == '\n')
			l->state = HT_RQ_START;
		return 0;
	case HT_RQ_CR:
		l->state = c == '\n' ? HT_RQ_END : HT_RQ_SKIP;
		return l->state == HT_RQ_END;
	case HT_RQ_START:
		if (c == '\r') {
			l->state = HT_RQ_CR;
			return 0;
		}
		if (c == '\n') {
			l->state = HT_RQ_END;
			return 1;
		}
		l->state = HT_RQ_NAME;
		l->pos = 0;
		l->cand = HT_HS_CAND_TP | HT_HS_CAND_TS;
		l->line_start = i;
		/* fall through */
	case HT_RQ_NAME:
		pos = l->pos;
		if (c == ':') {
			if ((l->cand & HT_HS_CAND_TP) && pos == HT_TP_NAME_LEN) {
				l->state = HT_RQ_TP;
				l->tp_count++;
				l->tp_len = 0;
				l->tp_nows = 0;
			} else if ((l->cand & HT_HS_CAND_TS) && pos == HT_TS_NAME_LEN) {
				l->state = HT_RQ_TS;
			} else {
				l->state = HT_RQ_SKIP;
			}
			return 0;
		}
		if (c == '\n') {
			l->state = HT_RQ_START;
			return 0;
		}
		lc = (c >= 'A' && c <= 'Z') ? c + 32 : c;
		if (pos >= HT_TP_NAME_LEN || lc != ht_tp_name_at(pos))
			l->cand &= ~HT_HS_CAND_TP;
		if (pos >= HT_TS_NAME_LEN || lc != ht_ts_name_at(pos))
			l->cand &= ~HT_HS_CAND_TS;
		if (!l->cand)
			l->state = HT_RQ_SKIP;
		else
			l->pos = pos + 1;
		return 0;
	case HT_RQ_TP:
		if (c == '\n') {
			l->tp_len = l->tp_nows;
			ht_rq_line_done(l, i);
			return 0;
		}
		if (c == '\r' || (ht_is_ows(c) && l->tp_len == 0))
			return 0;
		if (l->tp_len < HT_TP_KEEP)
			l->tp[l->tp_len & (HT_TP_KEEP - 1)] = c;
		if (l->tp_len < 0xffff)
			l->tp_len++;
		if (!ht_is_ows(c))
			l->tp_nows = l->tp_len;
		return 0;
	case HT_RQ_TS:
		if (c == '\n')
			ht_rq_line_done(l, i);
		return 0;
	default:
		return 1;
	}
}

/* A request that carries exactly one valid traceparent: its caller decided. */
static __always_inline bool ht_rq_has_valid_tp(struct ht_req_loop *l)
{
	__u8 trace_id[16], parent_id[8], flags;

	return l->tp_count == 1 &&
	       ht_parse_traceparent(l->tp, l->tp_len, trace_id, parent_id, &flags);
}

/* " HTTP/1.0\r" or " HTTP/1.1\r" just before the request line's LF. */
static __always_inline bool ht_rq_line_ok(const __u8 *b, __u32 line1_end)
{
	__u32 e = line1_end;

	if (e < 16 || e > HT_INJ_SCAN)
		return false;
	e -= 11; /* start of " HTTP/1.x\r\n" */
	b += e & (HT_INJ_SCAN - 1);
	if (e + 11 > HT_INJ_SCAN)
		return false;
	return b[0] == ' ' && b[1] == 'H' && b[2] == 'T' && b[3] == 'T' && b[4] == 'P' &&
	       b[5] == '/' && b[6] == '1' && b[7] == '.' && (b[8] == '0' || b[8] == '1') &&
	       b[9] == '\r';
}

/* Builds the lines to insert in s->ins; returns their length. */
static __always_inline __u32 ht_build_lines(struct ht_msg_scratch *s,
					    const struct ht_server_ctx *c, const __u8 *span_id)
{
	char *p = s->ins;
	/* Masked, not only clamped below: 6.1's verifier keeps the bound of a
	 * comparison in the register compared, not in the stack slot clang
	 * fills ts_len from again for the copy (newer verifiers link the two). */
	__u32 ts_len = c->tracestate_len & (2 * HT_TRACESTATE_MAX - 1);

	__builtin_memcpy(p, "traceparent: 00-", 16);
	ht_hex(p + 16, c->trace_id, 16);
	p[48] = '-';
	ht_hex(p + 49, span_id, 8);
	p[65] = '-';
	ht_hex(p + 66, &c->flags, 1);
	p[68] = '\r';
	p[69] = '\n';
	if (!ts_len)
		return HT_TP_LINE_LEN;
	if (ts_len > HT_TRACESTATE_MAX)
		ts_len = HT_TRACESTATE_MAX;
	__builtin_memcpy(p + 70, "tracestate: ", 12);
	bpf_probe_read_kernel(p + 82, ts_len, c->tracestate);
	p[(82 + ts_len) & (HT_INJ_MAX - 1)] = '\r';
	p[(83 + ts_len) & (HT_INJ_MAX - 1)] = '\n';
	return 84 + ts_len;
}

/* Copies len (< 1024) bytes from src into the message at msg->data, in
 * constant-size pieces the verifier can check against data_end. */
#define HT_PIECE(K)                                                              \
	if (len & (K)) {                                                         \
		__u8 *q = data + (off & 1023);                                   \
		if ((void *)(q + (K)) > end)                                     \
			return -1;                                               \
		__builtin_memcpy(q, src + (off & 1023), (K));                    \
		off += (K);                                                      \
	}

static __always_inline int ht_msg_write(struct sk_msg_md *msg, const char *src, __u32 len)
{
	void *data = (void *)(long)msg->data;
	void *end = (void *)(long)msg->data_end;
	__u32 off = 0;

	if (len >= 1024)
		return -1;
	HT_PIECE(512)
	HT_PIECE(256)
	HT_PIECE(128)
	HT_PIECE(64)
	HT_PIECE(32)
	HT_PIECE(16)
	HT_PIECE(8)
	HT_PIECE(4)
	HT_PIECE(2)
	HT_PIECE(1)
	return 0;
}

/* The body of the sk_msg program, for a message of a selected process on a
 * socket propagation follows. Never drops or reorders: every path passes the
 * message on. It is changed only by a complete insertion (room made and
 * filled, or taken back), or, when an invalid traceparent is replaced and a
 * later step fails, by the removal of those invalid lines alone. */
static __always_inline void ht_msg_inject(struct sk_msg_md *msg, __u64 pid_tgid,
					  struct ht_prop_sock *ps)
{
	struct ht_rq_ctx x;
	struct ht_req_loop *l;
	struct ht_msg_scratch *s;
	struct ht_server_ctx *c = NULL;
	struct ht_io_args *a;
	struct ht_conn_info *info;
	__u32 zero = 0, n, len, at, head;
	__u8 span_id[8], first[4] = {}, ctx_flags = 0;
	bool replace = false;
	__u64 key;
	void *data, *end;

	n = msg->size;
	if (n > HT_INJ_SCAN - 1)
		n = HT_INJ_SCAN - 1;
	if (n == 0)
		return;
	/* The first bytes first: most messages (bodies, other protocols) stop
	 * here, after a look at four bytes. */
	head = n < 4 ? n : 4;
	if (bpf_msg_pull_data(msg, 0, head, 0))
		return;
	data = (void *)(long)msg->data;
	end = (void *)(long)msg->data_end;
	if (data + 4 <= end) {
		__builtin_memcpy(first, data, 4);
	} else if (data + 1 <= end) {
		first[0] = *(__u8 *)data;
		head = 1;
	} else {
		return;
	}
	if (!ht_is_request_start(first, head)) {
		ht_prop_not_http(ps);
		return; /* a request body, or not HTTP at all */
	}
	if (n < 16) /* shorter than "GET / HTTP/1.1\r\n": not a whole request line */
		return;
	if (bpf_msg_pull_data(msg, 0, n, 0))
		return;
	data = (void *)(long)msg->data;
	end = (void *)(long)msg->data_end;
	if (data + 16 > end)
		return;
	if (data + n > end)
		n = (__u32)((long)end - (long)data);
	s = bpf_map_lookup_elem(&ht_msg_scratch, &zero);
	if (!s)
		return;
	/* n < HT_INJ_SCAN already; the mask, in the register that is passed,
	 * says so to the verifier. */
	asm volatile("%[n] &= %[m]" : [n] "+r"(n) : [m] "i"(HT_INJ_SCAN - 1));
	if (n < 16 || bpf_probe_read_kernel(s->buf, n, data))
		return;
	l = &s->req;
	__builtin_memset(l, 0, sizeof(*l));
	x.l = l;
	x.buf = s->buf;
	bpf_loop(n, ht_rq_step, &x, 0);
	if (!ht_rq_line_ok(s->buf, l->line1_end)) {
		/* Not HTTP/1.x after all; but a request line longer than what we
		 * look at proves nothing. */
		if (l->line1_end)
			ht_prop_not_http(ps);
		return;
	}
	ps->kind = HT_PK_HTTP;
	if (l->tp_count) {
		/* The caller decided the context: a valid traceparent stays byte
		 * for byte. An invalid or repeated one (a proxy passing on what it
		 * got) is replaced, as a W3C vendor restarts the trace, tracestate
		 * lines included; unless the head is not all in view. */
		if (ht_rq_has_valid_tp(l) || l->state != HT_RQ_END || l->ncut > HT_RQ_MAX_CUT) {
			ht_ctx_count(HT_CTXC_PRESENT);
			return;
		}
		replace = true;
	}

	/* Whose request is it? The span the connecting thread served when it
	 * connected (thread pools: connect on the request's thread, write on a
	 * worker), once; else what the writing thread serves now. */
	if (ps->bound_span) {
		__u64 bound = ps->bound_span;

		ps->bound_span = 0;
		c = bpf_map_lookup_elem(&ht_server_ctxs, &bound);
		if (c)
			ctx_flags |= HT_CTX_F_BOUND_AT_CONNECT;
	}
	if (!c)
		c = ht_thread_pick(pid_tgid, true);
	if (!c) {
		ht_ctx_count(HT_CTXC_NO_CONTEXT);
		return;
	}
	/* The agent must learn the span id, or the downstream server's parent
	 * would be a span nobody reports: only inject into writes the capture
	 * follows (this syscall's entry was recorded). */
	a = bpf_map_lookup_elem(&ht_active_io, &pid_tgid);
	if (!a || !a->live || a->direction != HT_DIR_EGRESS) {
		ht_ctx_count(HT_CTXC_UNTRACKED);
		return;
	}
	key = ht_conn_key(pid_tgid >> 32, a->fd);
	info = bpf_map_lookup_elem(&ht_conns, &key);
	if (!info) {
		ht_ctx_count(HT_CTXC_UNTRACKED);
		return;
	}

	ht_random_id(span_id, 8);
	len = ht_build_lines(s, c, span_id);
	at = l->line1_end;
	if (len >= 1024) {
		ht_ctx_count(HT_CTXC_INJECT_FAILED);
		return;
	}
	if (replace) {
		/* Last line first: the earlier offsets stay right. */
		for (int i = HT_RQ_MAX_CUT - 1; i >= 0; i--) {
			__u32 from = l->cut_start[i], to = l->cut_end[i];

			if (i >= l->ncut)
				continue;
			if (bpf_msg_pop_data(msg, from, to - from, 0)) {
				ht_ctx_count(HT_CTXC_INJECT_FAILED);
				return;
			}
		}
		ht_ctx_count(HT_CTXC_REPLACED);
	}
	if (bpf_msg_push_data(msg, at, len, 0)) {
		ht_ctx_count(HT_CTXC_INJECT_FAILED);
		return;
	}
	if (bpf_msg_pull_data(msg, at, at + len, 0) || ht_msg_write(msg, s->ins, len)) {
		/* Never leave the room we made unfilled. */
		bpf_msg_pop_data(msg, at, len, 0);
		ht_ctx_count(HT_CTXC_INJECT_FAILED);
		return;
	}
	/* push_data left the message in three or more pieces (before, ours,
	 * after), and the kernel sends each piece with its own
	 * tcp_sendmsg_locked(): on a socket without TCP_NODELAY, Nagle then holds
	 * the small second piece until the first is acked, and a peer that waits
	 * for the whole head to answer delays that ack (40 ms). One piece again,
	 * as the application wrote it; a message too big to copy cheaply keeps
	 * its pieces (its body segments are full-sized anyway). */
	if (msg->size <= HT_INJ_LINEARIZE_MAX && bpf_msg_pull_data(msg, 0, msg->size, 0))
		ht_ctx_count(HT_CTXC_NOT_LINEAR);
	ht_ctx_count(HT_CTXC_INJECTED);
	ht_emit_client_ctx(pid_tgid, a, info, c, span_id, ctx_flags, HT_CTX_INJECTED);
}

#endif /* HOPTRACE_BPF_INJECT_BPF_H */
