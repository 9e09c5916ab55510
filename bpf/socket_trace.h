/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events that cross the ring buffer from socket_trace.bpf.c to the agent.
 *
 * This is the one schema of the capture path. It is included by the BPF
 * program and by the agent; tests/unit/event_layout_test.cc pins every
 * size and offset. Change it only by adding fields at the end of a struct
 * (and bumping nothing else), so that old readers keep working.
 */
#ifndef HOPTRACE_BPF_SOCKET_TRACE_H
#define HOPTRACE_BPF_SOCKET_TRACE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Hard upper bound of payload bytes captured per syscall. The runtime knob
 * targ_max_payload (default 4096) may lower it. Power of two: the BPF side
 * masks lengths with HT_MAX_PAYLOAD - 1 to satisfy the verifier. */
#define HT_MAX_PAYLOAD 8192

/* Longest comm the kernel keeps (TASK_COMM_LEN). */
#define HT_COMM_LEN 16

enum ht_event_type {
	HT_EV_CONN_OPEN = 1,  /* first HTTP-looking bytes on a TCP socket */
	HT_EV_DATA = 2,       /* one read/write syscall on a tracked socket */
	HT_EV_CONN_CLOSE = 3, /* close(2) of a socket we reported */
	HT_EV_PROC_EXEC = 4,  /* exec of a process not selected (only when asked for: --exe) */
	HT_EV_PROC_EXIT = 5,  /* exit of a selected process (whole thread group) */
	/* 6..7: kernel-side trace context, struct ht_ctx_event */
	HT_EV_SERVER_CTX = 6, /* context decided for a request the process read */
	HT_EV_CLIENT_CTX = 7, /* traceparent injected into a request it wrote */
	/* 8..11: net_probe.bpf.c, struct ht_tcp_event (bpf/net_probe.h) */
	HT_EV_TCP_STATS = 8,          /* RTT / TTL sample of a followed connection */
	HT_EV_TCP_RETRANSMIT = 9,     /* it retransmitted a segment */
	HT_EV_TCP_RESET_RECEIVED = 10, /* it received a RST */
	HT_EV_TCP_RESET_SENT = 11,    /* it sent a RST */
	/* 12: propagation.bpf.c, struct ht_fionread_event */
	HT_EV_FIONREAD = 12, /* FIONREAD by a process propagation serves (guard "detect") */
	/* 13: struct ht_proc_identity_event */
	HT_EV_PROC_IDENTITY = 13, /* who a selected process is: exec, fork, first connection */
	/* 20..21: uprobe_trace.bpf.c, struct hu_call_event (bpf/uprobe_trace.h) */
	HT_EV_FUNC_CALL = 20,      /* a probed function returned, after at least the threshold */
	HT_EV_FUNC_ABANDONED = 21, /* probed calls that never returned (exception, longjmp, panic) */
};

enum ht_direction {
	HT_DIR_EGRESS = 1,  /* the process wrote these bytes */
	HT_DIR_INGRESS = 2, /* the process read these bytes */
};

/* Who opened the connection, as far as the kernel program saw it. */
enum ht_role {
	HT_ROLE_UNKNOWN = 0, /* socket existed before we looked at it */
	HT_ROLE_CLIENT = 1,  /* connect(2) */
	HT_ROLE_SERVER = 2,  /* accept(2) / accept4(2) */
};

enum ht_syscall {
	HT_SYS_READ = 1,
	HT_SYS_READV = 2,
	HT_SYS_RECVFROM = 3,
	HT_SYS_RECVMSG = 4,
	HT_SYS_WRITE = 5,
	HT_SYS_WRITEV = 6,
	HT_SYS_SENDTO = 7,
	HT_SYS_SENDMSG = 8,
	/* TLS plaintext, from uprobes on the TLS library (bpf/tls.bpf.h) */
	HT_SYS_SSL_READ = 9,   /* SSL_read / SSL_read_ex */
	HT_SYS_SSL_WRITE = 10, /* SSL_write / SSL_write_ex */
	/* Go crypto/tls plaintext (bpf/tls_go.bpf.h) */
	HT_SYS_GOTLS_READ = 11,  /* crypto/tls.(*Conn).Read */
	HT_SYS_GOTLS_WRITE = 12, /* crypto/tls.(*Conn).Write */
};

/* Indexes into the per-CPU counter array "ht_counters". */
enum ht_counter {
	HT_CNT_RINGBUF_DROPS = 0, /* bpf_ringbuf_output failed: event lost */
	HT_CNT_CONN_MAP_FULL = 1, /* could not insert a connection */
	HT_CNT_DATA_EVENTS = 2,
	HT_CNT_TRUNCATED = 3, /* syscalls whose payload was longer than captured */
	HT_CNT_SHED = 4, /* requests (HTTP/1) or connections (other protocols) not
			  * followed: the agent was overloaded */
	/* TLS calls (bpf/tls.bpf.h) and how their socket was found */
	HT_CNT_TLS_BY_SYSCALL = 5, /* a read/write on the socket inside the call */
	HT_CNT_TLS_BY_SESSION = 6, /* the SSL object's socket, found before */
	HT_CNT_TLS_BY_THREAD = 7,  /* the thread's last socket read (memory BIOs: Node) */
	HT_CNT_TLS_UNBOUND = 8,    /* bytes moved, no socket found: plaintext dropped */
	/* Go crypto/tls (bpf/tls_go.bpf.h) */
	HT_CNT_GOTLS_CALLS = 9,  /* Read/Write calls whose plaintext went out */
	HT_CNT_GOTLS_NO_FD = 10, /* calls on a tls.Conn whose net.Conn is no *net.TCPConn */
	HT_CNT_MAX = 11,
};

/* Overload shedding: the agent writes ht_shed_config[0] (struct ht_shed) when
 * it falls behind. While shed_per_1024 > 0, each HTTP/1 request is shed with
 * that probability (in 1/1024), decided at the syscall that starts it, before
 * any of it is captured: nothing of a shed request or of its response is
 * reported, so the agent sees whole exchanges and never a cut stream. A
 * connection of another protocol is decided once, at its first bytes. A
 * client request follows the decision for the request its thread last read
 * (server side), so that a request kept is kept with the calls it makes
 * (thread-per-request servers). */
#define HT_SHED_KEEP_ALL 1024
struct ht_shed {
	__u32 shed_per_1024; /* 0 (the map's initial value): shed nothing */
	__u32 _pad;
};

/* The two ends of a TCP connection as seen from the traced process. Addresses
 * are in network byte order; IPv4 uses the first 4 bytes. Ports are in host
 * byte order. */
struct ht_tuple {
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 local_port;
	__u16 remote_port;
	__u16 _pad;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

/* Common prefix of every event. */
struct ht_event_header {
	__u32 type; /* enum ht_event_type */
	__u32 pid;  /* thread group id (what userspace calls the pid) */
	__u32 tid;  /* thread id */
	__s32 fd;
	/* Unique per connection instance: the kernel time the connection was first
	 * seen. (pid, fd, conn_gen) tells a reused fd from the old one. */
	__u64 conn_gen;
	__u64 ts_enter_ns; /* CLOCK_MONOTONIC at syscall entry */
	__u64 ts_exit_ns;  /* CLOCK_MONOTONIC at syscall exit */
};

/* HT_EV_FIONREAD: hdr.pid/tid/fd say who asked FIONREAD of which socket. */
#define HT_FIONREAD_F_ARMED 0x1 /* the socket was in the propagation sockhash */
#define HT_FIONREAD_F_FIRST 0x2 /* the process's first FIONREAD seen */
struct ht_fionread_event {
	struct ht_event_header hdr;
	__u32 flags;
	__u32 _pad;
};

/* What the kernel recognised at a socket's first bytes. The agent picks the
 * parser by it (agent/protocols/registry.cc). */
enum ht_protocol {
	HT_PROTO_UNKNOWN = 0, /* nothing moved yet */
	HT_PROTO_OTHER = 1,   /* not a protocol we follow: ignored from then on */
	HT_PROTO_HTTP1 = 2,
	HT_PROTO_HTTP2 = 3,    /* connection preface "PRI * HTTP/2.0" */
	HT_PROTO_POSTGRES = 4, /* StartupMessage / SSLRequest / GSSENCRequest */
	HT_PROTO_REDIS = 5,    /* RESP array of bulk strings */
	/* Kernel-side only, never in an event: a followed protocol, shed under
	 * overload (see struct ht_shed); ignored like HT_PROTO_OTHER. */
	HT_PROTO_SHED = 15,
};

/* Bits of ht_conn_event.flags. */
#define HT_CONN_F_TLS 0x1 /* the protocol's bytes are TLS plaintext (uprobes); the
			   * socket's own bytes are ciphertext and not reported */

struct ht_conn_event {
	struct ht_event_header hdr;
	struct ht_tuple tuple;
	__u32 role;     /* enum ht_role */
	__u32 protocol; /* enum ht_protocol */
	__u32 flags;    /* HT_CONN_F_* */
	/* TLS: the wire version the library negotiated (0x0303 = TLS 1.2,
	 * 0x0304 = TLS 1.3) when it was readable, else 0 */
	__u32 tls_version;
};

struct ht_data_event {
	struct ht_event_header hdr;
	__u32 direction; /* enum ht_direction */
	__u32 syscall;   /* enum ht_syscall */
	/* Bytes the syscall moved (its return value); may exceed captured. */
	__u64 bytes;
	__u32 captured; /* bytes of payload that follow */
	__u32 _pad;
	__u8 payload[]; /* captured bytes, first of the syscall's data */
};

struct ht_proc_event {
	struct ht_event_header hdr; /* fd = -1, conn_gen = 0 */
	__u32 ppid;
	__s32 exit_code;
	char comm[HT_COMM_LEN];
};

/* Longest exec path an identity event carries (longer ones are cut). */
#define HT_PATH_MAX 256

/* Bits of ht_proc_identity_event.flags. */
#define HT_IDENTITY_F_EXEC 0x1	     /* at its exec: path is the file exec'd */
#define HT_IDENTITY_F_FORK 0x2	     /* at its fork: comm is the parent's, no path */
#define HT_IDENTITY_F_NAME_MATCH 0x4 /* the kernel selected it: its comm is in
				      * ht_selected_comms (--exe) */
#define HT_IDENTITY_F_FIRST_SEEN 0x8 /* at its first traced connection, not seen at
				      * exec (--port, --all, older than the agent):
				      * path is its executable's file name only */

/* HT_EV_PROC_IDENTITY: what the kernel knows of a selected process when it
 * becomes who it is (or is first seen), so that the agent can name a process
 * that is gone from /proc before the agent reads it (a CLI that lives a few
 * milliseconds). */
struct ht_proc_identity_event {
	struct ht_event_header hdr; /* fd = -1, conn_gen = 0 */
	__u32 ppid;
	__u32 flags; /* HT_IDENTITY_F_* */
	/* task->start_boottime: /proc/<pid>/stat's starttime in ns; 0 if unknown */
	__u64 start_boottime_ns;
	__u64 cgroup_id; /* cgroup v2 id */
	char comm[HT_COMM_LEN];
	/* as given to execve (may be relative), see HT_IDENTITY_F_*; NUL-terminated */
	char path[HT_PATH_MAX];
};

/* Longest tracestate the kernel carries. W3C: "vendors SHOULD propagate at
 * least 512 characters of a combined header"; a longer list is dropped whole
 * (HT_CTX_F_TRACESTATE_DROPPED). */
#define HT_TRACESTATE_MAX 512

/* Where the context of an ht_ctx_event came from. */
enum ht_ctx_origin {
	HT_CTX_NEW_TRACE = 1, /* SERVER: no traceparent in the head: a new trace */
	HT_CTX_REMOTE = 2,    /* SERVER: a valid traceparent: its child */
	HT_CTX_INVALID = 3,   /* SERVER: invalid or repeated traceparent: a new trace */
	HT_CTX_INJECTED = 4,  /* CLIENT: traceparent inserted by the sk_msg program */
	HT_CTX_PICKED = 5,    /* CLIENT: not injected (its socket was not in the
			       * propagation sockhash); the server span it
			       * belongs to, as the kernel picked and claimed it */
};

/* Bits of ht_ctx_event.ctx_flags. */
#define HT_CTX_F_HEAD_CUT 0x1          /* head longer than the bytes scanned */
#define HT_CTX_F_TRACESTATE_DROPPED 0x2 /* invalid or longer than the maximum */
#define HT_CTX_F_BOUND_AT_CONNECT 0x4  /* CLIENT: parent chosen when the socket connected */

/* HT_EV_SERVER_CTX and HT_EV_CLIENT_CTX: the ids the kernel chose for one
 * request. hdr names the connection and the request: ts_enter_ns is the entry
 * of the syscall that moved the request's first byte, the same value as in
 * that syscall's data event; tid is the thread that read (SERVER) or wrote
 * (CLIENT) it. The event comes before that syscall's data event. */
struct ht_ctx_event {
	struct ht_event_header hdr;
	__u8 trace_id[16];
	/* SERVER: the span id of the server span (made in the kernel);
	 * CLIENT: the parent-id sent in the injected traceparent. */
	__u8 span_id[8];
	/* SERVER: the incoming parent-id (HT_CTX_REMOTE only, else zero);
	 * CLIENT: the server span the request was made for. */
	__u8 parent_id[8];
	__u8 trace_flags; /* W3C trace-flags of the span; bit 0 = sampled */
	__u8 origin;      /* enum ht_ctx_origin */
	__u8 ctx_flags;   /* HT_CTX_F_* */
	__u8 _pad;
	__u16 tracestate_len; /* <= HT_TRACESTATE_MAX */
	__u16 _pad2;
	/* CLIENT: the stacks of probed calls (struct hu_stack_key.id, closest
	 * first) the request was written inside, when the runtime said so
	 * (struct ht_rt_current: Go goroutines); 0 otherwise (the thread's) */
	__u64 stack_ids[2];
	char tracestate[HT_TRACESTATE_MAX]; /* as received, OWS trimmed, joined by "," */
};

#endif /* HOPTRACE_BPF_SOCKET_TRACE_H */
