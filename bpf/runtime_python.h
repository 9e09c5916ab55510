/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Python runtime context (runtime_python.bpf.h): what the agent tells the
 * kernel about one CPython process, and the counters it reads back. Shared
 * by both sides; a unit test pins the layout.
 */
#ifndef HOPTRACE_BPF_RUNTIME_PYTHON_H
#define HOPTRACE_BPF_RUNTIME_PYTHON_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Threads of one interpreter looked at to find a thread's state. */
#define HT_PY_THREADS_MAX 512

/* Map "ht_py_procs", key tgid. Offsets from uprobes/cpython/cpython_offsets.h
 * for the process's CPython version. */
struct ht_py_proc {
	__u64 runtime;             /* address of _PyRuntime in the process */
	__u32 rt_tstate_current;   /* _PyRuntime.gilstate.tstate_current */
	__u32 rt_interp_main;      /* _PyRuntime.interpreters.main */
	__u32 interp_threads_head; /* PyInterpreterState.threads.head */
	__u32 ts_next;             /* PyThreadState.next */
	__u32 ts_native_tid;       /* PyThreadState.native_thread_id */
	__u32 ts_context;          /* PyThreadState.context */
	/* Futures handed to a pool (ht_py_lock_take): the running frames'
	 * function names. */
	__u32 ts_cframe;      /* PyThreadState.cframe */
	__u32 cframe_current; /* _PyCFrame.current_frame */
	__u32 frame_code;     /* _PyInterpreterFrame.f_code */
	__u32 frame_previous; /* _PyInterpreterFrame.previous */
	__u32 code_name;      /* PyCodeObject.co_name */
	__u32 ascii_data;     /* a compact ASCII str's characters (sizeof(PyASCIIObject)) */
	__u32 ascii_length;   /* PyASCIIObject.length */
	__u32 _pad;
};

/* Indexes into the per-CPU counter array "ht_py_counters". Add at the end. */
enum ht_py_counter {
	HT_PYC_COPY_INHERITED = 0,  /* copied Context bound as its source */
	HT_PYC_COPY_ACCEPTED = 1,   /* ... bound to the connection just accepted */
	HT_PYC_COPY_UNBOUND = 2,    /* ... copied from an unbound one: left unbound */
	HT_PYC_SYSCALL_SET = 3,     /* connect/write: ht_rt_current set */
	HT_PYC_SYSCALL_UNBOUND = 4, /* ... current Context unbound: thread model */
	HT_PYC_TSTATE_WALKED = 5,   /* thread state found in the interpreter's list */
	HT_PYC_TSTATE_MISSING = 6,  /* ... not found */
	HT_PYC_LOCK_BOUND = 7,      /* lock made while serving a request: remembered */
	HT_PYC_FUTURE_TAKEN = 8,    /* a worker took a Future for a request */
	HT_PYC_FUTURE_DONE = 9,     /* ... and gave it back: the call returned */
	HT_PYC_LOCK_FOREIGN = 10,   /* remembered lock taken elsewhere than a Future's run */
	HT_PYC_SYSCALL_HANDED = 11, /* connect/write of a worker: its Future's request */
	HT_PYC_MAX = 12,
};

#endif /* HOPTRACE_BPF_RUNTIME_PYTHON_H */
