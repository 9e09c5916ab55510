/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* From a file descriptor of the current task to its TCP socket and tuple,
 * with CO-RE reads only: syscall tracepoints hand us an fd, not a socket. */
#ifndef HOPTRACE_BPF_SOCK_BPF_H
#define HOPTRACE_BPF_SOCK_BPF_H

#include "socket_trace.h"

#define HT_AF_INET 2
#define HT_AF_INET6 10
#define HT_S_IFMT 00170000
#define HT_S_IFSOCK 0140000
#define HT_SOCK_STREAM 1
#define HT_IPPROTO_TCP 6
#define HT_TCP_CLOSE 7

/* The current task, for BPF_CORE_READ chains. Not bpf_get_current_task_btf()
 * (Linux 5.11, 3ca1032ab7ab "bpf: Implement get_current_task_btf and
 * RET_PTR_TO_BTF_ID"): 5.10 refuses it, and every read below goes through
 * bpf_probe_read_kernel either way, so the plain pointer costs nothing more. */
static __always_inline struct task_struct *ht_current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/* Returns the struct sock behind fd if it is a TCP socket (IPv4 or IPv6),
 * else NULL. */
static __always_inline struct sock *ht_tcp_sock_of_fd(__s32 fd)
{
	struct task_struct *task = ht_current_task();
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;
	struct sock *sk;
	unsigned int max_fds;
	umode_t mode;
	__u16 family, type, protocol;

	if (fd < 0)
		return NULL;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return NULL;
	max_fds = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned int)fd >= max_fds)
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & HT_S_IFMT) != HT_S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != HT_AF_INET && family != HT_AF_INET6)
		return NULL;
	type = BPF_CORE_READ(sk, sk_type);
	protocol = BPF_CORE_READ(sk, sk_protocol);
	if (type != HT_SOCK_STREAM || protocol != HT_IPPROTO_TCP)
		return NULL;
	return sk;
}

static __always_inline void ht_fill_tuple(struct sock *sk, struct ht_tuple *t)
{
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	/* Sizes spelled out: BPF_CORE_READ_INTO on an array copies one element. */
	if (t->family == HT_AF_INET) {
		bpf_core_read(t->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(t->remote_addr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(t->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(t->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

#endif /* HOPTRACE_BPF_SOCK_BPF_H */
