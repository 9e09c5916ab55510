/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * TLS plaintext from uprobes on OpenSSL's SSL_read, SSL_write, SSL_read_ex
 * and SSL_write_ex (libssl, or an executable with OpenSSL inside: Node.js).
 * Entry remembers the call per thread; return turns the bytes it moved into
 * a data event on the socket beneath (tls_session.bpf.h), exactly as a
 * read/write syscall on a plaintext socket would: same connection key and
 * generation, same classification, same kernel-side contexts. The agent's
 * parsers cannot tell the two apart, except by ht_data_event.syscall.
 *
 * The probes are attached per library file (uprobes are per inode), so they
 * fire in every process that maps the file: a process that is not selected
 * costs one map lookup and a return.
 *
 * Order: a process's request must reach the agent before the peer's read of
 * it (the trace stage links a SERVER span to the CLIENT span of the same
 * connection when it sees the server's request head). A syscall's event
 * goes out at its exit, before the peer can have read; an SSL_write's
 * return comes after its bytes are on the wire, and the peer often wins.
 * So the plaintext of an SSL_write of at most one TLS record goes out when
 * the call makes its first write on the socket: OpenSSL has encrypted it
 * and will send it, now or, when that write would block, in the retry it
 * asks for (same buffer and length: recognised and not reported again).
 * Longer writes, and writes through memory BIOs (Node.js: the socket write
 * follows the call), go out at the return.
 *
 * Included by capture.bpf.h, between the event builders it uses and the
 * syscall programs that call ht_tls_on_syscall().
 */
#ifndef HOPTRACE_BPF_TLS_BPF_H
#define HOPTRACE_BPF_TLS_BPF_H

#include "tls_session.bpf.h"

/* The payload of one TLS record (RFC 8446 5.1: 2^14 bytes). */
#define HT_TLS_RECORD_MAX 16384

/* The negotiated version is the first member of struct ssl_st in OpenSSL
 * 1.1.1 and 3.0/3.1 (`int version`); 3.2 put a type tag there. A value that
 * is not a TLS version is ignored, so another layout costs the attribute,
 * nothing else. */
#define HT_TLS1_0_VERSION 0x0301
#define HT_TLS1_3_VERSION 0x0304

static __always_inline int ht_tls_enter(__u64 ssl, __u64 buf, __u64 num, __u64 ex_len,
					__u16 syscall, __u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_tls_call call = {
		.ssl = ssl,
		.buf = buf,
		.ex_len = ex_len,
		.num = num,
		.fd = -1,
		.syscall = syscall,
		.direction = direction,
	};

	/* --port selects connections, not processes: the socket decides. */
	if (!ht_pid_selected(pid_tgid >> 32) && !targ_port_filter)
		return 0;
	call.ts_enter = bpf_ktime_get_ns();
	if (direction == HT_DIR_EGRESS) {
		/* The retry of a write reported early: its bytes are out already
		 * (counted as emitted). Any other write ends the wait for it. */
		struct ht_tls_session_key sk = { .ssl = ssl, .tgid = pid_tgid >> 32 };
		struct ht_tls_conn *sess = bpf_map_lookup_elem(&ht_tls_sessions, &sk);

		if (sess && sess->retry_buf) {
			if (sess->retry_buf == buf && sess->retry_num == num)
				call.emitted = 1;
			sess->retry_buf = 0;
		}
	}
	bpf_map_update_elem(&ht_tls_calls, &pid_tgid, &call, BPF_ANY);
	return 0;
}

/* The connection of a session whose socket is known, if it still lives. */
static __always_inline struct ht_conn_info *ht_tls_conn_of(__u32 tgid, const struct ht_tls_conn *c,
							   __u64 *key)
{
	struct ht_conn_info *info;

	*key = ht_conn_key(tgid, c->fd);
	info = bpf_map_lookup_elem(&ht_conns, key);
	if (!info || info->gen != c->gen)
		return NULL;
	return info;
}

/* Finds the connection of the call's session (tls_session.bpf.h, in that
 * order) and remembers it for the session's next calls. */
static __always_inline struct ht_conn_info *ht_tls_bind(__u64 pid_tgid,
							const struct ht_tls_call *call,
							__u64 *key)
{
	struct ht_tls_session_key sk = { .ssl = call->ssl, .tgid = pid_tgid >> 32 };
	struct ht_conn_info *info = NULL;
	struct ht_tls_conn *found, c = {};

	if (call->fd >= 0) {
		*key = ht_conn_key(pid_tgid >> 32, call->fd);
		info = bpf_map_lookup_elem(&ht_conns, key);
		if (!info)
			return NULL;
		ht_count(HT_CNT_TLS_BY_SYSCALL);
	} else {
		found = bpf_map_lookup_elem(&ht_tls_sessions, &sk);
		if (found) {
			info = ht_tls_conn_of(pid_tgid >> 32, found, key);
			if (info) {
				ht_count(HT_CNT_TLS_BY_SESSION);
				return info;
			}
			bpf_map_delete_elem(&ht_tls_sessions, &sk);
		}
		found = bpf_map_lookup_elem(&ht_tls_last_reads, &pid_tgid);
		if (found)
			info = ht_tls_conn_of(pid_tgid >> 32, found, key);
		/* Only ciphertext no session has claimed: a socket already
		 * plain HTTP, or another session's (a Node server that calls
		 * out: its client session's first SSL_read comes before the
		 * first read of the new socket), is not this session's. */
		if (!info || info->tls ||
		    (info->proto != HT_PROTO_OTHER && info->proto != HT_PROTO_UNKNOWN))
			return NULL;
		ht_count(HT_CNT_TLS_BY_THREAD);
	}
	c.fd = (__s32)*key;
	c.gen = info->gen;
	bpf_map_update_elem(&ht_tls_sessions, &sk, &c, BPF_ANY);
	return info;
}

/* The socket carries TLS; its version, once the session has one. */
static __always_inline void ht_tls_note(struct ht_conn_info *info, __u64 ssl)
{
	__s32 version = 0;

	ht_tls_mark(info);
	if (!info->tls_version && !bpf_probe_read_user(&version, sizeof(version), (void *)ssl) &&
	    version >= HT_TLS1_0_VERSION && version <= HT_TLS1_3_VERSION)
		info->tls_version = version;
}

/* Sends a call's plaintext as a data event of the connection at key. */
static __always_inline void ht_tls_emit(__u64 pid_tgid, const struct ht_tls_call *call, __u64 key,
					struct ht_conn_info *info, __u64 moved)
{
	struct ht_io_args args = {};

	args.ts_enter = call->ts_enter;
	args.arg = call->buf;
	args.fd = (__s32)key;
	args.syscall = call->syscall;
	args.kind = HT_IO_BUF;
	args.direction = call->direction;
	ht_emit_io(pid_tgid, key, info, &args, (__s64)moved, false);
}

/* At the entry of a read/write-family syscall on a traced socket. Returns
 * true when the socket carries TLS: its bytes are ciphertext, not reported. */
static __always_inline bool ht_tls_on_syscall(__u64 pid_tgid, __s32 fd, struct ht_conn_info *info,
					      __u8 direction)
{
	struct ht_tls_call *call;

	if (!targ_tls)
		return false;
	/* Plain HTTP already recognised: not a TLS socket, nothing to look up. */
	if (!info->tls && info->proto != HT_PROTO_UNKNOWN && info->proto != HT_PROTO_OTHER)
		return false;
	call = bpf_map_lookup_elem(&ht_tls_calls, &pid_tgid);
	if (call) {
		call->fd = fd;
		ht_tls_note(info, call->ssl);
		/* The first write of an SSL_write of one record: its plaintext
		 * goes out now, before its ciphertext (see the top). */
		if (direction == HT_DIR_EGRESS && call->direction == HT_DIR_EGRESS &&
		    !call->emitted && call->num > 0 && call->num <= HT_TLS_RECORD_MAX) {
			call->emitted = 1;
			ht_tls_emit(pid_tgid, call, ht_conn_key(pid_tgid >> 32, fd), info, call->num);
		}
	} else if (direction == HT_DIR_INGRESS) {
		struct ht_tls_conn last = { .gen = info->gen, .fd = fd };

		bpf_map_update_elem(&ht_tls_last_reads, &pid_tgid, &last, BPF_ANY);
	}
	return info->tls;
}

/* ret: what SSL_read/SSL_write returned (bytes), or SSL_*_ex's 1/0. */
static __always_inline int ht_tls_return(__s64 ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_tls_call *c = bpf_map_lookup_elem(&ht_tls_calls, &pid_tgid);
	struct ht_tls_call call;
	struct ht_conn_info *info;
	__u64 key = 0, moved = 0;
	bool ok;

	if (!c)
		return 0;
	call = *c;
	bpf_map_delete_elem(&ht_tls_calls, &pid_tgid);
	/* Bind even when nothing moved: a handshake step or a would-block read
	 * is often the only call that touches the socket. */
	ok = call.ex_len ? ret == 1 : ret > 0;
	info = ht_tls_bind(pid_tgid, &call, &key);
	if (!info) {
		if (ok) /* bytes moved that no connection can take */
			ht_count(HT_CNT_TLS_UNBOUND);
		return 0;
	}
	ht_tls_note(info, call.ssl);
	if (call.emitted) {
		if (!ok) {
			/* Reported, not done: OpenSSL will be asked again (the
			 * entry of that retry recognises it). */
			struct ht_tls_session_key sk = { .ssl = call.ssl, .tgid = pid_tgid >> 32 };
			struct ht_tls_conn *sess = bpf_map_lookup_elem(&ht_tls_sessions, &sk);

			if (sess) {
				sess->retry_buf = call.buf;
				sess->retry_num = call.num;
			}
		}
		return 0;
	}
	if (!ok)
		return 0;
	if (call.ex_len) {
		if (bpf_probe_read_user(&moved, sizeof(moved), (void *)call.ex_len))
			return 0;
	} else {
		moved = ret;
	}
	if (moved == 0 || moved > 0x7fffffff)
		return 0;
	ht_tls_emit(pid_tgid, &call, key, info, moved);
	return 0;
}

#endif /* HOPTRACE_BPF_TLS_BPF_H */
