/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DESIGN (not built yet): trace context across TLS in a TCP header option.
 *
 * Why: an HTTPS request's headers are ciphertext on the wire, and writing
 * into the process's plaintext buffer is not allowed on our kernels
 * (bpf_probe_write_user, lockdown). Below TLS, TCP itself can carry the
 * context between two hosts that both run hoptrace.
 *
 * Wire format (one option, 28 bytes, on the first segment of a request):
 *
 *   kind 253 (RFC 4727 experimental) | length 28 | ExID (RFC 6994, 2 bytes)
 *   | trace-id (16 bytes) | parent-id (8 bytes)
 *
 *   ExID 0x4854 ("HT"): sampled; 0x4855: not sampled (W3C trace-flags bit 0;
 *   the other flags are not carried). trace-id and parent-id are the W3C
 *   traceparent's, in network order; parent-id is the sender's CLIENT span.
 *   28 bytes fit beside the 12 of timestamps (NOP NOP TS) in TCP's 40; a
 *   segment that also carries SACK blocks has no room: the option goes on
 *   the next segment of the same request, or not at all (counted).
 *
 * Sender (sockops on the propagation cgroup, selected processes only, off
 * with --no-propagation, exactly like traceparent injection):
 *   - the TLS early-write path (tls.bpf.h: an SSL_write's plaintext is
 *     reported before its first socket write) recognises a request start
 *     (ht_classify/head scan), takes the context the kernel picked for it
 *     (context.bpf.h, HT_CTX_PICKED) and stores {trace-id, span-id, flags,
 *     write_seq} in the socket's sk_storage: the request's first byte is
 *     write_seq at that moment;
 *   - BPF_SOCK_OPS_HDR_OPT_LEN_CB reserves 28 bytes (bpf_reserve_hdr_opt)
 *     for a data segment whose sequence range holds that byte, and
 *     BPF_SOCK_OPS_WRITE_HDR_OPT_CB writes it (bpf_store_hdr_opt), then
 *     forgets the pending context. Enabled per socket with
 *     BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG only while a context is pending.
 *
 * Receiver (sockops, BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG on sockets
 * of selected processes): BPF_SOCK_OPS_PARSE_HDR_OPT_CB finds the option
 * (bpf_load_hdr_opt, kind 253 + ExID) and stores {context, seq} in the
 * socket's sk_storage; when the process reads the request head (the TLS
 * uprobes' plaintext), the head scan takes it as the request's remote
 * parent (a new ht_ctx_origin, HT_CTX_TCP_OPTION) unless an in-band
 * traceparent is present, and the SERVER span is its child.
 *
 * Safety: RFC 9293 3.1 ("a TCP implementation MUST ignore without error any
 * TCP option it does not implement"), and the ExID of RFC 6994 keeps the
 * option from colliding with other experiments; to be proven by a test
 * with an untraced peer and byte-exact responses. Where the option does not
 * arrive (a middlebox strips it), the server span falls back to the
 * same-host link by connection tuple, and the miss is counted.
 *
 * Kernels: header-option callbacks are in 5.10 (0813a841566f "bpf: tcp:
 * Allow bpf prog to write and parse TCP header option"); the sender needs no
 * pid in sockops (the socket's owner comes from ht_sk_owners), so 6.1's
 * sockops restriction does not apply.
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
	__u8 exid[2];
	__u8 trace_id[16];
	__u8 parent_id[8];
} __attribute__((packed));

#endif /* HOPTRACE_BPF_TCP_CTX_OPTION_H */
