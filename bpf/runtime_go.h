/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Go runtime context (issue 11): types shared by bpf/runtime_go.bpf.h and the
 * agent (agent/kernel/go_runtime.*). Fixed-width types only.
 */
#ifndef HOPTRACE_BPF_RUNTIME_GO_H
#define HOPTRACE_BPF_RUNTIME_GO_H

#ifdef __BPF__
#include "vmlinux.h"
#else
#include <linux/types.h>
#endif

/* ht_go_gs key: a goroutine of a process, by its runtime.g address (a g is
 * reused after its goroutine exits; runtime.newproc1 re-binds it then). */
struct ht_go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};

/* How a goroutine came to serve its request; decides whether a hand-off may
 * replace it and whether it passes the request on. */
enum ht_go_kind {
	HT_GO_CREATED = 0, /* made by a goroutine that is not the request's own: carries
			    * the request, may be handed another, passes nothing on */
	HT_GO_HANDOFF = 1, /* woken by a channel send from a goroutine serving a request:
			    * may be handed another, passes it on */
	HT_GO_CHILD = 2,   /* made by the goroutine that read the request (fan-out) */
	HT_GO_OWN = 3,     /* read the request itself (net/http's conn.serve) */
};

struct ht_go_binding {
	__u64 span_id; /* key of ht_server_ctxs */
	__u32 kind;    /* enum ht_go_kind */
	__u32 _pad;
	/* The goroutine whose open probed calls (bpf/uprobe_trace.bpf.c) the
	 * work was done for: itself (OWN), the one that created it, the one
	 * whose channel send woke it (the request's writeLoop) */
	__u64 origin_g;
};

enum ht_go_counter {
	HT_GOC_BOUND = 0,     /* goroutines bound to a request they read */
	HT_GOC_INHERITED = 1, /* goroutines created by a goroutine serving a request */
	HT_GOC_HANDOFF = 2,   /* channel sends that handed a request to a goroutine */
	HT_GOC_SET = 3,       /* syscalls told the goroutine's request (ht_rt_set) */
	HT_GOC_UNBOUND = 4,   /* ... of a goroutine serving nothing (span 0) */
	HT_GOC_MAX = 5,
};

#endif /* HOPTRACE_BPF_RUNTIME_GO_H */
