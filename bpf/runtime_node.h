/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Shared by bpf/runtime_node.bpf.h and the agent (NodeRuntimeLoader, the
 * JavaScript agent of uprobes/node/): the announce encoding and counters. */
#ifndef HOPTRACE_BPF_RUNTIME_NODE_H
#define HOPTRACE_BPF_RUNTIME_NODE_H

/* pread64 position of an announce: MAGIC << 40 | out_fd << 20 | in_fd. The
 * whole must stay below 2^53 (a JavaScript number is exact up to there). */
#define HT_NODE_MAGIC 0x1ace
#define HT_NODE_FD_MASK 0xfffff
#define HT_NODE_FD_NONE 0xfffff /* in_fd: made outside any incoming request */

struct ht_node_proc {
	__s32 announce_fd;
	__u32 _pad;
};

enum ht_node_counter {
	HT_NODE_CNT_ANNOUNCE = 0,      /* announces seen */
	HT_NODE_CNT_BOUND = 1,         /* ... bound to an open server span */
	HT_NODE_CNT_BOUND_NONE = 2,    /* ... bound to no request */
	HT_NODE_CNT_OUT_UNKNOWN = 3,   /* ... on a connection the capture does not follow */
	HT_NODE_CNT_UNBOUND_WRITE = 4, /* client writes never announced: no parent */
	HT_NODE_CNT_MAX = 5,
};

#endif /* HOPTRACE_BPF_RUNTIME_NODE_H */
