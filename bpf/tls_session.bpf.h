/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Which socket a TLS session (an OpenSSL SSL object) runs on.
 *
 * The uprobes on SSL_read/SSL_write see the SSL pointer and the plaintext,
 * never the socket. The socket is found, in this order:
 *
 *  1. by the read/write syscall the library makes on a socket while the call
 *     runs, on the same thread (fd BIOs: nginx, Python's ssl, curl's
 *     filter BIO) - exact, and it rebinds an SSL pointer that malloc reused;
 *  2. by the session's socket found before (a call served from the
 *     library's buffer makes no syscall), while that connection lives (its
 *     generation still in ht_conns);
 *  3. by the thread's last socket read, for libraries driven through
 *     memory BIOs (Node.js: libuv reads the ciphertext from the socket, then
 *     the same thread calls SSL_read; its writes follow SSL_write). Only a
 *     connection whose bytes were not recognised (ciphertext) and that no
 *     session has claimed yet qualifies.
 *
 * A socket found to carry TLS is marked (ht_conn_info.tls): its syscalls are
 * not reported any more, and its plaintext is classified afresh, so the
 * same bytes never make two spans. SSL_get_fd is not used: it needs a call
 * into the process, and returns -1 for memory and custom BIOs.
 *
 * Costs on the syscall path, only when the TLS probes are on (targ_tls):
 * one lookup of the thread's TLS call for a socket that is not plain HTTP,
 * and one update per read of a socket that may be TLS (tls.bpf.h).
 */
#ifndef HOPTRACE_BPF_TLS_SESSION_BPF_H
#define HOPTRACE_BPF_TLS_SESSION_BPF_H

#include "maps.bpf.h"

const volatile bool targ_tls = false; /* the TLS uprobes are loaded */

/* An SSL_read/SSL_write call in flight on a thread. */
struct ht_tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 ex_len; /* size_t * of SSL_*_ex (bytes moved), 0 for SSL_read/SSL_write */
	__u64 num;    /* bytes asked for (SSL_write: to write) */
	__u64 ts_enter;
	__s32 fd;       /* socket the call read or wrote, -1 until one is seen */
	__u16 syscall;  /* HT_SYS_SSL_READ / HT_SYS_SSL_WRITE */
	__u8 direction; /* enum ht_direction */
	__u8 emitted;   /* its data event went out already (tls.bpf.h: early writes) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ht_tls_call);
} ht_tls_calls SEC(".maps");

struct ht_tls_session_key {
	__u64 ssl;
	__u32 tgid;
	__u32 _pad;
};

/* A connection of one process, as (fd, generation). */
struct ht_tls_conn {
	__u64 gen;
	__s32 fd;
	__u32 _pad;
	/* Sessions only: an SSL_write reported early that did not complete;
	 * OpenSSL wants it retried with the same buffer and length, and those
	 * bytes must not be reported twice. */
	__u64 retry_buf;
	__u64 retry_num;
};

/* SSL object -> its socket. LRU: a session freed without notice costs a slot. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ht_tls_session_key);
	__type(value, struct ht_tls_conn);
} ht_tls_sessions SEC(".maps");

/* pid_tgid -> the last socket it read that may carry TLS. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct ht_tls_conn);
} ht_tls_last_reads SEC(".maps");

static __always_inline void ht_tls_mark(struct ht_conn_info *info)
{
	if (info->tls)
		return;
	info->tls = 1;
	/* The verdict on the ciphertext's first bytes is void: the first
	 * plaintext bytes decide the protocol. */
	info->proto = HT_PROTO_UNKNOWN;
}

#endif /* HOPTRACE_BPF_TLS_SESSION_BPF_H */
