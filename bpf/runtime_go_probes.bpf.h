/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The Go runtime's uprobe programs (see runtime_go.bpf.h), in the capture
 * object with kernel-side contexts only (they feed nothing else); the agent
 * attaches them per Go process (agent/kernel/go_runtime.*).
 */
#ifndef HOPTRACE_BPF_RUNTIME_GO_PROBES_BPF_H
#define HOPTRACE_BPF_RUNTIME_GO_PROBES_BPF_H
#ifndef HT_NO_KERNEL_CTX

#include "runtime_go.bpf.h"

/* func newproc1(fn *funcval, callergp *g, callerpc uintptr, parked bool,
 *               waitreason waitReason) *g    (ABIInternal: BX = callergp) */
SEC("uprobe")
int ht_go_newproc1(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 caller = ctx->bx;

	if (!bpf_map_lookup_elem(&ht_go_procs, &tgid))
		return 0;
	bpf_map_update_elem(&ht_go_newproc, &pid_tgid, &caller, BPF_ANY);
	return 0;
}

/* A return instruction of runtime.newproc1: AX = the new g. */
SEC("uprobe")
int ht_go_newproc1_ret(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 *caller = bpf_map_lookup_elem(&ht_go_newproc, &pid_tgid);
	struct ht_go_key pk = { .tgid = pid_tgid >> 32 }, nk = { .tgid = pid_tgid >> 32 };
	struct ht_go_binding *p, b = {};

	if (!caller)
		return 0;
	pk.g = *caller;
	bpf_map_delete_elem(&ht_go_newproc, &pid_tgid);
	nk.g = ctx->ax;
	if (!nk.g)
		return 0;
	p = bpf_map_lookup_elem(&ht_go_gs, &pk);
	if (!p || !p->span_id) {
		/* a reused g must not keep its dead goroutine's request */
		bpf_map_delete_elem(&ht_go_gs, &nk);
		return 0;
	}
	b.span_id = p->span_id;
	b.kind = p->kind == HT_GO_OWN ? HT_GO_CHILD : HT_GO_CREATED;
	/* Its creator's calls, or (a goroutine created by one that works for
	 * another: net/http's dialer making the connection's writeLoop) those
	 * of the goroutine the creator works for. */
	b.origin_g = p->origin_g ? p->origin_g : pk.g;
	bpf_map_update_elem(&ht_go_gs, &nk, &b, BPF_ANY);
	ht_go_count(HT_GOC_INHERITED);
	return 0;
}

/* func send(c *hchan, sg *sudog, ep unsafe.Pointer, unlockf func(), skip int)
 * runs on the sender's goroutine (R14) when a receiver is parked on the
 * channel; sg.g (offset 0 of runtime.sudog) is the receiver it wakes. */
SEC("uprobe")
int ht_go_send(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct ht_go_key sk = { .tgid = tgid }, rk = { .tgid = tgid };
	struct ht_go_binding *s, *r, b = { .kind = HT_GO_HANDOFF };

	if (!bpf_map_lookup_elem(&ht_go_procs, &tgid))
		return 0;
	sk.g = ctx->r14;
	s = bpf_map_lookup_elem(&ht_go_gs, &sk);
	if (!s || !s->span_id || s->kind == HT_GO_CREATED)
		return 0;
	if (bpf_probe_read_user(&rk.g, sizeof(rk.g), (void *)ctx->bx) || !rk.g)
		return 0;
	r = bpf_map_lookup_elem(&ht_go_gs, &rk);
	if (r && (r->kind == HT_GO_OWN || r->kind == HT_GO_CHILD))
		return 0;
	b.span_id = s->span_id;
	b.origin_g = sk.g;
	bpf_map_update_elem(&ht_go_gs, &rk, &b, BPF_ANY);
	ht_go_count(HT_GOC_HANDOFF);
	return 0;
}

#endif /* HT_NO_KERNEL_CTX */
#endif /* HOPTRACE_BPF_RUNTIME_GO_PROBES_BPF_H */
