/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Maps and run-time knobs shared by the programs of socket_trace.bpf.c. */
#ifndef HOPTRACE_BPF_MAPS_BPF_H
#define HOPTRACE_BPF_MAPS_BPF_H

#include "socket_trace.h"

/* Set by the agent between open and load (rodata). */
const volatile __u32 targ_agent_tgid = 0;    /* never trace ourselves */
const volatile bool targ_trace_all = false;   /* every process but the agent */
const volatile bool targ_port_filter = false; /* ht_selected_ports is in use */
const volatile bool targ_exec_events = false; /* report execs for name matching */
const volatile __u32 targ_max_payload = 4096; /* <= HT_MAX_PAYLOAD */
const volatile bool targ_read_at_exit = false; /* reads at their exit alone (ht_read_exit) */
/* A server's writes (its responses) at their exit alone too (ht_write_exit):
 * only where reads are, and only without kernel-side contexts, whose
 * runtime hooks start at a write's entry. */
const volatile bool targ_server_writes_at_exit = false;

/* What the kernel side remembers about one TCP socket of a selected process. */
struct ht_conn_info {
	struct ht_tuple tuple;
	__u64 gen;
	__u64 sk;       /* struct sock *, key of ht_sk_owner */
	__u32 role;     /* enum ht_role */
	__u8 proto;     /* enum ht_protocol */
	__u8 reported;  /* HT_EV_CONN_OPEN sent */
	__u8 shed;      /* HTTP/1: the current request is shed (struct ht_shed) */
	/* The socket carries TLS (bpf/tls.bpf.h): its own bytes are ciphertext
	 * and ignored; proto is the plaintext's, fed by the TLS uprobes. */
	__u8 tls;
	__u16 tls_version; /* 0 unknown */
	__u16 _pad2[3];
};

enum ht_io_kind {
	HT_IO_BUF = 0, /* arg is a plain buffer */
	HT_IO_IOV = 1, /* arg is a struct iovec array of iovcnt entries */
};

/* Arguments of a read/write-family syscall, saved at entry for its exit. */
struct ht_io_args {
	__u64 ts_enter;
	__u64 arg; /* buffer or iovec array (user address) */
	__u32 iovcnt;
	__s32 fd;
	__u16 syscall; /* enum ht_syscall */
	__u8 kind;     /* enum ht_io_kind */
	__u8 direction;
	__u8 prop_seen; /* the propagation sk_msg program saw this write */
	__u8 live;      /* a syscall is in flight: set at its entry, cleared at its exit */
	__u8 at_exit;   /* taken at the syscall's exit (a read, ht_read_exit): ts_enter is set
			 * to its exit time */
	__u8 wk;        /* the entry gave the thread a wake-up context (ht_wk_enter) */
};

/* (tgid << 32 | fd) -> connection. LRU: a missed close costs a slot, not a leak. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct ht_conn_info);
} ht_conns SEC(".maps");

/* struct sock * -> the connection that owns it, so that a socket that dies
 * without close(2) (process killed, close_range, dup2 over it) still ends
 * its connection: see sock/inet_sock_set_state. */
struct ht_sk_owner {
	__u64 conn_key;
	__u64 gen;
	/* net_probe.bpf.c: the socket's tcp_mstamp (µs) below which an
	 * arriving segment says nothing new (hn_tcp_probe); 0 until known. */
	__u64 quiet_until_us;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct ht_sk_owner);
} ht_sk_owners SEC(".maps");

/* tgid -> 1 for every selected process (children inherit, see fork). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} ht_selected_pids SEC(".maps");

/* The same set as bytes, tgid / HT_PID_BLOCK -> block, tgid % HT_PID_BLOCK ->
 * 1 if selected: what every syscall of every process on the host asks first
 * (ht_pid_selected), answered by an array lookup the verifier inlines and a
 * load, instead of a hash lookup. The agent sizes it to pid_max before load
 * (PID_MAX_LIMIT, 4194304 pids, is 1024 blocks) and writes it through
 * mmap(2) (BPF_F_MMAPABLE, Linux 5.5, fc9702273e2e "bpf: Add mmap() support
 * for BPF_MAP_TYPE_ARRAY"): a byte store each, never a read-modify-write of
 * a block another CPU writes too. A tgid past the last block falls back to
 * ht_selected_pids, which stays complete: every writer updates both. */
#define HT_PID_BLOCK 4096
struct ht_pid_block {
	__u8 selected[HT_PID_BLOCK];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct ht_pid_block);
} ht_sel_pid_arr SEC(".maps");

/* comm -> 1: a process that execs under one of these names is selected
 * in the kernel, at its exec (--exe), so that a process that lives a few
 * milliseconds is traced before the agent could hear of it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, char[HT_COMM_LEN]);
	__type(value, __u8);
} ht_selected_comms SEC(".maps");

/* tgid -> start_boottime of a process whose identity went out at exec or
 * at its first connection: one identity per process; a reused pid has
 * another start time, so it is a new process. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} ht_identity_sent SEC(".maps");

/* TCP port -> 1: connections to or from these ports are traced whatever the
 * process (only consulted when targ_port_filter). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u8);
} ht_selected_ports SEC(".maps");

/* pid_tgid -> the thread's syscall slot; live while a syscall is in flight.
 * A thread keeps its slot (the LRU drops the slots of threads gone quiet):
 * the entry rewrites it in place and the exit clears `live`, instead of an
 * update and a delete per syscall, each of which takes the bucket lock and
 * moves an element between the LRU's lists. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ht_io_args);
} ht_active_io SEC(".maps");

/* pid_tgid -> fd of a connect(2) in flight. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __s32);
} ht_active_connect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by the agent before load */
} ht_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ht_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_shed);
} ht_shed_config SEC(".maps");

/* While shedding: thread (pid_tgid) -> whether the server connection it last
 * read from was kept (1) or shed (2). Written only while shedding. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} ht_thread_shed SEC(".maps");

/* A user struct iovec; the first HT_MAX_IOV of a syscall's array are read
 * in one go (ht_copy_args). */
#define HT_MAX_IOV 4

struct ht_iovec {
	__u64 base;
	__u64 len;
};

/* Scratch space for building a data event: too big for the BPF stack. Three
 * times the payload bound so that every length the verifier can prove, not
 * just the ones that happen, fits: (offset < MAX) + (len <= MAX) when copying,
 * len < 2 * MAX when emitting. */
struct ht_data_scratch {
	struct ht_data_event ev;
	__u8 payload[3 * HT_MAX_PAYLOAD];
	/* The first iovecs of a write's array (ht_copy_write): here, not on a
	 * stack that the exit programs have nearly used up. */
	struct ht_iovec iov[HT_MAX_IOV];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_data_scratch);
} ht_scratch SEC(".maps");

static __always_inline void ht_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ht_counters, &idx);

	if (v)
		*v += 1;
}

/* Not followed: not a protocol we parse, or shed under overload. */
static __always_inline bool ht_proto_ignored(__u8 proto)
{
	return proto == HT_PROTO_OTHER || proto == HT_PROTO_SHED;
}

/* The keep ratio the agent set; HT_SHED_KEEP_ALL when not shedding. */
static __always_inline __u32 ht_shed_keep(void)
{
	__u32 zero = 0;
	struct ht_shed *cfg = bpf_map_lookup_elem(&ht_shed_config, &zero);

	if (!cfg || cfg->shed_per_1024 == 0)
		return HT_SHED_KEEP_ALL;
	return cfg->shed_per_1024 >= HT_SHED_KEEP_ALL ? 0 : HT_SHED_KEEP_ALL - cfg->shed_per_1024;
}

static __always_inline bool ht_pid_selected(__u32 tgid)
{
	__u32 block = tgid / HT_PID_BLOCK;
	struct ht_pid_block *b;

	if (tgid == targ_agent_tgid)
		return false;
	if (targ_trace_all)
		return true;
	b = bpf_map_lookup_elem(&ht_sel_pid_arr, &block);
	if (b)
		return b->selected[tgid % HT_PID_BLOCK];
	return bpf_map_lookup_elem(&ht_selected_pids, &tgid) != NULL;
}

/* False when tgid can have no entry in ht_conns: without --port only a
 * selected process's sockets are registered (ht_conn_register). A process
 * dropped from the selection (the agent's --exe check, its exit) stops being
 * followed at once, connections included. */
static __always_inline bool ht_may_own_conns(__u32 tgid)
{
	return targ_port_filter || ht_pid_selected(tgid);
}

/* Selects tgid (both forms of the set), or drops it. */
static __always_inline void ht_pid_set_selected(__u32 tgid, bool on)
{
	__u32 block = tgid / HT_PID_BLOCK;
	struct ht_pid_block *b = bpf_map_lookup_elem(&ht_sel_pid_arr, &block);
	__u8 one = 1;

	if (on && bpf_map_update_elem(&ht_selected_pids, &tgid, &one, BPF_ANY))
		return;
	if (b)
		b->selected[tgid % HT_PID_BLOCK] = on;
	if (!on)
		bpf_map_delete_elem(&ht_selected_pids, &tgid);
}

static __always_inline __u64 ht_conn_key(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

/* Byte strings as little-endian words, for comparisons without tables
 * (clang puts constant arrays in .rodata.cst*, which libbpf's BTF rejects).
 * Used by the capture-only build too, so here and not in head_scan.bpf.h. */
#define HT_W(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)
#define HT_W8(a, b, c, d, e, f, g, h) ((__u64)HT_W(a, b, c, d) | (__u64)HT_W(e, f, g, h) << 32)

#endif /* HOPTRACE_BPF_MAPS_BPF_H */
