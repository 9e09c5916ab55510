/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Recognising database protocols at a stream's first bytes: PostgreSQL's
 * first message and a Redis command. The agent's parsers check the same
 * (agent/protocols/postgres, agent/protocols/redis: LooksLikeStart), as
 * tests/unit/db_protocol_parity_test.cc checks. */
#ifndef HOPTRACE_BPF_DB_PROTOCOLS_BPF_H
#define HOPTRACE_BPF_DB_PROTOCOLS_BPF_H

#include "socket_trace.h"

/* PostgreSQL protocol 3.0, "Message Formats": the first message has no type
 * byte: Int32 length, Int32 code. StartupMessage: code 196608 (3.0), a
 * length up to 10000 (MAX_STARTUP_PACKET_LENGTH); SSLRequest 80877103 and
 * GSSENCRequest 80877104: length 8. All 8 bytes are needed: libpq sends the
 * message in one write, so a shorter first segment is not a PostgreSQL start. */
#define HT_PG_PROTOCOL_V3 196608
#define HT_PG_SSL_REQUEST 80877103
#define HT_PG_GSSENC_REQUEST 80877104
#define HT_PG_MAX_STARTUP 10000

/* Big-endian Int32 at b[at], at a constant: b + at would let clang compute
 * the address with "|=" (see ht_load8). */
static __always_inline __u32 ht_be32(const __u8 *b, __u32 at)
{
	return (__u32)b[at] << 24 | (__u32)b[at + 1] << 16 | (__u32)b[at + 2] << 8 | b[at + 3];
}

static __always_inline bool ht_looks_like_postgres(const __u8 *b, __u32 n)
{
	__u32 len, code;

	if (n < 8)
		return false;
	len = ht_be32(b, 0);
	code = ht_be32(b, 4);
	if (code == HT_PG_SSL_REQUEST || code == HT_PG_GSSENC_REQUEST)
		return len == 8;
	return code == HT_PG_PROTOCOL_V3 && len > 9 && len <= HT_PG_MAX_STARTUP;
}

/* RESP (the Redis serialization protocol): a command is an array of bulk
 * strings, "*<count>\r\n$<len>\r\n...". Checked: '*', a count of 1 to 5
 * digits not starting with 0, CRLF, then '$' when it is among the n bytes.
 * Inline commands ("PING\r\n") are not recognised: their first bytes are any
 * word, as HTTP's. */

/* The 8 bytes as one scalar, b[k] in bits 8k..8k+7. The checks below index
 * the scalar, not the stack copy: a variable index into the stack makes
 * clang compute the address with "|=", which the verifier rejects on
 * pointers (and clang merges the constant-index cases into a variable one). */
static __always_inline __u64 ht_load8(const __u8 *b)
{
	return (__u64)b[0] | (__u64)b[1] << 8 | (__u64)b[2] << 16 | (__u64)b[3] << 24 |
	       (__u64)b[4] << 32 | (__u64)b[5] << 40 | (__u64)b[6] << 48 | (__u64)b[7] << 56;
}

static __always_inline __u8 ht_byte(__u64 w, __u32 k)
{
	return (__u8)(w >> ((k & 7) * 8));
}

/* b must hold 8 bytes (the first n of them moved by the syscall). */
static __always_inline bool ht_looks_like_resp(const __u8 *b, __u32 n)
{
	__u64 w = ht_load8(b);

	if (n < 4 || ht_byte(w, 0) != '*' || ht_byte(w, 1) < '1' || ht_byte(w, 1) > '9')
		return false;
	/* The count's digits, then CRLF at p, p + 1. */
	for (__u32 p = 2; p < 7; p++) {
		__u8 c = ht_byte(w, p);

		if (p + 1 >= n)
			return false;
		if (c >= '0' && c <= '9')
			continue;
		if (c != '\r' || ht_byte(w, p + 1) != '\n')
			return false;
		return p + 2 >= n || ht_byte(w, p + 2) == '$';
	}
	return false;
}

#endif /* HOPTRACE_BPF_DB_PROTOCOLS_BPF_H */
