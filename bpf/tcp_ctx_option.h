/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trace context across TLS in a TCP header option: the wire format and the
 * map values both BPF objects and the agent share. The programs are in
 * tcp_ctx_option.bpf.h; the README ("Context across TLS") documents the
 * format for other implementations.
 *
 * Why: an HTTPS request's headers are ciphertext on the wire, and writing
 * into the process's plaintext buffer is not allowed on our kernels
 * (bpf_probe_write_user, lockdown). Below TLS, TCP itself can carry the
 * context between two hosts that both run hoptrace.
 *
 * Wire format (one option, 28 bytes, on the data segment that carries the
 * first byte of a TLS request's record):
 *
 *   offset 0  kind       253 (RFC 4727 experimental, shared per RFC 6994)
 *   offset 1  length     28
 *   offset 2  ExID       0x4854 ("HT"): sampled; 0x4855: not sampled
 *                        (W3C trace-flags bit 0; other flags not carried)
 *   offset 4  trace-id   16 bytes, as in traceparent (network order)
 *   offset 20 parent-id  8 bytes: the sender's CLIENT span
 *
 * 28 bytes fit beside the 12 of timestamps (NOP NOP TS) in TCP's 40 bytes of
 * options. A segment that also carries SACK blocks has no room: the option
 * is then not sent (counted: no_room) and the receiver falls back. A trace
 * id or parent id of all zeros (W3C: invalid) is ignored by the receiver.
 */
#ifndef HOPTRACE_BPF_TCP_CTX_OPTION_H
#define HOPTRACE_BPF_TCP_CTX_OPTION_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define HT_TCPOPT_EXP 253
#define HT_TCPOPT_CTX_LEN 28
#define HT_TCPOPT_EXID_SAMPLED 0x4854
#define HT_TCPOPT_EXID_UNSAMPLED 0x4855

struct ht_tcp_ctx_option {
	__u8 kind; /* HT_TCPOPT_EXP */
	__u8 len;  /* HT_TCPOPT_CTX_LEN */
	__u8 exid[2]; /* big-endian HT_TCPOPT_EXID_* */
	__u8 trace_id[16];
	__u8 parent_id[8];
} __attribute__((packed));

/* Sender: a request's option waiting for its segment (map ht_tcpopt_out,
 * key: socket cookie). seq: the sequence number of the request's first byte
 * (the socket's write_seq when its first write began). */
struct ht_tcpopt_pending {
	struct ht_tcp_ctx_option opt;
	__u32 seq;
};

/* Receiver: the last context that arrived on a socket (map ht_tcpopt_in,
 * key: socket cookie), until the request head it came with is read. */
struct ht_tcpopt_received {
	__u8 trace_id[16];
	__u8 parent_id[8];
	__u8 flags; /* W3C trace-flags: bit 0 sampled */
	__u8 taken; /* a server span took it as parent */
	__u8 _pad[6];
};

#endif /* HOPTRACE_BPF_TCP_CTX_OPTION_H */
