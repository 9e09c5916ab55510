/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Python runtime context (issue 11): which server request the Python code on
 * a thread serves, from CPython's own contextvars.Context.
 *
 * asyncio runs every task step in the task's Context, and every hand-over
 * that keeps a request's identity copies the current Context:
 * create_task / Task(), loop.call_soon (Handle), asyncio.to_thread,
 * run_in_executor through contextvars.copy_context(), anyio.to_thread. All
 * of these go through PyContext_CopyCurrent (exported even by Debian's
 * stripped, statically linked python3.11). A uretprobe there
 * (ht_py_ctx_copied) binds the new Context to what the one it was copied
 * from serves:
 *  - a bound Context: the same connection, and the request that connection
 *    is serving now when the source had none yet (a task per keep-alive
 *    connection, as asyncio.start_server or aiohttp make, then one per
 *    request);
 *  - an unbound one (the loop's own context): the connection this thread
 *    accepted last and nothing has taken yet (the loop creates the
 *    connection's first task right after accept), else nothing.
 * At a connect or write (ht_py_syscall_enter), the thread's current Context
 * (tstate->context; the thread's PyThreadState found in the interpreter's
 * thread list by its native thread id, cached) gives the request:
 * ht_rt_set(), cleared at the syscall's exit. A Context bound to a
 * connection only is resolved to the connection's request of the moment.
 * Threads of unbound Contexts are left to the thread model.
 *
 * The agent fills ht_py_procs for each followed process whose CPython it
 * knows (uprobes/cpython/cpython_offsets.h) and attaches the uretprobe to that
 * process only; exec and exit remove the entry here.
 */
#ifndef HOPTRACE_BPF_RUNTIME_PYTHON_BPF_H
#define HOPTRACE_BPF_RUNTIME_PYTHON_BPF_H

#ifdef HT_NO_KERNEL_CTX
/* The capture-only build (capture.bpf.h): no kernel contexts to choose. */
static __always_inline void ht_py_accepted_conn(__u64 pid_tgid, __s32 fd) {}
static __always_inline void ht_py_syscall_enter(__u64 pid_tgid) {}
static __always_inline void ht_py_syscall_exit(__u64 pid_tgid) {}
static __always_inline void ht_py_proc_gone(__u32 tgid) {}
#else
#include "context.bpf.h"
#include "head_scan.bpf.h"
#include "runtime_python.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct ht_py_proc);
} ht_py_procs SEC(".maps");

/* How many processes ht_py_procs holds, kept by the agent: while none, the
 * syscall hooks below skip their lookup (an inlined array load instead of a
 * hash lookup at every write of a traced process). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ht_py_present SEC(".maps");

static __always_inline bool ht_py_any(void)
{
	__u32 zero = 0;
	__u32 *n = bpf_map_lookup_elem(&ht_py_present, &zero);

	return n && *n;
}

/* A Context's binding: the incoming connection (ht_conn_key, gen) and the
 * request it serves, 0 when it stands for the connection as a whole. */
struct ht_py_ctx_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ctx; /* PyContext * */
};

struct ht_py_bind {
	__u64 conn;
	__u64 gen;
	__u64 span;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ht_py_ctx_key);
	__type(value, struct ht_py_bind);
} ht_py_ctxs SEC(".maps");

/* The connection a thread of a Python process accepted last, until a copy
 * of an unbound Context takes it, soon after: an event loop creates the
 * connection's task in the same callback that accepted it; a thread that
 * accepts and copies nothing (a threaded server) must not hand its last
 * connection to some later, unrelated copy. */
#define HT_PY_ACCEPT_FRESH_NS (20ull * 1000 * 1000)

struct ht_py_accept {
	__u64 conn;
	__u64 gen;
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct ht_py_accept);
} ht_py_accepted SEC(".maps");

/* pid_tgid -> PyThreadState *, checked against its native thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} ht_py_tstates SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_PYC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ht_py_counters SEC(".maps");

static __always_inline void ht_py_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ht_py_counters, &idx);

	if (v)
		*v += 1;
}

static __always_inline __u64 ht_py_read(__u64 addr)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (const void *)addr))
		return 0;
	return v;
}

/* The request a connection serves now, 0 if none. */
static __always_inline __u64 ht_py_conn_span(__u64 conn, __u64 gen)
{
	struct ht_head_scan *h = bpf_map_lookup_elem(&ht_head_scans, &conn);

	return h && h->gen == gen ? h->cur_span : 0;
}

struct ht_py_walk {
	const struct ht_py_proc *p;
	__u64 ts;    /* in: list head; out: the thread's state, 0 if not found */
	__u32 tid;
};

static long ht_py_walk_step(__u64 i, struct ht_py_walk *w)
{
	__u64 tid;

	if (!w->ts)
		return 1;
	tid = ht_py_read(w->ts + w->p->ts_native_tid);
	if ((__u32)tid == w->tid)
		return 1;
	w->ts = ht_py_read(w->ts + w->p->ts_next);
	return 0;
}

/* This thread's PyThreadState, 0 if it has none. */
static __always_inline __u64 ht_py_tstate(__u64 pid_tgid, const struct ht_py_proc *p)
{
	__u64 *cached = bpf_map_lookup_elem(&ht_py_tstates, &pid_tgid);
	struct ht_py_walk w = { .p = p, .tid = (__u32)pid_tgid };
	__u64 interp;

	if (cached && (__u32)ht_py_read(*cached + p->ts_native_tid) == (__u32)pid_tgid)
		return *cached;
	interp = ht_py_read(p->runtime + p->rt_interp_main);
	w.ts = interp ? ht_py_read(interp + p->interp_threads_head) : 0;
	bpf_loop(HT_PY_THREADS_MAX, ht_py_walk_step, &w, 0);
	if ((__u32)ht_py_read(w.ts + p->ts_native_tid) != (__u32)pid_tgid)
		w.ts = 0;
	if (w.ts)
		bpf_map_update_elem(&ht_py_tstates, &pid_tgid, &w.ts, BPF_ANY);
	ht_py_count(w.ts ? HT_PYC_TSTATE_WALKED : HT_PYC_TSTATE_MISSING);
	return w.ts;
}

/* accept() returned fd on a thread of a followed process. */
static __always_inline void ht_py_accepted_conn(__u64 pid_tgid, __s32 fd)
{
	__u32 tgid = pid_tgid >> 32;
	__u64 key = ht_conn_key(tgid, fd);
	struct ht_conn_info *info;
	struct ht_py_accept b = {};

	if (!bpf_map_lookup_elem(&ht_py_procs, &tgid))
		return;
	info = bpf_map_lookup_elem(&ht_conns, &key);
	if (!info)
		return;
	b.conn = key;
	b.gen = info->gen;
	b.ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&ht_py_accepted, &pid_tgid, &b, BPF_ANY);
}

/* PyContext_CopyCurrent returned pyctx, a copy of this thread's current one. */
SEC("uretprobe")
int BPF_KRETPROBE(ht_py_ctx_copied, void *pyctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct ht_py_proc *p = bpf_map_lookup_elem(&ht_py_procs, &tgid);
	struct ht_py_ctx_key k = { .tgid = tgid }, src = { .tgid = tgid };
	struct ht_py_bind nb = {}, *b;
	struct ht_py_accept *acc;
	__u64 ts;

	if (!p || !pyctx)
		return 0;
	k.ctx = (__u64)pyctx;
	/* The GIL is held: the current thread state is this thread's. */
	ts = ht_py_read(p->runtime + p->rt_tstate_current);
	src.ctx = ts ? ht_py_read(ts + p->ts_context) : 0;
	b = src.ctx ? bpf_map_lookup_elem(&ht_py_ctxs, &src) : NULL;
	if (b) {
		nb = *b;
		ht_py_count(HT_PYC_COPY_INHERITED);
	} else {
		acc = bpf_map_lookup_elem(&ht_py_accepted, &pid_tgid);
		if (acc && bpf_ktime_get_ns() - acc->ts > HT_PY_ACCEPT_FRESH_NS) {
			bpf_map_delete_elem(&ht_py_accepted, &pid_tgid);
			acc = NULL;
		}
		if (!acc) {
			/* A Context at a reused address must not keep the
			 * binding of a freed one. */
			bpf_map_delete_elem(&ht_py_ctxs, &k);
			ht_py_count(HT_PYC_COPY_UNBOUND);
			return 0;
		}
		nb.conn = acc->conn;
		nb.gen = acc->gen;
		bpf_map_delete_elem(&ht_py_accepted, &pid_tgid);
		ht_py_count(HT_PYC_COPY_ACCEPTED);
	}
	if (!nb.span)
		nb.span = ht_py_conn_span(nb.conn, nb.gen);
	bpf_map_update_elem(&ht_py_ctxs, &k, &nb, BPF_ANY);
	return 0;
}

/* What the Context current on this thread serves: the bound request, or the
 * request of the moment of a Context bound to a connection; 0 if unbound. */
static __always_inline __u64 ht_py_ctx_span(__u32 tgid, __u64 ts, const struct ht_py_proc *p,
					    bool *bound)
{
	struct ht_py_ctx_key k = { .tgid = tgid };
	struct ht_py_bind *b;

	k.ctx = ts ? ht_py_read(ts + p->ts_context) : 0;
	b = k.ctx ? bpf_map_lookup_elem(&ht_py_ctxs, &k) : NULL;
	*bound = b != NULL;
	if (!b)
		return 0;
	return b->span ? b->span : ht_py_conn_span(b->conn, b->gen);
}

/*
 * Futures handed to a thread pool that copies no Context
 * (concurrent.futures.ThreadPoolExecutor.submit, loop.run_in_executor): the
 * worker runs the call in its own thread's Context, which serves nothing,
 * and the wake-up that handed it over is one of many (the GIL's, the
 * queue's). What ties the call to its request is its Future: submit()
 * makes it on the submitting thread, and its threading.Condition makes an
 * RLock there (PyThread_allocate_lock); the worker takes that lock in
 * Future.set_running_or_notify_cancel() right before it runs the call, and
 * again in set_result() / set_exception() right after.
 *  - ht_py_lock_new (uretprobe on PyThread_allocate_lock): a lock made while
 *    the thread serves a request (its own Future's, its Context's, else the
 *    request the thread model gives the thread) remembers that request.
 *  - ht_py_lock_take (uprobe on PyThread_acquire_lock_timed): another thread
 *    taking such a lock with set_running_or_notify_cancel among its
 *    innermost Python frames (by co_name) now works for that request
 *    (ht_py_work), for its connects and writes, until it takes the lock
 *    again from elsewhere (the call returned) or takes another Future.
 * Any other taker of a remembered lock (a lock made during a request and
 * shared later: a connection pool's, a logger's) changes nothing: counted.
 */
struct ht_py_lock {
	__u64 span;  /* the request the maker served */
	__u32 maker; /* its thread id */
	__u32 taker; /* the worker that took it as a Future's, 0 until then */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ht_py_ctx_key); /* .ctx: the PyThread_type_lock */
	__type(value, struct ht_py_lock);
} ht_py_locks SEC(".maps");

struct ht_py_work_item {
	__u64 span; /* the request the worker's current call is made for */
	__u64 lock; /* the Future's lock it took */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid of the worker */
	__type(value, struct ht_py_work_item);
} ht_py_work SEC(".maps");

/* Which of the runtime's answers says what this thread's Python code serves. */
enum ht_py_source {
	HT_PY_SAYS_NOTHING = 0, /* neither: the thread model's turn */
	HT_PY_FUTURE = 1,       /* a pool worker running a Future's call */
	HT_PY_CONTEXT = 2,      /* the current Context's binding */
};

/* The request the runtime says this thread's Python code serves (0: none),
 * and which answer says it. A worker's Future comes first: its own Context
 * may sit at the address of a freed, bound one (CPython reuses Contexts
 * from a free list, and makes a thread's first one without a copy), and
 * asyncio.to_thread runs the call in a copy of the submitter's Context, the
 * Future's request too. */
static __always_inline __u64 ht_py_runtime_span(__u64 pid_tgid, const struct ht_py_proc *p,
						enum ht_py_source *src)
{
	struct ht_py_work_item *w = bpf_map_lookup_elem(&ht_py_work, &pid_tgid);
	bool bound;
	__u64 span;

	if (w) {
		*src = HT_PY_FUTURE;
		return w->span;
	}
	span = ht_py_ctx_span(pid_tgid >> 32, ht_py_tstate(pid_tgid, p), p, &bound);
	*src = bound ? HT_PY_CONTEXT : HT_PY_SAYS_NOTHING;
	return span;
}

SEC("uretprobe")
int BPF_KRETPROBE(ht_py_lock_new, void *lock)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct ht_py_proc *p = bpf_map_lookup_elem(&ht_py_procs, &tgid);
	struct ht_py_ctx_key k = { .tgid = tgid, .ctx = (__u64)lock };
	struct ht_py_lock l = { .maker = (__u32)pid_tgid };
	enum ht_py_source src;
	struct ht_server_ctx *c;

	if (!p || !lock)
		return 0;
	l.span = ht_py_runtime_span(pid_tgid, p, &src);
	if (src == HT_PY_SAYS_NOTHING) {
		c = ht_thread_pick(pid_tgid, false);
		l.span = c ? c->span_id : 0;
	}
	if (!l.span) {
		/* A lock at a reused address must not keep a freed one's request. */
		bpf_map_delete_elem(&ht_py_locks, &k);
		return 0;
	}
	bpf_map_update_elem(&ht_py_locks, &k, &l, BPF_ANY);
	ht_py_count(HT_PYC_LOCK_BOUND);
	return 0;
}

#define HT_PY_FUTURE_RUN "set_running_or_notify_cancel"
#define HT_PY_FUTURE_RUN_LEN (sizeof(HT_PY_FUTURE_RUN) - 1)
#define HT_PY_FRAMES_UP 3

static __always_inline bool ht_py_is_future_run(const char *name)
{
	const char want[] = HT_PY_FUTURE_RUN;

#pragma unroll
	for (int i = 0; i < sizeof(want); i++) {
		if (name[i] != want[i])
			return false;
	}
	return true;
}

/* Is Future.set_running_or_notify_cancel among the thread's innermost
 * Python frames? (It takes the lock through Condition.__enter__.) */
static __always_inline bool ht_py_in_future_run(__u64 ts, const struct ht_py_proc *p)
{
	__u64 cframe = ht_py_read(ts + p->ts_cframe);
	__u64 frame = cframe ? ht_py_read(cframe + p->cframe_current) : 0;
	char name[HT_PY_FUTURE_RUN_LEN + 1];

	for (int i = 0; i < HT_PY_FRAMES_UP && frame; i++) {
		__u64 code = ht_py_read(frame + p->frame_code);
		__u64 str = code ? ht_py_read(code + p->code_name) : 0;

		if (str && ht_py_read(str + p->ascii_length) == HT_PY_FUTURE_RUN_LEN &&
		    !bpf_probe_read_user(name, sizeof(name), (const void *)(str + p->ascii_data)) &&
		    ht_py_is_future_run(name))
			return true;
		frame = ht_py_read(frame + p->frame_previous);
	}
	return false;
}

SEC("uprobe")
int BPF_KPROBE(ht_py_lock_take, void *lock)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct ht_py_ctx_key k = { .tgid = tgid, .ctx = (__u64)lock };
	struct ht_py_work_item w = { .lock = (__u64)lock };
	struct ht_py_work_item *cur;
	struct ht_py_proc *p;
	struct ht_py_lock *l;
	__u64 ts;

	l = bpf_map_lookup_elem(&ht_py_locks, &k);
	if (!l || l->maker == tid)
		return 0; /* the common case: a lock no request made, or its maker */
	if (l->taker && l->taker != tid)
		return 0;
	p = bpf_map_lookup_elem(&ht_py_procs, &tgid);
	ts = p ? ht_py_tstate(pid_tgid, p) : 0;
	if (!ts)
		return 0;
	if (ht_py_in_future_run(ts, p)) {
		/* First take, or its blocking retry: the worker runs the call. */
		if (!l->taker)
			ht_py_count(HT_PYC_FUTURE_TAKEN);
		l->taker = tid;
		w.span = l->span;
		bpf_map_update_elem(&ht_py_work, &pid_tgid, &w, BPF_ANY);
		return 0;
	}
	if (!l->taker) {
		ht_py_count(HT_PYC_LOCK_FOREIGN);
		return 0;
	}
	/* The worker takes its Future's lock again: the call returned. */
	cur = bpf_map_lookup_elem(&ht_py_work, &pid_tgid);
	if (cur && cur->lock == (__u64)lock)
		bpf_map_delete_elem(&ht_py_work, &pid_tgid);
	bpf_map_delete_elem(&ht_py_locks, &k);
	ht_py_count(HT_PYC_FUTURE_DONE);
	return 0;
}

/* At the entry of connect / write / writev / sendto / sendmsg: the request
 * the running Python code serves, for ht_thread_pick(), when the runtime
 * says (ht_py_runtime_span); else the thread model. */
static __always_inline void ht_py_syscall_enter(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;
	struct ht_py_proc *p;
	enum ht_py_source src;
	__u64 span;

	if (!ht_py_any())
		return;
	p = bpf_map_lookup_elem(&ht_py_procs, &tgid);
	if (!p)
		return;
	span = ht_py_runtime_span(pid_tgid, p, &src);
	if (src == HT_PY_SAYS_NOTHING) {
		ht_py_count(HT_PYC_SYSCALL_UNBOUND);
		return;
	}
	ht_rt_set(pid_tgid, span, HT_RT_PYTHON);
	ht_py_count(src == HT_PY_FUTURE ? HT_PYC_SYSCALL_HANDED : HT_PYC_SYSCALL_SET);
}

static __always_inline void ht_py_syscall_exit(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;

	if (ht_py_any() && bpf_map_lookup_elem(&ht_py_procs, &tgid))
		ht_rt_clear(pid_tgid);
}

/* The process exec'd or exited: its CPython is gone. */
static __always_inline void ht_py_proc_gone(__u32 tgid)
{
	bpf_map_delete_elem(&ht_py_procs, &tgid);
}

#endif /* HT_NO_KERNEL_CTX */
#endif /* HOPTRACE_BPF_RUNTIME_PYTHON_BPF_H */
