/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counters of the wake-up model (bpf/runtime_wakeup.bpf.h), shared with the
 * agent, which prints them in its final "propagation" line.
 */
#ifndef HOPTRACE_BPF_RUNTIME_WAKEUP_H
#define HOPTRACE_BPF_RUNTIME_WAKEUP_H

enum ht_wk_counter {
	HT_WKC_SEEN = 0,      /* wake-ups between two threads of one selected process */
	HT_WKC_HANDED = 1,    /* ... that handed the waker's request to the wakee */
	HT_WKC_AMBIGUOUS = 2, /* ... after which the wakee serves "none" (could be two) */
	HT_WKC_NOISE = 3,     /* ... from a thread that reads no requests (mutex, GIL, network) */
	HT_WKC_BUSY = 4,      /* ... to a worker already calling out for a live request */
	HT_WKC_READER = 5,    /* ... to a thread that reads requests itself: its own queue */
	HT_WKC_USED = 6,      /* outgoing connects/writes that took a wake-up's answer */
	HT_WKC_PENDING = 7,   /* hand-offs in doubt: the worker woken before had not run */
	HT_WKC_EPOCH = 8,     /* hand-offs in doubt: an unexplained call came first */
	HT_WKC_NOTHING = 9,   /* ... from a reader with no request left to hand over */
	HT_WKC_MAX = 10,
};

#endif /* HOPTRACE_BPF_RUNTIME_WAKEUP_H */
