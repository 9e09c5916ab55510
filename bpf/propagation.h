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
	HT_CTXC_MAX = 15,
};

#endif /* HOPTRACE_BPF_PROPAGATION_H */
