/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Python functions in the software trace (included by uprobe_trace.bpf.c).
 *
 * CPython functions are no ELF symbols. A CPython built with SystemTap
 * probes (Debian's python3.11) calls python:function__entry and
 * python:function__return(filename, funcname, lineno) for every Python
 * frame it starts and leaves, once the probes' semaphore is non-zero: the
 * kernel increments it in each process where our uprobe (attached with its
 * pid and ref_ctr_offset) is, and decrements it when the uprobe goes.
 * CPython 3.11 calls function__entry from its tracing dispatch only, which
 * python:line's semaphore turns on: the agent holds that one too
 * (uprobes/cpython/python_functions.h), so every Python call traps twice.
 *
 * So the programs here run on every Python call of a probed process and
 * must say "not wanted" fast: the function name (co_name) is read into a
 * zeroed key and looked up in hu_py_names (the kernel hashes it); only a
 * wanted name reads the file name and compares its suffix. A wanted call
 * then pushes a frame on the thread's stack of open calls, the same stack
 * native probes use (uprobe_trace.bpf.c), so Python and native calls nest
 * with each other and under the SERVER span the thread serves. A wanted
 * call's return is sent with where its function is (hu_py_call_event): the
 * file name the return probe gave and its code's co_firstlineno.
 *
 * Identity: a Python frame's sp is its _PyInterpreterFrame (the thread
 * state's current frame at the probe), which its return compares: 3.11 runs
 * nested Python calls in one C frame, so the stack pointer tells nothing.
 * Exceptions: a frame left by an exception reports function__return with
 * the exception still set (tstate->curexc_type, ceval.c exception_unwind:
 * "assert(_PyErr_Occurred(tstate))" before DTRACE_FUNCTION_EXIT); a normal
 * return or a yield has none. Generators and coroutines report a return at
 * every yield/await and an entry at every resume: their frames are not
 * timed (counted as HU_CNT_PY_GENERATOR); plain functions only.
 */
#ifndef HOPTRACE_BPF_UPROBE_PYTHON_BPF_H
#define HOPTRACE_BPF_UPROBE_PYTHON_BPF_H

/* CPython's Include/cpython/code.h */
#define HU_CO_GENERATOR 0x0020
#define HU_CO_COROUTINE 0x0080
#define HU_CO_ITERABLE_COROUTINE 0x0100
#define HU_CO_ASYNC_GENERATOR 0x0200
#define HU_CO_SUSPENDS \
	(HU_CO_GENERATOR | HU_CO_COROUTINE | HU_CO_ITERABLE_COROUTINE | HU_CO_ASYNC_GENERATOR)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct hu_py_proc);
} hu_py_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* names x processes; full: a warning, not probed */
	__type(key, struct hu_py_name_key);
	__type(value, struct hu_py_want);
} hu_py_names SEC(".maps");

struct hu_py_scratch {
	struct hu_py_name_key key;
	char tail[HU_PY_FILE_LEN];
	char exception[HU_EXCEPTION_LEN];
	__u32 path_len; /* of path, once hu_py_wanted has read it */
	/* Room past HU_PY_PATH_MAX: a tail read at any offset stays inside. */
	char path[HU_PY_PATH_MAX + HU_PY_FILE_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hu_py_scratch);
} hu_py_scratch SEC(".maps");

static __always_inline __u64 hu_py_read(__u64 addr)
{
	__u64 v = 0;

	if (!addr || bpf_probe_read_user(&v, sizeof(v), (const void *)addr))
		return 0;
	return v;
}

/* A USDT argument in a register: its pt_regs offset says which. */
static __always_inline __u64 hu_py_arg(struct pt_regs *ctx, __u16 reg_off)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), (void *)ctx + (reg_off & 0xf8));
	return v;
}

/* Does the copied tail (tail[0..len), zero padded) equal the suffix? */
static __always_inline bool hu_py_same(const char *a, const char *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	for (int i = 0; i < HU_PY_FILE_LEN / 8; i++) {
		if (x[i] != y[i])
			return false;
	}
	return true;
}

/* The function id this call is wanted as, 0 if not. */
static __always_inline __u32 hu_py_wanted(struct pt_regs *ctx, __u32 tgid,
					  struct hu_py_scratch *s, __u16 file_reg,
					  __u16 name_reg)
{
	const struct hu_py_want *w;
	const char *file;
	long len;
	__u32 plen;

	__builtin_memset(&s->key, 0, sizeof(s->key));
	s->key.pid = tgid;
	if (bpf_probe_read_user_str(s->key.name, sizeof(s->key.name),
				    (const void *)hu_py_arg(ctx, name_reg)) <= 0)
		return 0;
	w = bpf_map_lookup_elem(&hu_py_names, &s->key);
	if (!w)
		return 0;
	file = (const char *)hu_py_arg(ctx, file_reg);
	len = bpf_probe_read_user_str(s->path, HU_PY_PATH_MAX, file);
	if (len <= 1 || len >= HU_PY_PATH_MAX)
		return 0;
	plen = (__u32)len - 1;
	s->path_len = plen;
	for (int i = 0; i < HU_PY_CANDIDATES; i++) {
		__u32 slen = w->suffix_len[i];

		if (!w->function_id[i] || slen == 0 || slen > HU_PY_FILE_LEN)
			continue;
		__builtin_memset(s->tail, 0, sizeof(s->tail));
		if (plen >= slen) {
			/* "/x/app.py" ends with "/app.py" */
			bpf_probe_read_kernel(s->tail, slen & (HU_PY_FILE_LEN - 1) ?: HU_PY_FILE_LEN,
					      s->path + ((plen - slen) & (HU_PY_PATH_MAX - 1)));
		} else if (plen + 1 == slen && w->suffix[i][0] == '/') {
			/* "app.py" (a relative co_filename) is "/app.py" whole */
			s->tail[0] = '/';
			bpf_probe_read_kernel(s->tail + 1, plen & (HU_PY_FILE_LEN - 1), s->path);
		} else {
			continue;
		}
		if (hu_py_same(s->tail, w->suffix[i]))
			return w->function_id[i];
	}
	return 0;
}

/* The interpreter frame the thread runs now (the one entering or leaving:
 * ceval.c reports before it pops it); *tstate its thread state. The GIL
 * holder is _PyRuntime.gilstate.tstate_current: this thread. */
static __always_inline __u64 hu_py_frame(const struct hu_py_proc *p, __u64 *tstate)
{
	__u64 cframe;

	*tstate = hu_py_read(p->runtime + p->rt_tstate_current);
	cframe = hu_py_read(*tstate ? *tstate + p->ts_cframe : 0);
	return hu_py_read(cframe ? cframe + p->cframe_current : 0);
}

/* The frame's code's co_firstlineno, 0 if unknown. */
static __always_inline __u32 hu_py_first_line(const struct hu_py_proc *p, __u64 frame)
{
	__u64 code = hu_py_read(frame + p->frame_code);

	if (!code || !p->code_firstlineno)
		return 0;
	return (__u32)hu_py_read(code + p->code_firstlineno);
}

static __always_inline bool hu_py_suspends(const struct hu_py_proc *p, __u64 frame)
{
	__u64 code = hu_py_read(frame + p->frame_code);
	__u32 flags = (__u32)hu_py_read(code ? code + p->code_flags : 0);

	return flags & HU_CO_SUSPENDS;
}

SEC("uprobe")
int hu_py_entry(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, zero = 0, fid;
	const struct hu_site *site = hu_site_of(ctx, tgid);
	struct hu_stack_key key = { .pid = tgid, .id = (__u32)pid_tgid };
	const struct hu_py_proc *p;
	struct hu_py_scratch *s;
	struct hu_stack *st;
	__u64 frame, tstate;

	if (!site || site->kind != HU_SITE_PY_ENTRY)
		return 0;
	p = bpf_map_lookup_elem(&hu_py_procs, &tgid);
	s = bpf_map_lookup_elem(&hu_py_scratch, &zero);
	if (!p || !s)
		return 0;
	hu_count(HU_CNT_PY_SEEN);
	fid = hu_py_wanted(ctx, tgid, s, p->entry_file_reg, p->entry_name_reg);
	if (!fid)
		return 0;
	frame = hu_py_frame(p, &tstate);
	if (!frame) {
		hu_count(HU_CNT_PY_NO_FRAME);
		return 0;
	}
	if (hu_py_suspends(p, frame)) {
		hu_count(HU_CNT_PY_GENERATOR);
		return 0;
	}
	st = hu_stack_get(&key, true);
	if (st)
		hu_push(st, &key, bpf_ktime_get_ns(), PT_REGS_SP(ctx), frame, fid, false, pid_tgid);
	return 0;
}

SEC("uprobe")
int hu_py_return(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, zero = 0, fid, depth, match = HU_MAX_DEPTH;
	const struct hu_site *site = hu_site_of(ctx, tgid);
	struct hu_stack_key key = { .pid = tgid, .id = (__u32)pid_tgid };
	const struct hu_py_proc *p;
	struct hu_py_scratch *s;
	struct hu_py_where where;
	struct hu_stack *st;
	__u64 now, frame, tstate, exc;
	__u16 flags = 0;

	if (!site || site->kind != HU_SITE_PY_RETURN)
		return 0;
	p = bpf_map_lookup_elem(&hu_py_procs, &tgid);
	s = bpf_map_lookup_elem(&hu_py_scratch, &zero);
	if (!p || !s)
		return 0;
	fid = hu_py_wanted(ctx, tgid, s, p->return_file_reg, p->return_name_reg);
	if (!fid)
		return 0;
	now = bpf_ktime_get_ns();
	frame = hu_py_frame(p, &tstate);
	st = bpf_map_lookup_elem(&hu_stacks, &key);
	if (!frame || !st)
		return 0;
	depth = st->depth;
	if (depth > HU_MAX_DEPTH)
		depth = HU_MAX_DEPTH;
	for (__u32 i = HU_MAX_DEPTH; i > 0; i--) {
		__u32 f = i - 1;

		if (f < depth && st->frames[f].function_id == fid && st->frames[f].sp == frame) {
			match = f;
			break;
		}
	}
	if (match >= HU_MAX_DEPTH) {
		/* A generator's yield was never pushed: not an unmatched return. */
		if (!hu_py_suspends(p, frame))
			hu_count(HU_CNT_UNMATCHED);
		return 0;
	}
	s->exception[0] = '\0';
	exc = hu_py_read(tstate + p->ts_curexc_type);
	if (exc) {
		flags = HU_F_PY_RAISED;
		if (bpf_probe_read_user_str(s->exception, sizeof(s->exception),
					    (const void *)hu_py_read(exc + p->type_name)) < 0)
			s->exception[0] = '\0';
	}
	/* Where it is defined, for the span: the file as this probe gave it
	 * (read by hu_py_wanted) and its code's first line. */
	where.path = s->path;
	where.path_len = s->path_len;
	where.line = hu_py_first_line(p, frame);
	hu_pop(st, &key, match, depth, now, flags, s->exception, pid_tgid, &where);
	return 0;
}

#endif /* HOPTRACE_BPF_UPROBE_PYTHON_BPF_H */
