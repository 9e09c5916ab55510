/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* The shared logic of the syscall programs: which sockets we track, whether
 * a stream looks like HTTP, and how a read/write becomes a data event. */
#ifndef HOPTRACE_BPF_CAPTURE_BPF_H
#define HOPTRACE_BPF_CAPTURE_BPF_H

#include "maps.bpf.h"
#include "sock.bpf.h"
#ifndef HT_NO_KERNEL_CTX
#include "head_scan.bpf.h"
#include "runtime_wakeup.bpf.h"
#else
/* The capture-only build (socket_trace_capture in bpf/CMakeLists.txt): no
 * kernel-side contexts. Their scans are bpf_loop callbacks (bpf_loop: Linux
 * 5.17, e6f2dd0f8067 "bpf: Add bpf_loop helper"), and a kernel that does not
 * know bpf_loop refuses the whole object, not only the programs that call it:
 * it does not count the callbacks as functions ("number of funcs in
 * func_info doesn't match"). */
static __always_inline void ht_hs_conn_gone(__u64 key) {}
static __always_inline void ht_go_syscall_enter(__u64 pid_tgid, bool connect) {}
static __always_inline void ht_go_syscall_exit(__u64 pid_tgid) {}
static __always_inline void ht_wk_enter(__u64 pid_tgid) {}
static __always_inline void ht_wk_exit(__u64 pid_tgid) {}
#endif
#include "db_protocols.bpf.h"
#include "runtime_python.bpf.h"
#include "tls_session.bpf.h"

#define HT_EINPROGRESS 115

static __always_inline bool ht_port_selected(__u16 port)
{
	return bpf_map_lookup_elem(&ht_selected_ports, &port) != NULL;
}

/* ht_conn_start's working copies, off the stack: its callers take nearly all
 * of the 512 bytes a program and the functions it calls may use together. */
struct ht_conn_start_scratch {
	struct ht_conn_info info;
	struct ht_sk_owner owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_conn_start_scratch);
} ht_conn_scratch SEC(".maps");

/* Starts tracking fd of the current process if it is a TCP socket and the
 * process (or, for new connections, the port) is selected; returns whether
 * it does. A global function (scalars in, a scalar out): the verifier checks
 * its many branches (the walk from fd to socket, the selection) once, not
 * once more for every way the rest of each calling program goes. */
__attribute__((noinline)) int ht_conn_start(__u32 tgid, __s32 fd, __u32 role)
{
	__u32 zero = 0;
	struct ht_conn_start_scratch *s = bpf_map_lookup_elem(&ht_conn_scratch, &zero);
	struct sock *sk = ht_tcp_sock_of_fd(fd);
	__u64 key = ht_conn_key(tgid, fd);

	if (!sk || !s)
		return 0;
	__builtin_memset(&s->info, 0, sizeof(s->info));
	ht_fill_tuple(sk, &s->info.tuple);
	if (!ht_pid_selected(tgid)) {
		if (!targ_port_filter || role == HT_ROLE_UNKNOWN || tgid == targ_agent_tgid)
			return 0;
		if (!ht_port_selected(s->info.tuple.local_port) &&
		    !ht_port_selected(s->info.tuple.remote_port))
			return 0;
	}
	s->info.gen = bpf_ktime_get_ns();
	s->info.role = role;
	s->info.sk = (__u64)sk;
	if (bpf_map_update_elem(&ht_conns, &key, &s->info, BPF_ANY)) {
		ht_count(HT_CNT_CONN_MAP_FULL);
		return 0;
	}
	s->owner.conn_key = key;
	s->owner.gen = s->info.gen;
	s->owner.quiet_until_us = 0;
	bpf_map_update_elem(&ht_sk_owners, &s->info.sk, &s->owner, BPF_ANY);
	return 1;
}

/* ht_conn_start(), and the connection it started, or NULL. */
static __always_inline struct ht_conn_info *ht_conn_register(__u32 tgid, __s32 fd, __u32 role)
{
	__u64 key = ht_conn_key(tgid, fd);

	if (!ht_conn_start(tgid, fd, role))
		return NULL;
	return bpf_map_lookup_elem(&ht_conns, &key);
}

/* The connection fd of the current process, registering it on first sight
 * (sockets opened before the agent started). NULL if not traced. The
 * process is asked first: for one not selected (nearly every syscall on the
 * host) that is an inlined array load and the only lookup. */
static __always_inline struct ht_conn_info *ht_conn_lookup(__u32 tgid, __s32 fd)
{
	__u64 key = ht_conn_key(tgid, fd);
	struct ht_conn_info *info;
	bool selected = ht_pid_selected(tgid);

	if (!selected && !targ_port_filter)
		return NULL;
	info = bpf_map_lookup_elem(&ht_conns, &key);
	if (info || !selected)
		return info;
	return ht_conn_register(tgid, fd, HT_ROLE_UNKNOWN);
}

/* RFC 9112 start lines: "METHOD SP" for requests, "HTTP/" for responses.
 * Only the first bytes of a stream are checked; later bytes go to the parser. */
static const char ht_http_starts[10][4] = {
	"GET ", "POST", "PUT ", "PATC", "HEAD", "HTTP", "DELE", "OPTI", "CONN", "TRAC",
};

/* True if the first n (1..4) bytes of b begin one of ht_http_starts. A short
 * first segment ("G" then "ET / ...") is a prefix, not a verdict: a false
 * positive costs the agent's parser a resync, a false negative the stream. */
static __always_inline bool ht_looks_like_http(const __u8 *b, __u32 n)
{
	for (int i = 0; i < 10; i++) {
		bool match = true;

		for (int j = 0; j < 4; j++) {
			if (j < n && b[j] != (__u8)ht_http_starts[i][j])
				match = false;
		}
		if (match)
			return true;
	}
	return false;
}

/* RFC 9113 3.4: the client's connection preface begins
 * "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"; its first 8 bytes say it (at least 4
 * of them: a shorter first segment is left to the HTTP/1 prefix test). A
 * server may write its own preface, a SETTINGS frame, before it reads the
 * client's: length < 256 and a multiple of 6, type 4, no flags, stream 0.
 * b must hold at least 9 bytes, zero past n (words, no table: see
 * head_scan.bpf.h). */
static __always_inline bool ht_looks_like_http2(const __u8 *b, __u32 n)
{
	const __u64 preface = HT_W8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T');
	__u64 w;

	/* b holds n bytes then zeros: the first 8 as one word, no loop. */
	__builtin_memcpy(&w, b, sizeof(w));
	if (n >= 8 && w == preface)
		return true;
	if (n >= 4 && n < 8 && w == (preface & ((1ULL << (8 * n)) - 1)))
		return true;
	return n >= 9 && w == ((__u64)4 << 24 | (__u64)b[2] << 16) && b[2] % 6 == 0 && b[8] == 0;
}

static __always_inline void ht_fill_header(struct ht_event_header *h, __u32 type, __u64 pid_tgid,
					   __s32 fd, __u64 gen, __u64 ts_enter, __u64 ts_exit)
{
	h->type = type;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->fd = fd;
	h->conn_gen = gen;
	h->ts_enter_ns = ts_enter;
	h->ts_exit_ns = ts_exit;
}

static __always_inline void ht_emit_conn(__u32 type, __u64 pid_tgid, __s32 fd,
					 struct ht_conn_info *info, __u64 ts)
{
	struct ht_conn_event ev = {};

	ht_fill_header(&ev.hdr, type, pid_tgid, fd, info->gen, ts, ts);
	ev.tuple = info->tuple;
	ev.role = info->role;
	ev.protocol = info->proto;
	ev.flags = info->tls ? HT_CONN_F_TLS : 0;
	ev.tls_version = info->tls_version;
	if (bpf_ringbuf_output(&ht_events, &ev, sizeof(ev), 0))
		ht_count(HT_CNT_RINGBUF_DROPS);
}

/* Copies up to `want` bytes of one user buffer to payload[off..]. */
static __always_inline __u32 ht_copy_user(struct ht_data_scratch *s, __u32 off, __u64 src,
					  __u64 want)
{
	__u32 n;

	if (off >= HT_MAX_PAYLOAD)
		return 0;
	n = want > HT_MAX_PAYLOAD ? HT_MAX_PAYLOAD : (__u32)want;
	/* Bounds the verifier can follow: off < MAX and n <= MAX, buffer is 2*MAX.
	 * The empty asms keep clang from dropping the masks as redundant, and
	 * from passing a register the mask was not applied to (it knows n ==
	 * want here, but 5.10's verifier does not: "R2 unbounded memory
	 * access"). */
	asm volatile("" : "+r"(off));
	asm volatile("" : "+r"(n));
	off &= HT_MAX_PAYLOAD - 1;
	n &= (2 * HT_MAX_PAYLOAD) - 1;
	if (n > HT_MAX_PAYLOAD)
		return 0;
	if (bpf_probe_read_user(&s->ev.payload[off], n, (const void *)src))
		return 0;
	return n;
}

/* The first bytes of the data the syscall moved, wherever they lie. */
static __always_inline __u64 ht_first_buf(const struct ht_io_args *a, __u64 *first_len)
{
	struct ht_iovec iov = {};

	if (a->kind == HT_IO_BUF) {
		*first_len = ~0ULL;
		return a->arg;
	}
	if (a->iovcnt == 0 || bpf_probe_read_user(&iov, sizeof(iov), (const void *)a->arg))
		return 0;
	*first_len = iov.len;
	return iov.base;
}

/* The protocol (enum ht_protocol) the first n bytes of a stream start. */
static __always_inline __u8 ht_recognise(const __u8 *b, __u32 n)
{
	if (ht_looks_like_http(b, n))
		return HT_PROTO_HTTP1;
	if (ht_looks_like_http2(b, n))
		return HT_PROTO_HTTP2;
	if (ht_looks_like_postgres(b, n))
		return HT_PROTO_POSTGRES;
	if (ht_looks_like_resp(b, n))
		return HT_PROTO_REDIS;
	return HT_PROTO_OTHER;
}

/* Under overload (keep < HT_SHED_KEEP_ALL): whether to shed a request (or a
 * connection). A client request follows its thread's current server request;
 * anything else is a coin weighted by the ratio. */
static __always_inline bool ht_shed_this(const struct ht_conn_info *info, __u32 keep)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u8 *thread;

	if (info->role == HT_ROLE_CLIENT) {
		thread = bpf_map_lookup_elem(&ht_thread_shed, &pid_tgid);
		if (thread)
			return *thread == 2;
	}
	return (bpf_get_prandom_u32() % HT_SHED_KEEP_ALL) >= keep;
}

/* A thread that reads a request on a server connection serves a kept (1) or
 * a shed (2) request from now on. */
static __always_inline void ht_shed_note_thread(const struct ht_conn_info *info, bool shed)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u8 state = shed ? 2 : 1;

	if (info->role != HT_ROLE_CLIENT)
		bpf_map_update_elem(&ht_thread_shed, &pid_tgid, &state, BPF_ANY);
}

/* HTTP/1: whether this syscall's bytes belong to a shed request (or its
 * response). Decided at each syscall that starts a request in the request
 * direction (a server reads requests, a client writes them); everything until
 * the next such syscall follows that decision. Costs one array lookup while
 * nothing is shed. */
static __always_inline bool ht_shed_request(struct ht_conn_info *info, const struct ht_io_args *a,
					    __s64 ret)
{
	__u32 keep = ht_shed_keep();
	__u8 head[4] = {};
	__u64 first_len = 0;
	__u64 buf;
	__u32 n = sizeof(head);
	bool request_dir;

	if (keep == HT_SHED_KEEP_ALL && !info->shed)
		return false;
	request_dir = info->role == HT_ROLE_CLIENT ? a->direction == HT_DIR_EGRESS
						   : a->direction == HT_DIR_INGRESS;
	if (!request_dir)
		return info->shed;
	buf = ht_first_buf(a, &first_len);
	if ((__u64)ret < n)
		n = (__u32)ret;
	if (first_len < n)
		n = (__u32)first_len;
	if (!buf || n == 0 || bpf_probe_read_user(head, sizeof(head), (const void *)buf))
		return info->shed;
	/* A request starts with a method; "HTTP" would start a response. */
	if (!ht_looks_like_http(head, n) ||
	    (head[0] == 'H' && head[1] == 'T' && head[2] == 'T' && head[3] == 'P'))
		return info->shed;
	info->shed = keep < HT_SHED_KEEP_ALL && ht_shed_this(info, keep);
	if (info->shed)
		ht_count(HT_CNT_SHED);
	if (keep < HT_SHED_KEEP_ALL)
		ht_shed_note_thread(info, info->shed);
	return info->shed;
}

/* Decides, from the first bytes ever moved on the socket, whether to follow it. */
static __always_inline bool ht_classify(struct ht_conn_info *info, const struct ht_io_args *a,
					__s64 ret)
{
	__u8 head[16] = {};
	__u64 first_len = 0, len;
	__u64 buf;
	__u32 n;

	if (info->proto != HT_PROTO_UNKNOWN)
		return !ht_proto_ignored(info->proto);
	buf = ht_first_buf(a, &first_len);
	n = sizeof(head);
	if ((__u64)ret < n)
		n = (__u32)ret;
	if (first_len < n)
		n = (__u32)first_len;
	if (!buf || n == 0)
		return false; /* nothing to tell from; wait for the next call */
	/* Exactly the bytes the call moved, all of them readable; the bound is
	 * restated for the verifier on a 64-bit copy that clang must pass as
	 * it is (the empty asm: else it passes first_len or ret, whose bound
	 * 5.10's verifier does not learn from a 32-bit copy's comparison). */
	len = n;
	asm volatile("" : "+r"(len));
	if (len > sizeof(head))
		len = sizeof(head);
	if (bpf_probe_read_user(head, len, (const void *)buf))
		return false;
	info->proto = ht_recognise(head, n);
	/* HTTP/1 is shed request by request (ht_shed_request); other protocols
	 * whole, here. */
	if (info->proto != HT_PROTO_OTHER && info->proto != HT_PROTO_HTTP1) {
		__u32 keep = ht_shed_keep();

		if (keep < HT_SHED_KEEP_ALL && ht_shed_this(info, keep)) {
			info->proto = HT_PROTO_SHED;
			ht_count(HT_CNT_SHED);
		}
	}
	return !ht_proto_ignored(info->proto);
}

/* Iovecs past the first HT_MAX_IOV that ht_fill_data also copies, while
 * payload room remains: gRPC C-core (python3-grpcio, grpc++) writes one
 * iovec per slice, and its trailers (grpc-status) come last. */
#define HT_MAX_IOV_MORE 64

/* Copies iovecs [HT_MAX_IOV, min(iovcnt, HT_MAX_IOV_MORE)) of the array at
 * iov_arr to the scratch payload from off, up to limit; returns the new
 * end. A global function (scalars in and out): the verifier checks it once
 * per program, apart from its callers, instead of at every exit program's
 * inlined copy of the loop (~72k instructions as a bpf_loop callback). */
__attribute__((noinline)) int ht_copy_more_iov(__u64 iov_arr, __u32 iovcnt, __u32 off,
					      __u32 limit)
{
	__u32 zero = 0;
	struct ht_data_scratch *s = bpf_map_lookup_elem(&ht_scratch, &zero);

	if (!s || limit > HT_MAX_PAYLOAD)
		return off;
	for (int i = HT_MAX_IOV; i < HT_MAX_IOV_MORE; i++) {
		struct ht_iovec iov = {};

		if (i >= iovcnt || off >= limit)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)(iov_arr + i * sizeof(iov))))
			break;
		if (iov.len > limit - off)
			iov.len = limit - off;
		off += ht_copy_user(s, off, iov.base, iov.len);
	}
	return off;
}

/* off, or more past it: the iovecs of an array of iovcnt at arg past the
 * first HT_MAX_IOV, while room remains below limit. */
static __always_inline __u32 ht_copy_rest(__u64 arg, __u32 iovcnt, __u32 off, __u32 limit)
{
	if (iovcnt > HT_MAX_IOV && off < limit) {
		off = ht_copy_more_iov(arg, iovcnt, off, limit);
		if (off > limit)
			off = limit;
	}
	return off;
}

/* Copies the bytes a syscall moved, at most limit (<= HT_MAX_PAYLOAD), to
 * the scratch payload s: one buffer (kind HT_IO_BUF, at arg) or an iovec
 * array of iovcnt at arg, its first HT_MAX_IOV entries read into iov, and
 * (more) the next ones while room remains. Returns how many. */
static __always_inline __u32 ht_copy_args(struct ht_data_scratch *s, struct ht_iovec *iov,
					  __u64 arg, __u32 iovcnt, __u8 kind, __u32 limit,
					  bool more)
{
	__u32 off = 0;
	__u64 n, size;

	if (kind == HT_IO_BUF)
		return ht_copy_user(s, 0, arg, limit);
	n = iovcnt < HT_MAX_IOV ? iovcnt : HT_MAX_IOV;
	size = n * sizeof(iov[0]);
	/* The first HT_MAX_IOV entries in one read, not one read each:
	 * every bpf_probe_read_user is a helper call with its own
	 * fault-handling set-up, dearer than the 16 bytes it moves, and
	 * the syscall has just read the whole array itself. The bound is
	 * restated on the register passed (see ht_copy_user). */
	asm volatile("" : "+r"(size));
	if (size > HT_MAX_IOV * sizeof(iov[0]))
		size = HT_MAX_IOV * sizeof(iov[0]);
	if (bpf_probe_read_user(iov, size, (const void *)arg))
		n = 0;
	for (int i = 0; i < HT_MAX_IOV; i++) {
		__u64 len = iov[i].len;

		if (i >= n || off >= limit)
			break;
		if (len > limit - off)
			len = limit - off;
		off += ht_copy_user(s, off, iov[i].base, len);
	}
	return more ? ht_copy_rest(arg, iovcnt, off, limit) : off;
}

/* ht_copy_args for a write's bytes, as a global function (scalars in and
 * out, like ht_copy_more_iov): the verifier checks the copy once per
 * program, with its arguments unknown, instead of once for each way a
 * write's exit reaches it (the entry's slot; the user registers, for a
 * server's write followed at its exit alone), each with its own bounds.
 * Default load, most of any write exit: 6.1 221 k -> 130 k instructions;
 * 6.18 capture-only 209 k -> 139 k. Not for reads: before Linux 6.5 the
 * verifier cannot carry precision back across a call to a subprogram and
 * marks every scalar precise instead, which pruned the request-head scan
 * after a read's copy so much worse that 6.1's recvmsg exit went to 389 k. */
__attribute__((noinline)) int ht_copy_write(__u64 arg, __u32 iovcnt, __u32 kind, __u32 limit)
{
	__u32 zero = 0;
	struct ht_data_scratch *s = bpf_map_lookup_elem(&ht_scratch, &zero);

	if (!s || limit > HT_MAX_PAYLOAD)
		return 0;
	/* The iovecs in the scratch value: this frame and the exit
	 * program's share 512 bytes of stack, and the latter uses most. */
	return ht_copy_args(s, s->iov, arg, iovcnt, (__u8)kind, limit, false);
}

/* Builds the data event of a syscall in the scratch buffer; returns it, or
 * NULL. ht_submit_data() sends it. write_prog: the caller is the exit
 * program of a write-family syscall (a constant there), which copies with
 * ht_copy_write. */
static __always_inline struct ht_data_scratch *ht_fill_data(__u64 pid_tgid,
							    struct ht_conn_info *info,
							    const struct ht_io_args *a, __s64 ret,
							    __u64 ts_exit, bool write_prog)
{
	__u32 zero = 0, limit, off;
	struct ht_data_scratch *s = bpf_map_lookup_elem(&ht_scratch, &zero);

	if (!s)
		return NULL;
	limit = targ_max_payload < HT_MAX_PAYLOAD ? targ_max_payload : HT_MAX_PAYLOAD;
	if ((__u64)ret < limit)
		limit = (__u32)ret;
	if (write_prog) {
		off = ht_copy_write(a->arg, a->iovcnt, a->kind, limit);
		if (off > limit)
			off = limit;
		/* Not from inside ht_copy_write: three frames would pass the
		 * 512 bytes of stack the exit programs and the copies share. */
		if (a->kind != HT_IO_BUF)
			off = ht_copy_rest(a->arg, a->iovcnt, off, limit);
	} else {
		struct ht_iovec iov[HT_MAX_IOV] = {};

		off = ht_copy_args(s, iov, a->arg, a->iovcnt, a->kind, limit, true);
	}

	ht_fill_header(&s->ev.hdr, HT_EV_DATA, pid_tgid, a->fd, info->gen, a->ts_enter, ts_exit);
	s->ev.direction = a->direction;
	s->ev.syscall = a->syscall;
	s->ev.bytes = (__u64)ret;
	s->ev.captured = off;
	s->ev._pad = 0;
	if ((__u64)ret > off)
		ht_count(HT_CNT_TRUNCATED);
	return s;
}

static __always_inline void ht_submit_data(struct ht_data_scratch *s)
{
	__u32 off = s->ev.captured;

	ht_count(HT_CNT_DATA_EVENTS);
	/* off <= HT_MAX_PAYLOAD already; the mask restates it for the verifier
	 * (the scratch value is 3 * MAX long, so any masked value fits). */
	asm volatile("" : "+r"(off));
	if (bpf_ringbuf_output(&ht_events, &s->ev, sizeof(s->ev) + (off & (2 * HT_MAX_PAYLOAD - 1)),
			       0))
		ht_count(HT_CNT_RINGBUF_DROPS);
}

/* Bytes a process moved on a followed connection (a syscall's, or TLS
 * plaintext): classify the stream at its first bytes, announce the
 * connection once, decide kernel-side contexts, send the data event. */
static __always_inline void ht_emit_io(__u64 pid_tgid, __u64 key, struct ht_conn_info *info,
				       struct ht_io_args *args, __s64 ret, bool write_prog)
{
	struct ht_data_scratch *s;
	__u64 now;

	if (!ht_classify(info, args, ret))
		return;
	if (info->proto == HT_PROTO_HTTP1 && ht_shed_request(info, args, ret))
		return;
	now = bpf_ktime_get_ns();
	if (args->at_exit)
		args->ts_enter = now;
	if (!info->reported) {
		info->reported = 1;
		ht_emit_conn(HT_EV_CONN_OPEN, pid_tgid, args->fd, info, args->ts_enter);
	}
	s = ht_fill_data(pid_tgid, info, args, ret, now, write_prog);
	if (!s)
		return;
#ifndef HT_NO_KERNEL_CTX
	/* The context event goes first: the agent decides the span's context
	 * when this data event completes the request head. */
	if (targ_kernel_ctx) {
		__u32 captured = s->ev.captured & (HT_MAX_PAYLOAD - 1);

		if (s->ev.captured >= HT_MAX_PAYLOAD)
			captured = HT_MAX_PAYLOAD - 1;
		if (args->direction == HT_DIR_INGRESS)
			ht_hs_ingress(pid_tgid, key, info, args, ret, s->ev.payload, captured);
		else {
			ht_hs_egress(key, info, s->ev.payload, captured);
			ht_hs_request_out(pid_tgid, args, info, s->ev.payload, captured);
			/* Go: the syscall's last pick is done (not after the whole
			 * of ht_emit_io: every path through it would pay). */
			ht_go_write_done(pid_tgid);
		}
	}
#endif
	ht_submit_data(s);
}

/* TLS: the uprobe programs' logic and the syscall path's part in it. */
#include "tls.bpf.h"

/* Syscall entry of the read/write family: remember the arguments if fd is a
 * followed socket. Everything else costs a lookup or two and a return. */
static __always_inline int ht_io_enter(__s32 fd, __u64 arg, __u32 iovcnt, __u8 kind,
				       __u16 syscall, __u8 direction)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ht_conn_info *info = ht_conn_lookup(pid_tgid >> 32, fd);
	struct ht_io_args *slot, a = {};

	if (!info)
		return 0;
#ifdef HT_NO_KERNEL_CTX
	/* A server's write is read back at its exit (ht_io_exit): no clock
	 * read, no slot to write here. (Only this build sets the knob: the
	 * code stays out of the other, whose entries are near their budget.) */
	if (targ_server_writes_at_exit && direction == HT_DIR_EGRESS && info->role == HT_ROLE_SERVER)
		return 0;
#endif
	/* A write serves the request the Python code runs for (before the TLS
	 * check: an SSL_write's plaintext may be emitted, and picked, there). */
	if (direction == HT_DIR_EGRESS)
		ht_py_syscall_enter(pid_tgid);
	if (ht_tls_on_syscall(pid_tgid, fd, info, direction) || info->proto == HT_PROTO_OTHER)
		return 0;
	if (info->proto == HT_PROTO_SHED)
		return 0;
	a.ts_enter = bpf_ktime_get_ns();
	a.arg = arg;
	a.iovcnt = iovcnt;
	a.fd = fd;
	a.syscall = syscall;
	a.kind = kind;
	a.direction = direction;
	a.live = 1;
	a.wk = direction == HT_DIR_EGRESS && info->role == HT_ROLE_CLIENT;
	/* The thread's slot, rewritten in place (see ht_active_io): only this
	 * thread writes it, between its own entry and exit, and the sk_msg
	 * program that runs inside this syscall sets prop_seen after. */
	slot = bpf_map_lookup_elem(&ht_active_io, &pid_tgid);
	if (slot)
		*slot = a;
	else
		bpf_map_update_elem(&ht_active_io, &pid_tgid, &a, BPF_ANY);
	if (direction == HT_DIR_EGRESS)
		ht_go_syscall_enter(pid_tgid, false);
	if (a.wk)
		ht_wk_enter(pid_tgid);
	return 0;
}

/* sendmsg/recvmsg carry their buffers in a user struct msghdr. */
static __always_inline int ht_msg_enter(__s32 fd, __u64 msg, __u16 syscall, __u8 direction)
{
	struct user_msghdr m = {};

	/* Not a user read for every other process's sendmsg/recvmsg. */
	if (!ht_may_own_conns(bpf_get_current_pid_tgid() >> 32))
		return 0;
	if (bpf_probe_read_user(&m, sizeof(m), (const void *)msg))
		return 0;
	return ht_io_enter(fd, (__u64)m.msg_iov, (__u32)m.msg_iovlen, HT_IO_IOV, syscall, direction);
}

/* The arguments of the current read/write-family syscall, from the user
 * registers its entry saved (only where bpf_task_pt_regs exists: see
 * ht_read_exit): the buffer, or the iovec array and its length, into *a.
 * False if the msghdr of a sendmsg/recvmsg cannot be read. */
static __always_inline bool ht_args_from_regs(struct pt_regs *regs, __u16 syscall,
					      struct ht_io_args *a)
{
	a->arg = PT_REGS_PARM2_SYSCALL(regs);
	a->kind = HT_IO_BUF;
	if (syscall == HT_SYS_READV || syscall == HT_SYS_WRITEV) {
		a->kind = HT_IO_IOV;
		a->iovcnt = (__u32)PT_REGS_PARM3_SYSCALL(regs);
	} else if (syscall == HT_SYS_RECVMSG || syscall == HT_SYS_SENDMSG) {
		struct user_msghdr m = {};

		/* The kernel copied the header in and leaves it as it was. */
		if (bpf_probe_read_user(&m, sizeof(m), (const void *)a->arg))
			return false;
		a->kind = HT_IO_IOV;
		a->arg = (__u64)m.msg_iov;
		a->iovcnt = (__u32)m.msg_iovlen;
	}
	a->syscall = syscall;
	a->at_exit = 1;
	return true;
}

/* What a syscall followed at its exit alone (a read, ht_read_exit; a
 * server's write, ht_io_exit) needs past finding its connection: the TLS
 * bookkeeping an entry would have done (whatever the syscall returned), the
 * checks that its bytes are wanted, and its arguments from the user
 * registers into *a. False when no data event is due. */
static __always_inline bool ht_args_at_exit(__u64 pid_tgid, struct pt_regs *regs, __s32 fd,
					    struct ht_conn_info *info, __s64 ret, __u16 syscall,
					    __u8 direction, struct ht_io_args *a)
{
	if (ht_tls_on_syscall(pid_tgid, fd, info, direction) || ret <= 0 ||
	    info->proto == HT_PROTO_OTHER || info->proto == HT_PROTO_SHED ||
	    !ht_args_from_regs(regs, syscall, a))
		return false;
	a->fd = fd;
	a->direction = direction;
	return true;
}

/* The exit of a read/write-family syscall (syscall: which), in a process that
 * may own connections (the caller asked). Its entry recorded it
 * (ht_io_enter), or, for a server's write where targ_server_writes_at_exit,
 * left it to here: its arguments are read back as ht_read_exit reads them,
 * and its data event, like a read's, has the exit time for both times (a
 * server span ends at its response's exit; nothing reads a response's
 * entry). Returns whether the entry gave the thread a wake-up context
 * (ht_wk_enter) for the caller to end. */
static __always_inline bool ht_io_exit(__u64 pid_tgid, __s64 ret, __u16 syscall)
{
	struct ht_io_args *a;
	struct ht_conn_info *info;
	struct ht_io_args args = {};
	__u64 key;

	a = bpf_map_lookup_elem(&ht_active_io, &pid_tgid);
	if (a && a->live) {
		args = *a;
		/* Only the live flag: the next entry rewrites the whole slot. */
		a->live = 0;
		if (ret <= 0) {
			ht_go_syscall_exit(pid_tgid);
			return args.wk;
		}
		key = ht_conn_key(pid_tgid >> 32, args.fd);
		info = bpf_map_lookup_elem(&ht_conns, &key);
		/* tls: became TLS since the entry (a TLS call bound it meanwhile). */
		if (!info || info->tls) {
			ht_go_syscall_exit(pid_tgid);
			return args.wk;
		}
	} else if (targ_server_writes_at_exit && syscall >= HT_SYS_WRITE &&
		   syscall <= HT_SYS_SENDMSG) {
		struct pt_regs *regs =
			(struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
		__s32 fd = (__s32)PT_REGS_PARM1_SYSCALL(regs);

		key = ht_conn_key(pid_tgid >> 32, fd);
		info = bpf_map_lookup_elem(&ht_conns, &key);
		/* Any other write had its entry recorded, or is not followed. */
		if (!info || info->role != HT_ROLE_SERVER ||
		    !ht_args_at_exit(pid_tgid, regs, fd, info, ret, syscall, HT_DIR_EGRESS, &args))
			return false;
	} else {
		return false;
	}
	ht_emit_io(pid_tgid, key, info, &args, ret,
		   syscall >= HT_SYS_WRITE && syscall <= HT_SYS_SENDMSG);
	return args.wk;
}

/* recv(2): "MSG_PEEK [...] Thus, a subsequent receive call will return the
 * same data": a peek is not followed, the read that takes the bytes reports
 * them (curl peeks one byte to check that a reused connection is alive). */
#define HT_MSG_PEEK 0x2

/* Reads followed at their exit alone, with no entry program
 * (targ_read_at_exit, set by the loader where the kernel has
 * bpf_task_pt_regs: Linux 5.15, dd6e10fbd9fb; elsewhere the verifier never
 * reaches the call and drops it as dead code): the arguments are still in the
 * user registers the syscall entry saved, and a read's entry time says only
 * when the thread began to wait, so the data event's ts_enter is the exit
 * time. This saves a program run per read (~150 ns for a followed socket: a
 * lookup, a clock read, a slot write; a run for every other process's read),
 * the trace record the kernel builds for it, and a lookup at the exit. */
static __always_inline int ht_read_exit(__s64 ret, __u16 syscall)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pt_regs *regs;
	struct ht_conn_info *info;
	struct ht_io_args a = {};
	__s32 fd;

	if (!ht_may_own_conns(pid_tgid >> 32))
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (syscall == HT_SYS_RECVFROM && (PT_REGS_PARM4_SYSCALL(regs) & HT_MSG_PEEK))
		return 0;
	if (syscall == HT_SYS_RECVMSG && (PT_REGS_PARM3_SYSCALL(regs) & HT_MSG_PEEK))
		return 0;
	fd = (__s32)PT_REGS_PARM1_SYSCALL(regs);
	info = ht_conn_lookup(pid_tgid >> 32, fd);
	if (!info || !ht_args_at_exit(pid_tgid, regs, fd, info, ret, syscall, HT_DIR_INGRESS, &a))
		return 0;
	ht_emit_io(pid_tgid, ht_conn_key(pid_tgid >> 32, fd), info, &a, ret, false);
	return 0;
}

#endif /* HOPTRACE_BPF_CAPTURE_BPF_H */
