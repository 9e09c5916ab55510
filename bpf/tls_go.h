/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Go crypto/tls (issue 12): types shared by bpf/tls_go.bpf.h and the agent
 * (agent/kernel/tls_uprobes.cc). Fixed-width types only.
 */
#ifndef HOPTRACE_BPF_TLS_GO_H
#define HOPTRACE_BPF_TLS_GO_H

#ifdef __BPF__
#include "vmlinux.h"
#else
#include <linux/types.h>
#endif

/* ht_gotls_procs value: what the probes need to know of one Go process. The
 * tls.Conn's net.Conn is followed to its fd only when its itab is the one of
 * *net.TCPConn (an address in the process, found in the binary's symbols):
 * the struct offsets below are those of that type, and of no other. */
struct ht_gotls_proc {
	__u64 tcpconn_itab; /* address of go:itab.*net.TCPConn,net.Conn in the process */
	/* Offsets, from the binary's Go version (uprobes/go/go_tls_sites.h):
	 * tls.Conn.conn (an interface: itab, data), net.TCPConn -> *netFD
	 * (conn.fd), netFD -> poll.FD.Sysfd. */
	__u32 conn_off;
	__u32 netfd_off;
	__u32 sysfd_off;
	__u32 _pad;
};

/* ht_gotls_calls key: a call in flight on a goroutine (runtime.g address,
 * from R14), not a thread: a goroutine that blocks inside Read resumes on
 * another thread, and another goroutine runs on this one meanwhile. */
struct ht_gotls_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};

#endif /* HOPTRACE_BPF_TLS_GO_H */
