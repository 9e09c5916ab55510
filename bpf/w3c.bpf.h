/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) in the kernel:
 * the same rules as agent/trace_context.cc, which the agent's unit tests and
 * the W3C suite check; a value either side accepts, both accept.
 */
#ifndef HOPTRACE_BPF_W3C_BPF_H
#define HOPTRACE_BPF_W3C_BPF_H

#include "socket_trace.h"

#define HT_TRACEPARENT_LEN 55 /* version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2 */
#define HT_TP_KEEP 64         /* characters of a traceparent value kept */

/* HEXDIGLC = DIGIT / "a" / "b" / "c" / "d" / "e" / "f"; upper case is invalid. */
static __always_inline int ht_hexlc(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static __always_inline int ht_hexbyte(const char *p)
{
	int hi = ht_hexlc(p[0]), lo = ht_hexlc(p[1]);

	if (hi < 0 || lo < 0)
		return -1;
	return hi << 4 | lo;
}

/* tp: the first HT_TP_KEEP characters of a traceparent value whose OWS-trimmed
 * length is len. Returns true and fills the ids and flags if it is valid. */
static __always_inline bool ht_parse_traceparent(const char *tp, __u32 len, __u8 *trace_id,
						 __u8 *parent_id, __u8 *flags)
{
	__u8 any_trace = 0, any_parent = 0;
	int version, f;

	/* "If the size of the header is shorter than 55 characters, the vendor
	 * should not parse the header and should restart the trace." */
	if (len < HT_TRACEPARENT_LEN)
		return false;
	version = ht_hexbyte(tp);
	if (version < 0 || version == 0xff || tp[2] != '-')
		return false;
	/* Version 00 is exactly 55 characters; a higher version may add fields
	 * after a "-". */
	if (version == 0 && len != HT_TRACEPARENT_LEN)
		return false;
	if (version != 0 && len > HT_TRACEPARENT_LEN && tp[HT_TRACEPARENT_LEN] != '-')
		return false;
	if (tp[35] != '-' || tp[52] != '-')
		return false;
	for (int i = 0; i < 16; i++) {
		int b = ht_hexbyte(tp + 3 + 2 * i);

		if (b < 0)
			return false;
		trace_id[i] = b;
		any_trace |= b;
	}
	for (int i = 0; i < 8; i++) {
		int b = ht_hexbyte(tp + 36 + 2 * i);

		if (b < 0)
			return false;
		parent_id[i] = b;
		any_parent |= b;
	}
	f = ht_hexbyte(tp + 53);
	/* All-zero trace-id and parent-id are invalid values. */
	if (f < 0 || !any_trace || !any_parent)
		return false;
	/* A higher version: only the sampled bit is known to mean anything. */
	*flags = version == 0 ? f : (f & 1);
	return true;
}

/* ---- tracestate ------------------------------------------------------------
 * list        = list-member 0*31( OWS "," OWS list-member )
 * list-member = key "=" value / OWS
 * key         = ( lcalpha / DIGIT ) 0*255( keychar )
 * keychar     = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"
 * value       = 0*255(chr) nblk-chr ; chr = %x20 / nblk-chr
 * nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
 * (the key grammar of the current specification, see agent/trace_context.cc).
 * A repeated key is passed on as it is, as the agent does. Checked one
 * character at a time (bpf_loop). */

#define HT_TS_MAX_MEMBERS 32

enum ht_ts_state {
	HT_TS_LEAD = 0, /* OWS before a member */
	HT_TS_KEY = 1,
	HT_TS_VALUE = 2,
	HT_TS_TRAIL = 3, /* OWS after a value */
	HT_TS_BAD = 4,
};

struct ht_ts_check {
	__u32 state;
	__u32 members;
	__u32 key_len;
	__u32 val_len;
	__u32 val_nows; /* value length without trailing spaces */
};

static __always_inline bool ht_is_keychar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '*' || c == '/' || c == '@';
}

static __always_inline bool ht_ts_member_done(struct ht_ts_check *k)
{
	if (k->val_nows < 1 || k->val_nows > 256 || k->members >= HT_TS_MAX_MEMBERS)
		return false;
	k->members++;
	return true;
}

/* bpf_loop wants its context on the stack; the state is too big for it. */
struct ht_ts_loop {
	struct ht_ts_check *k;
	const char *s; /* map value memory, HT_TRACESTATE_MAX bytes */
};

static long ht_ts_step(__u64 i, struct ht_ts_loop *l)
{
	struct ht_ts_check *k = l->k;
	char c = l->s[i & (HT_TRACESTATE_MAX - 1)];
	bool ows = c == ' ' || c == '\t';

	switch (k->state) {
	case HT_TS_LEAD:
		if (ows || c == ',')
			return 0; /* empty members are allowed */
		k->state = HT_TS_KEY;
		k->key_len = 0;
		if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9'))
			goto bad;
		goto key_char;
	case HT_TS_KEY:
		if (c == '=') {
			if (k->key_len > 256)
				goto bad;
			k->state = HT_TS_VALUE;
			k->val_len = 0;
			k->val_nows = 0;
			return 0;
		}
		if (!ht_is_keychar(c))
			goto bad;
key_char:
		k->key_len++;
		return 0;
	case HT_TS_VALUE:
		if (c == ',') {
			if (!ht_ts_member_done(k))
				goto bad;
			k->state = HT_TS_LEAD;
			return 0;
		}
		if (c == '\t') {
			k->state = HT_TS_TRAIL;
			return 0;
		}
		if (c < 0x20 || c > 0x7e || c == '=')
			goto bad;
		k->val_len++;
		if (c != ' ')
			k->val_nows = k->val_len;
		return 0;
	case HT_TS_TRAIL:
		if (ows)
			return 0;
		if (c == ',' && ht_ts_member_done(k)) {
			k->state = HT_TS_LEAD;
			return 0;
		}
		goto bad;
	default:
		return 1;
	}
bad:
	k->state = HT_TS_BAD;
	return 1;
}

/* True if s[0..len) is a valid tracestate list. k is scratch space. */
static __always_inline bool ht_tracestate_valid(struct ht_ts_check *k, const char *s, __u32 len)
{
	struct ht_ts_loop l = { .k = k, .s = s };

	if (len > HT_TRACESTATE_MAX)
		return false;
	k->state = HT_TS_LEAD;
	k->members = 0;
	bpf_loop(len, ht_ts_step, &l, 0);
	switch (k->state) {
	case HT_TS_LEAD:
		return true;
	case HT_TS_VALUE:
	case HT_TS_TRAIL:
		return ht_ts_member_done(k);
	default:
		return false; /* a key without "=", or a bad character */
	}
}

#endif /* HOPTRACE_BPF_W3C_BPF_H */
