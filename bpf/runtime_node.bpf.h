/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Node.js runtime context (issue 11). A Node process multiplexes every
 * request onto one thread, and an `await` continuation passes through no
 * native function a uprobe could watch, so the kernel cannot tell which
 * incoming request an outgoing one serves. For a process the user opted in
 * (--node-inject), the agent loads a small JavaScript agent through the
 * inspector (uprobes/node/): it follows the incoming socket of each request
 * with AsyncLocalStorage and, before an outgoing request is written on a
 * socket, announces "socket out_fd serves the request of socket in_fd" with
 * a syscall no program of the process would make otherwise:
 *
 *   pread64(announce_fd, buf, 1, HT_NODE_MAGIC << 40 | out_fd << 20 | in_fd)
 *
 * where announce_fd is /dev/null, opened by the script (reads nothing,
 * changes nothing). Here that becomes a binding of the outgoing connection
 * to the server span open on in_fd now (head_scan.bpf.h's cur_span), and
 * each write, writev, sendto or sendmsg on that connection runs with
 * ht_rt_current set to it (context.bpf.h), so the propagation's pick is the
 * runtime's answer. A connect(2) of such a process runs with "no request"
 * (span 0): a pooled connection serves whichever request writes on it next,
 * so nothing is bound to the request that happened to open it.
 */
#ifndef HOPTRACE_BPF_RUNTIME_NODE_BPF_H
#define HOPTRACE_BPF_RUNTIME_NODE_BPF_H

#include "capture.bpf.h"
#include "runtime_node.h"

/* Processes whose JavaScript agent is in: tgid -> its announce fd. Written
 * by the agent (NodeRuntimeLoader) only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct ht_node_proc);
} ht_node_procs SEC(".maps");

/* An outgoing connection and the server span its current request serves. */
struct ht_node_bind {
	__u64 span_id; /* 0: the request was made outside any incoming one */
	__u64 gen;     /* of the connection (ht_conn_info): a reused fd is another */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* ht_conn_key(tgid, fd) */
	__type(value, struct ht_node_bind);
} ht_node_binds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_NODE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ht_node_counters SEC(".maps");

static __always_inline void ht_node_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ht_node_counters, &idx);

	if (v)
		*v += 1;
}

/* pread64 by a followed process: an announce if it is on its announce fd
 * with the magic; anything else is left alone. */
static __always_inline void ht_node_pread(__u64 pid_tgid, __s32 fd, __u64 pos)
{
	__u32 tgid = pid_tgid >> 32;
	struct ht_node_proc *p = bpf_map_lookup_elem(&ht_node_procs, &tgid);
	struct ht_node_bind b = {};
	struct ht_conn_info *out;
	struct ht_head_scan *h;
	__u32 out_fd, in_fd;
	__u64 key;

	if (!p || fd != p->announce_fd || (pos >> 40) != HT_NODE_MAGIC)
		return;
	out_fd = (pos >> 20) & HT_NODE_FD_MASK;
	in_fd = pos & HT_NODE_FD_MASK;
	ht_node_count(HT_NODE_CNT_ANNOUNCE);
	key = ht_conn_key(tgid, out_fd);
	out = bpf_map_lookup_elem(&ht_conns, &key);
	if (!out) {
		ht_node_count(HT_NODE_CNT_OUT_UNKNOWN);
		return;
	}
	b.gen = out->gen;
	if (in_fd != HT_NODE_FD_NONE) {
		__u64 in_key = ht_conn_key(tgid, in_fd);
		struct ht_conn_info *in = bpf_map_lookup_elem(&ht_conns, &in_key);

		h = bpf_map_lookup_elem(&ht_head_scans, &in_key);
		if (in && h && h->gen == in->gen)
			b.span_id = h->cur_span;
	}
	ht_node_count(b.span_id ? HT_NODE_CNT_BOUND : HT_NODE_CNT_BOUND_NONE);
	bpf_map_update_elem(&ht_node_binds, &key, &b, BPF_ANY);
}

/* Entry of a write-family syscall (or connect) by a followed process. */
static __always_inline void ht_node_enter(__u64 pid_tgid, __s32 fd, bool connect)
{
	__u32 tgid = pid_tgid >> 32;
	struct ht_node_bind *b;
	struct ht_conn_info *info;
	__u64 key;

	if (!bpf_map_lookup_elem(&ht_node_procs, &tgid))
		return;
	if (connect) {
		ht_rt_set(pid_tgid, 0, HT_RT_NODE);
		return;
	}
	key = ht_conn_key(tgid, fd);
	info = bpf_map_lookup_elem(&ht_conns, &key);
	if (!info || info->role != HT_ROLE_CLIENT)
		return;
	b = bpf_map_lookup_elem(&ht_node_binds, &key);
	if (b && b->gen == info->gen) {
		ht_rt_set(pid_tgid, b->span_id, HT_RT_NODE);
		return;
	}
	/* A client connection the script never announced: no guess. */
	ht_node_count(HT_NODE_CNT_UNBOUND_WRITE);
	ht_rt_set(pid_tgid, 0, HT_RT_NODE);
}

static __always_inline void ht_node_exit(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;

	if (bpf_map_lookup_elem(&ht_node_procs, &tgid))
		ht_rt_clear(pid_tgid);
}

#endif /* HOPTRACE_BPF_RUNTIME_NODE_BPF_H */
