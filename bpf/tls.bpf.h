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
 */
#ifndef HOPTRACE_BPF_TLS_BPF_H
#define HOPTRACE_BPF_TLS_BPF_H

#include "capture.bpf.h"

/* The negotiated version is the first member of struct ssl_st in OpenSSL
 * 1.1.1 and 3.0/3.1 (`int version`); 3.2 put a type tag there. A value that
 * is not a TLS version is ignored, so another layout costs the attribute,
 * nothing else. */
#define HT_TLS1_0_VERSION 0x0301
#define HT_TLS1_3_VERSION 0x0304

static __always_inline int ht_tls_enter(__u64 ssl, __u64 buf, __u64 ex_len, __u16 syscall,
					__u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_tls_call call = {
		.ssl = ssl,
		.buf = buf,
		.ex_len = ex_len,
		.fd = -1,
		.syscall = syscall,
		.direction = direction,
	};

	/* --port selects connections, not processes: the socket decides. */
	if (!ht_pid_selected(pid_tgid >> 32) && !targ_port_filter)
		return 0;
	call.ts_enter = bpf_ktime_get_ns();
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
		/* A socket already plain HTTP is not this session's. */
		if (!info || (!info->tls && info->proto != HT_PROTO_OTHER &&
			      info->proto != HT_PROTO_UNKNOWN)) {
			ht_count(HT_CNT_TLS_UNBOUND);
			return NULL;
		}
		ht_count(HT_CNT_TLS_BY_THREAD);
	}
	c.fd = (__s32)*key;
	c.gen = info->gen;
	bpf_map_update_elem(&ht_tls_sessions, &sk, &c, BPF_ANY);
	return info;
}

/* ret: what SSL_read/SSL_write returned (bytes), or SSL_*_ex's 1/0. */
static __always_inline int ht_tls_return(__s64 ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_tls_call *c = bpf_map_lookup_elem(&ht_tls_calls, &pid_tgid);
	struct ht_io_args args = {};
	struct ht_tls_call call;
	struct ht_conn_info *info;
	__u64 key = 0, moved = 0;
	__s32 version = 0;

	if (!c)
		return 0;
	call = *c;
	bpf_map_delete_elem(&ht_tls_calls, &pid_tgid);
	/* Bind even when nothing moved: a handshake step or a would-block read
	 * is often the only call that touches the socket. */
	info = ht_tls_bind(pid_tgid, &call, &key);
	if (!info)
		return 0;
	ht_tls_mark(info);
	if (!info->tls_version && !bpf_probe_read_user(&version, sizeof(version), (void *)call.ssl) &&
	    version >= HT_TLS1_0_VERSION && version <= HT_TLS1_3_VERSION)
		info->tls_version = version;
	if (call.ex_len) {
		if (ret != 1 || bpf_probe_read_user(&moved, sizeof(moved), (void *)call.ex_len))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		moved = ret;
	}
	if (moved == 0 || moved > 0x7fffffff)
		return 0;
	args.ts_enter = call.ts_enter;
	args.arg = call.buf;
	args.fd = (__s32)key;
	args.syscall = call.syscall;
	args.kind = HT_IO_BUF;
	args.direction = call.direction;
	ht_emit_io(pid_tgid, key, info, &args, (__s64)moved);
	return 0;
}

#endif /* HOPTRACE_BPF_TLS_BPF_H */
