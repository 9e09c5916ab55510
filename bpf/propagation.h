/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel-side trace context and traceparent injection: the types the BPF
 * programs (socket_trace.bpf.c reads contexts, propagation.bpf.c injects
 * them) share with the agent. The events themselves are in socket_trace.h
 * (HT_EV_SERVER_CTX, HT_EV_CLIENT_CTX, struct ht_ctx_event).
 */
#ifndef HOPTRACE_BPF_PROPAGATION_H
#define HOPTRACE_BPF_PROPAGATION_H

#include "socket_trace.h"

/* Indexes into the per-CPU counter array "ht_ctx_counters". Add at the end. */
enum ht_ctx_counter {
	HT_CTXC_SERVER = 0,        /* server contexts decided */
	HT_CTXC_REMOTE = 1,        /* ... joining a valid incoming traceparent */
	HT_CTXC_INVALID = 2,       /* ... restarting after an invalid one */
	HT_CTXC_HEAD_CUT = 3,      /* ... decided on a head cut by the capture limit */
	HT_CTXC_INJECTED = 4,      /* traceparent inserted into an outgoing request */
	HT_CTXC_PRESENT = 5,       /* request already had a traceparent: untouched */
	HT_CTXC_NO_CONTEXT = 6,    /* writer serves no request: untouched */
	HT_CTXC_UNTRACKED = 7,     /* write not seen by the capture: untouched */
	HT_CTXC_INJECT_FAILED = 8, /* push/pull failed: untouched */
	HT_CTXC_SOCK_ADDED = 9,    /* sockets put in the sockhash */
	HT_CTXC_SOCK_BUSY = 10,    /* socket already has another sk_msg program */
	HT_CTXC_SOCK_FAILED = 11,  /* sockhash full or other insert error */
	HT_CTXC_NOT_HTTP = 12,     /* sockets whose first bytes are not a request */
	HT_CTXC_REPLACED = 13,     /* invalid traceparent replaced (W3C restart) */
	HT_CTXC_NOT_LINEAR = 14,   /* injected message left in pieces (copy failed) */
	HT_CTXC_DISARMED = 15,     /* guard: socket left the sockhash, peer acked a write */
	HT_CTXC_RT_PICKED = 16,    /* parent chosen by a runtime's context (issue 11) */
	HT_CTXC_RT_GONE = 17,      /* runtime's request already answered: no parent */
	/* Context across TLS in a TCP option (tcp_ctx_option.bpf.h). */
	HT_CTXC_OPT_STAGED = 18,   /* a TLS request's context handed to sockops */
	HT_CTXC_OPT_SENT = 19,     /* ... written into its segment */
	HT_CTXC_OPT_NO_ROOM = 20,  /* ... no room in the segment's options (SACK) */
	HT_CTXC_OPT_UNSENT = 21,   /* ... its first byte left without it */
	HT_CTXC_OPT_RECEIVED = 22, /* contexts that arrived in an option */
	HT_CTXC_OPT_USED = 23,     /* ... taken as a server span's parent */
	HT_CTXC_OPT_ABSENT = 24,   /* TLS request heads with no option, no traceparent */
	HT_CTXC_OPT_ROOT = 25,     /* TLS requests of a thread serving nothing: new trace */
	HT_CTXC_MAX = 26,
};

/* What propagation knows about one socket (socket-local storage, map
 * "ht_prop_socks"; the agent reads it by socket fd). */
enum ht_prop_kind {
	HT_PK_UNKNOWN = 0, /* nothing written yet */
	HT_PK_HTTP = 1,    /* its first message was an HTTP/1.x request */
	HT_PK_OTHER = 2,   /* it was not: never looked at again */
};

/* Read guard modes (propagation.bpf.c ht_guard_mode). */
enum ht_guard_mode {
	HT_GUARD_OFF = 0,
	HT_GUARD_ALL = 1,    /* every socket leaves the sockhash when its request is acked */
	HT_GUARD_DETECT = 2, /* only sockets of processes seen asking FIONREAD */
};

struct ht_prop_sock {
	__u64 bound_span; /* server span of the thread that connected it */
	__u64 cookie;     /* its key in the sockhash */
	__u8 selected;    /* made by a selected process: may enter the sockhash */
	__u8 kind;        /* enum ht_prop_kind */
	__u8 _pad[2];
	__u32 tgid;       /* the process that connected it */
	__s64 wire_delta; /* bytes on the wire minus bytes the process wrote */
};

#endif /* HOPTRACE_BPF_PROPAGATION_H */
