// Pins the layout of the structs that cross the ring buffer. The BPF
// program (clang, -target bpf) and the agent (g++) must agree byte for byte;
// a change here is a schema change: add fields at the end only.
#include <gtest/gtest.h>

#include <cstddef>

#include "net_probe.h"
#include "socket_trace.h"
#include "tcp_ctx_option.h"
#include "uprobe_trace.h"

namespace {

TEST(EventLayout, HeaderIsFortyBytesWithFixedOffsets) {
  EXPECT_EQ(sizeof(ht_event_header), 40u);
  EXPECT_EQ(offsetof(ht_event_header, type), 0u);
  EXPECT_EQ(offsetof(ht_event_header, pid), 4u);
  EXPECT_EQ(offsetof(ht_event_header, tid), 8u);
  EXPECT_EQ(offsetof(ht_event_header, fd), 12u);
  EXPECT_EQ(offsetof(ht_event_header, conn_gen), 16u);
  EXPECT_EQ(offsetof(ht_event_header, ts_enter_ns), 24u);
  EXPECT_EQ(offsetof(ht_event_header, ts_exit_ns), 32u);
}

TEST(EventLayout, TupleHoldsIpv6SizedAddresses) {
  EXPECT_EQ(sizeof(ht_tuple), 40u);
  EXPECT_EQ(offsetof(ht_tuple, family), 0u);
  EXPECT_EQ(offsetof(ht_tuple, local_port), 2u);
  EXPECT_EQ(offsetof(ht_tuple, remote_port), 4u);
  EXPECT_EQ(offsetof(ht_tuple, local_addr), 8u);
  EXPECT_EQ(offsetof(ht_tuple, remote_addr), 24u);
}

TEST(EventLayout, ConnEvent) {
  EXPECT_EQ(sizeof(ht_conn_event), 96u);
  EXPECT_EQ(offsetof(ht_conn_event, tuple), 40u);
  EXPECT_EQ(offsetof(ht_conn_event, role), 80u);
  EXPECT_EQ(offsetof(ht_conn_event, protocol), 84u);
  EXPECT_EQ(offsetof(ht_conn_event, flags), 88u);
  EXPECT_EQ(offsetof(ht_conn_event, tls_version), 92u);
}

TEST(EventLayout, DataEventPayloadFollowsFixedPart) {
  EXPECT_EQ(sizeof(ht_data_event), 64u);
  EXPECT_EQ(offsetof(ht_data_event, direction), 40u);
  EXPECT_EQ(offsetof(ht_data_event, syscall), 44u);
  EXPECT_EQ(offsetof(ht_data_event, bytes), 48u);
  EXPECT_EQ(offsetof(ht_data_event, captured), 56u);
  EXPECT_EQ(offsetof(ht_data_event, payload), 64u);
}

TEST(EventLayout, ProcEvent) {
  EXPECT_EQ(sizeof(ht_proc_event), 64u);
  EXPECT_EQ(offsetof(ht_proc_event, ppid), 40u);
  EXPECT_EQ(offsetof(ht_proc_event, exit_code), 44u);
  EXPECT_EQ(offsetof(ht_proc_event, comm), 48u);
}

TEST(EventLayout, ProcIdentityEvent) {
  EXPECT_EQ(HT_EV_PROC_IDENTITY, 13);
  EXPECT_EQ(sizeof(ht_proc_identity_event), 336u);
  EXPECT_EQ(offsetof(ht_proc_identity_event, ppid), 40u);
  EXPECT_EQ(offsetof(ht_proc_identity_event, flags), 44u);
  EXPECT_EQ(offsetof(ht_proc_identity_event, start_boottime_ns), 48u);
  EXPECT_EQ(offsetof(ht_proc_identity_event, cgroup_id), 56u);
  EXPECT_EQ(offsetof(ht_proc_identity_event, comm), 64u);
  EXPECT_EQ(offsetof(ht_proc_identity_event, path), 80u);
}

TEST(EventLayout, CtxEvent) {
  EXPECT_EQ(sizeof(ht_ctx_event), 608u);
  EXPECT_EQ(offsetof(ht_ctx_event, trace_id), 40u);
  EXPECT_EQ(offsetof(ht_ctx_event, span_id), 56u);
  EXPECT_EQ(offsetof(ht_ctx_event, parent_id), 64u);
  EXPECT_EQ(offsetof(ht_ctx_event, trace_flags), 72u);
  EXPECT_EQ(offsetof(ht_ctx_event, origin), 73u);
  EXPECT_EQ(offsetof(ht_ctx_event, ctx_flags), 74u);
  EXPECT_EQ(offsetof(ht_ctx_event, tracestate_len), 76u);
  EXPECT_EQ(offsetof(ht_ctx_event, stack_ids), 80u);
  EXPECT_EQ(offsetof(ht_ctx_event, tracestate), 96u);
  EXPECT_EQ(HT_TRACESTATE_MAX, 512);
  EXPECT_EQ(HT_EV_SERVER_CTX, 6);
  EXPECT_EQ(HT_EV_CLIENT_CTX, 7);
  EXPECT_EQ(HT_CTX_NEW_TRACE, 1);
  EXPECT_EQ(HT_CTX_REMOTE, 2);
  EXPECT_EQ(HT_CTX_INVALID, 3);
  EXPECT_EQ(HT_CTX_INJECTED, 4);
  EXPECT_EQ(HT_CTX_PICKED, 5);
}

TEST(EventLayout, EnumValuesAreStable) {
  EXPECT_EQ(HT_EV_CONN_OPEN, 1);
  EXPECT_EQ(HT_EV_DATA, 2);
  EXPECT_EQ(HT_EV_CONN_CLOSE, 3);
  EXPECT_EQ(HT_EV_PROC_EXEC, 4);
  EXPECT_EQ(HT_EV_PROC_EXIT, 5);
  EXPECT_EQ(HT_DIR_EGRESS, 1);
  EXPECT_EQ(HT_DIR_INGRESS, 2);
  EXPECT_EQ(HT_ROLE_CLIENT, 1);
  EXPECT_EQ(HT_ROLE_SERVER, 2);
  // Power of two: the BPF side masks with it.
  EXPECT_EQ(HT_MAX_PAYLOAD & (HT_MAX_PAYLOAD - 1), 0);
}

TEST(EventLayout, TcpEventOfTheNetworkProbes) {
  EXPECT_EQ(sizeof(ht_tcp_event), 72u);
  EXPECT_EQ(offsetof(ht_tcp_event, srtt_us), 40u);
  EXPECT_EQ(offsetof(ht_tcp_event, rttvar_us), 44u);
  EXPECT_EQ(offsetof(ht_tcp_event, min_rtt_us), 48u);
  EXPECT_EQ(offsetof(ht_tcp_event, total_retrans), 52u);
  EXPECT_EQ(offsetof(ht_tcp_event, total_rto), 56u);
  EXPECT_EQ(offsetof(ht_tcp_event, family), 60u);
  EXPECT_EQ(offsetof(ht_tcp_event, ttl), 62u);
  EXPECT_EQ(offsetof(ht_tcp_event, state), 63u);
  EXPECT_EQ(offsetof(ht_tcp_event, ca_state), 64u);
  EXPECT_EQ(offsetof(ht_tcp_event, flags), 65u);
  EXPECT_EQ(offsetof(ht_tcp_event, reason), 66u);
  EXPECT_EQ(HT_EV_TCP_STATS, 8);
  EXPECT_EQ(HT_EV_TCP_RETRANSMIT, 9);
  EXPECT_EQ(HT_EV_TCP_RESET_RECEIVED, 10);
  EXPECT_EQ(HT_EV_TCP_RESET_SENT, 11);
  EXPECT_EQ(HT_EV_FIONREAD, 12);
  EXPECT_EQ(sizeof(ht_fionread_event), 48u);
  EXPECT_EQ(offsetof(ht_fionread_event, flags), 40u);
  EXPECT_EQ(HT_FIONREAD_F_ARMED, 1);
  EXPECT_EQ(HT_FIONREAD_F_FIRST, 2);
  EXPECT_EQ(HT_TCP_SAMPLE_ACCEPT, 4);
  EXPECT_EQ(HT_TCP_F_TIMEOUT, 1);
}

}  // namespace

// The documented TCP option format (bpf/tcp_ctx_option.h): 28 bytes, so
// that it fits beside TCP timestamps in the 40 bytes of options.
TEST(EventLayout, TcpContextOption) {
  EXPECT_EQ(sizeof(ht_tcp_ctx_option), 28u);
  EXPECT_EQ(offsetof(ht_tcp_ctx_option, exid), 2u);
  EXPECT_EQ(offsetof(ht_tcp_ctx_option, trace_id), 4u);
  EXPECT_EQ(offsetof(ht_tcp_ctx_option, parent_id), 20u);
  EXPECT_EQ(HT_TCPOPT_EXP, 253);
  EXPECT_EQ(HT_TCPOPT_CTX_LEN, 28);
  EXPECT_EQ(HT_TCPOPT_EXID_SAMPLED, 0x4854);    // "HT"
  EXPECT_EQ(HT_TCPOPT_EXID_UNSAMPLED, 0x4855);  // "HU"
  // With NOP NOP TS (12 bytes): TCP's 40 bytes of options, no more.
  EXPECT_LE(sizeof(ht_tcp_ctx_option) + 12, 40u);
  // The map values both BPF objects share.
  EXPECT_EQ(sizeof(ht_tcpopt_pending), 32u);
  EXPECT_EQ(offsetof(ht_tcpopt_pending, seq), 28u);
  EXPECT_EQ(sizeof(ht_tcpopt_received), 32u);
  EXPECT_EQ(offsetof(ht_tcpopt_received, flags), 24u);
  EXPECT_EQ(offsetof(ht_tcpopt_received, taken), 25u);
  // Its origin and flag in the context events.
  EXPECT_EQ(HT_CTX_NEW_CLIENT, 6);
  EXPECT_EQ(HT_CTX_F_TCP_OPTION, 0x8);
}
namespace {

TEST(EventLayout, FunctionCallEventOfTheUprobes) {
  EXPECT_EQ(sizeof(hu_frame), 24u);
  EXPECT_EQ(offsetof(hu_frame, entry_ns), 0u);
  EXPECT_EQ(offsetof(hu_frame, sp), 8u);
  EXPECT_EQ(offsetof(hu_frame, function_id), 16u);
  EXPECT_EQ(offsetof(hu_frame, tid), 20u);
  EXPECT_EQ(sizeof(hu_call_event), 504u);
  EXPECT_EQ(offsetof(hu_call_event, context_id), 40u);
  EXPECT_EQ(offsetof(hu_call_event, index), 48u);
  EXPECT_EQ(offsetof(hu_call_event, depth), 50u);
  EXPECT_EQ(offsetof(hu_call_event, flags), 52u);
  EXPECT_EQ(offsetof(hu_call_event, exception), 56u);
  EXPECT_EQ(offsetof(hu_call_event, frames), 120u);
  // The map values the agent reads back (UprobeLoader::ReadStack, hu_sites).
  EXPECT_EQ(sizeof(hu_stack), 592u);
  EXPECT_EQ(offsetof(hu_stack, exit_ns), 464u);
  EXPECT_EQ(offsetof(hu_stack, frames), 80u);
  EXPECT_EQ(sizeof(hu_site_key), 16u);
  EXPECT_EQ(sizeof(hu_site), 8u);
  EXPECT_EQ(HT_EV_FUNC_CALL, 20);
  EXPECT_EQ(HT_EV_FUNC_ABANDONED, 21);
  EXPECT_EQ(HU_SITE_ENTRY, 1);
  EXPECT_EQ(HU_SITE_RETURN, 2);
  EXPECT_EQ(HU_SITE_THROW, 3);
  EXPECT_EQ(HU_SITE_CATCH, 4);
  EXPECT_EQ(HU_SITE_PY_ENTRY, 5);
  EXPECT_EQ(HU_SITE_PY_RETURN, 6);
  EXPECT_EQ(HU_F_PY_RAISED, 4);
  EXPECT_EQ(HU_F_PY_WHERE, 8);
  EXPECT_EQ(HU_FUNCTION_PY, 0x80000000u);
  // A Python function's return: the call, then where the function is.
  EXPECT_EQ(sizeof(hu_py_call_event), 1024u);
  EXPECT_EQ(offsetof(hu_py_call_event, line), 504u);
  EXPECT_EQ(offsetof(hu_py_call_event, path_len), 508u);
  EXPECT_EQ(offsetof(hu_py_call_event, path), 512u);
}

TEST(EventLayout, PythonFunctionMapsOfTheUprobes) {
  EXPECT_EQ(sizeof(hu_py_name_key), 56u);
  EXPECT_EQ(offsetof(hu_py_name_key, name), 8u);
  EXPECT_EQ(sizeof(hu_py_want), 32u + 4 * 64u);
  EXPECT_EQ(offsetof(hu_py_want, suffix), 32u);
  EXPECT_EQ(sizeof(hu_py_proc), 48u);
  EXPECT_EQ(offsetof(hu_py_proc, rt_tstate_current), 8u);
  EXPECT_EQ(offsetof(hu_py_proc, type_name), 32u);
  EXPECT_EQ(offsetof(hu_py_proc, entry_file_reg), 36u);
  EXPECT_EQ(offsetof(hu_py_proc, return_name_reg), 42u);
  EXPECT_EQ(offsetof(hu_py_proc, code_firstlineno), 44u);
}

}  // namespace
