/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events and maps of uprobe_trace.bpf.c: calls of the functions a user
 * names (hoptrace run --probe), timed from their entry to one of their
 * return instructions. They travel in socket_trace's ring buffer after the
 * same ht_event_header, so the agent sees a call's end in order with the
 * requests the thread read and wrote around it.
 *
 * The agent fills hu_sites with every probed address of every process
 * (entry, each return instruction, __cxa_throw); one program per kind is
 * attached at all of them and looks up what it was hit for by (pid, ip),
 * which needs no BPF cookie (5.15+) and so works on 5.10.
 *
 * Layout pinned by tests/unit/event_layout_test.cc; change only by adding
 * fields at the end.
 */
#ifndef HOPTRACE_BPF_UPROBE_TRACE_H
#define HOPTRACE_BPF_UPROBE_TRACE_H

#include "socket_trace.h"

/* Open probed calls kept per thread (or goroutine). Deeper calls are
 * counted (HU_CNT_TOO_DEEP) and not timed. Power of two (index masks). */
#define HU_MAX_DEPTH 16
#define HU_EXCEPTION_LEN 64

enum hu_site_kind {
	HU_SITE_ENTRY = 1,  /* first instruction of a probed function */
	HU_SITE_RETURN = 2, /* one of its ret (or tail-call jmp) instructions */
	HU_SITE_THROW = 3,  /* __cxa_throw: a C++ exception starts unwinding */
	HU_SITE_CATCH = 4,  /* __cxa_begin_catch: it is caught; deeper frames are gone */
	HU_SITE_PY_ENTRY = 5,  /* CPython's USDT python:function__entry (every Python call) */
	HU_SITE_PY_RETURN = 6, /* python:function__return (return, exception or yield) */
	HU_SITE_PY_LINE_HOLDER = 7, /* Py_FatalError: only holds python:line's semaphore */
};

/* hu_frame.function_id of a Python function: its sp is the interpreter
 * frame (_PyInterpreterFrame *), not a stack pointer, and is the frame's
 * identity at its return. */
#define HU_FUNCTION_PY 0x80000000u

/* hu_site.flags */
#define HU_SITE_F_GO 0x1 /* a Go function: calls are keyed by goroutine (r14), not thread */

struct hu_site_key {
	__u32 pid; /* thread group id */
	__u32 _pad;
	__u64 addr; /* probed address in that process */
};

struct hu_site {
	__u32 function_id; /* the agent's id of the function */
	__u16 kind;        /* enum hu_site_kind */
	__u16 flags;       /* HU_SITE_F_* */
};

/* One open probed call. */
struct hu_frame {
	__u64 entry_ns; /* CLOCK_MONOTONIC at entry */
	__u64 sp;       /* stack pointer at entry: points at the return address */
	__u32 function_id;
	__u32 tid; /* thread that entered it */
};

/* Whose calls nest: a thread, or for Go a goroutine (goroutines move
 * between threads, and their stacks move: no stack pointer rule there). */
struct hu_stack_key {
	__u32 pid;
	__u32 _pad;
	__u64 id; /* tid, or the goroutine's g pointer */
};

struct hu_stack {
	__u32 depth; /* open frames: frames[0] outermost */
	__u32 _pad;
	__u64 throw_ns; /* last __cxa_throw on this thread */
	char exception[HU_EXCEPTION_LEN]; /* its type, mangled (std::type_info::name()) */
	struct hu_frame frames[HU_MAX_DEPTH];
	/* When frames[i]'s call ended (0 while it is open). A returned frame
	 * stays in its slot until a new call takes it, so that the agent,
	 * reading the stack later than a request was written, still sees the
	 * call that was open then (InternalSpans::InnermostOpen). */
	__u64 exit_ns[HU_MAX_DEPTH];
};

/* hu_call_event.flags */
#define HU_F_GO 0x1     /* context_id is a goroutine, not a thread */
#define HU_F_THROWN 0x2 /* abandoned after a C++ throw on the thread: exception names its type */
#define HU_F_PY_RAISED 0x4 /* a Python function left by an exception: exception is its tp_name */
#define HU_F_PY_WHERE 0x8  /* the record is a hu_py_call_event: where frames[index] is defined */

/* HT_EV_FUNC_CALL: frames[index] returned; hdr.ts_enter_ns / ts_exit_ns are
 * its entry and return, hdr.tid the thread that returned, fd = -1.
 * HT_EV_FUNC_ABANDONED: frames[index .. depth-1] never returned: a later
 * probe hit showed they are gone (a shallower stack, an outer return);
 * hdr.ts_exit_ns is when they ended at the latest (the throw, or the hit).
 * frames[0 .. index-1] are the calls still open around them, outermost
 * first: their parents. */
struct hu_call_event {
	struct ht_event_header hdr;
	__u64 context_id; /* tid, or goroutine (HU_F_GO) */
	__u16 index;
	__u16 depth;
	__u16 flags; /* HU_F_* */
	__u16 _pad;
	char exception[HU_EXCEPTION_LEN];
	struct hu_frame frames[HU_MAX_DEPTH];
};

/* Indexes into the per-CPU counter array "hu_counters". */
enum hu_counter {
	HU_CNT_CALLS = 0,        /* probed calls that returned */
	HU_CNT_SHORT = 1,        /* of which shorter than the threshold: counted, not sent */
	HU_CNT_ABANDONED = 2,    /* calls that never returned */
	HU_CNT_TOO_DEEP = 3,     /* entries beyond HU_MAX_DEPTH: not timed */
	HU_CNT_UNMATCHED = 4,    /* returns with no open call of theirs */
	HU_CNT_RINGBUF_DROPS = 5,
	HU_CNT_STACK_FULL = 6,   /* no room for a new thread's stack */
	HU_CNT_PY_SEEN = 7,      /* Python calls seen by the USDT entry probe (probed or not) */
	HU_CNT_PY_GENERATOR = 8, /* entries of a named generator/coroutine: not timed */
	HU_CNT_PY_NO_FRAME = 9,  /* a named Python call whose frame could not be read */
	HU_CNT_GO_RESTARTS = 10, /* Go entries run again after runtime.morestack: one call */
	HU_CNT_MAX = 11,
};

/*
 * Python functions (CPython's USDT probes, uprobe_python.bpf.h). The probes
 * fire on every Python call of a process once attached; the names wanted
 * there are in hu_py_names, keyed by the function name (co_name), each with
 * the file suffixes it is wanted in.
 */
#define HU_PY_NAME_LEN 48
#define HU_PY_FILE_LEN 64 /* file suffix, with the '/' before it when it has one */
#define HU_PY_CANDIDATES 4
#define HU_PY_PATH_MAX 512 /* longer co_filename: not matched (counted as seen) */

struct hu_py_name_key {
	__u32 pid;
	__u32 _pad;
	char name[HU_PY_NAME_LEN]; /* co_name, zero padded */
};

struct hu_py_want {
	__u32 function_id[HU_PY_CANDIDATES]; /* 0: unused (HU_FUNCTION_PY set otherwise) */
	__u32 suffix_len[HU_PY_CANDIDATES];
	/* co_filename must end with suffix[i]; suffix[i] starts with '/' (a
	 * path component boundary) unless it is the whole path. */
	char suffix[HU_PY_CANDIDATES][HU_PY_FILE_LEN];
};

/* Per process (map hu_py_procs, key tgid): where the interpreter keeps what
 * the programs read (uprobes/cpython/cpython_runtime.h) and the registers
 * holding the probes' filename and funcname arguments (pt_regs offsets). */
struct hu_py_proc {
	__u64 runtime;            /* _PyRuntime in the process */
	__u32 rt_tstate_current;  /* _PyRuntime.gilstate.tstate_current */
	__u32 ts_cframe;          /* PyThreadState.cframe */
	__u32 cframe_current;     /* _PyCFrame.current_frame */
	__u32 frame_code;         /* _PyInterpreterFrame.f_code */
	__u32 code_flags;         /* PyCodeObject.co_flags */
	__u32 ts_curexc_type;     /* PyThreadState.curexc_type */
	__u32 type_name;          /* PyTypeObject.tp_name */
	__u16 entry_file_reg, entry_name_reg;   /* pt_regs offsets */
	__u16 return_file_reg, return_name_reg;
	__u32 code_firstlineno;   /* PyCodeObject.co_firstlineno; 0: not read */
};

/* HT_EV_FUNC_CALL of a Python function (flags has HU_F_PY_WHERE): the call,
 * then where the function that returned (frames[index]) is defined, from
 * its return probe: its code's file as CPython reports it (co_filename, the
 * probe's first argument) and first line. A bigger record than a native
 * call's, sent only for Python calls. */
struct hu_py_call_event {
	struct hu_call_event call;
	__u32 line;     /* co_firstlineno: the def line (the first decorator's, if any) */
	__u16 path_len; /* bytes of path before its NUL (< HU_PY_PATH_MAX) */
	__u16 _pad;
	char path[HU_PY_PATH_MAX]; /* co_filename; what follows its NUL is not zeroed */
};

#endif /* HOPTRACE_BPF_UPROBE_TRACE_H */
