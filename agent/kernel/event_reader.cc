#include "agent/kernel/event_reader.h"

#include <cstring>

namespace hoptrace {

void EventReader::Dispatch(std::span<const uint8_t> record) {
  ++stats_.events;
  if (record.size() < sizeof(ht_event_header)) {
    ++stats_.malformed;
    return;
  }
  // Ring-buffer records are 8-byte aligned, which every event struct needs.
  const auto* hdr = reinterpret_cast<const ht_event_header*>(record.data());
  switch (hdr->type) {
    case HT_EV_CONN_OPEN:
    case HT_EV_CONN_CLOSE: {
      if (record.size() < sizeof(ht_conn_event)) break;
      const auto* ev = reinterpret_cast<const ht_conn_event*>(record.data());
      ConnEvent out{hdr, &ev->tuple, static_cast<ht_role>(ev->role),
                    static_cast<ht_protocol>(ev->protocol), ev->flags, ev->tls_version};
      if (hdr->type == HT_EV_CONN_OPEN) {
        handler_->OnConnOpen(out);
      } else {
        handler_->OnConnClose(out);
      }
      return;
    }
    case HT_EV_DATA: {
      if (record.size() < sizeof(ht_data_event)) break;
      const auto* ev = reinterpret_cast<const ht_data_event*>(record.data());
      if (ev->captured > record.size() - sizeof(ht_data_event) || ev->captured > ev->bytes ||
          (ev->direction != HT_DIR_EGRESS && ev->direction != HT_DIR_INGRESS)) {
        break;
      }
      DataEvent out{hdr, static_cast<ht_direction>(ev->direction),
                    static_cast<ht_syscall>(ev->syscall), ev->bytes,
                    std::string_view(reinterpret_cast<const char*>(ev->payload), ev->captured)};
      handler_->OnData(out);
      return;
    }
    case HT_EV_PROC_EXEC:
    case HT_EV_PROC_EXIT: {
      if (record.size() < sizeof(ht_proc_event)) break;
      const auto* ev = reinterpret_cast<const ht_proc_event*>(record.data());
      ProcEvent out{hdr, ev->ppid, ev->exit_code,
                    std::string_view(ev->comm, strnlen(ev->comm, sizeof(ev->comm)))};
      if (hdr->type == HT_EV_PROC_EXEC) {
        handler_->OnProcExec(out);
      } else {
        handler_->OnProcExit(out);
      }
      return;
    }
    case HT_EV_PROC_IDENTITY: {
      if (record.size() < sizeof(ht_proc_identity_event)) break;
      const auto* ev = reinterpret_cast<const ht_proc_identity_event*>(record.data());
      handler_->OnProcIdentity(ProcIdentityEvent{
          hdr, ev, std::string_view(ev->comm, strnlen(ev->comm, sizeof(ev->comm))),
          std::string_view(ev->path, strnlen(ev->path, sizeof(ev->path)))});
      return;
    }
    case HT_EV_TCP_STATS:
    case HT_EV_TCP_RETRANSMIT:
    case HT_EV_TCP_RESET_RECEIVED:
    case HT_EV_TCP_RESET_SENT: {
      if (record.size() < sizeof(ht_tcp_event)) break;
      handler_->OnTcpEvent(TcpEvent{hdr, reinterpret_cast<const ht_tcp_event*>(record.data())});
      return;
    }
    case HT_EV_FIONREAD: {
      if (record.size() < sizeof(ht_fionread_event)) break;
      handler_->OnFionread(
          FionreadEvent{hdr, reinterpret_cast<const ht_fionread_event*>(record.data())->flags});
      return;
    }
    case HT_EV_SERVER_CTX:
    case HT_EV_CLIENT_CTX: {
      if (record.size() < sizeof(ht_ctx_event)) break;
      const auto* ev = reinterpret_cast<const ht_ctx_event*>(record.data());
      if (ev->tracestate_len > HT_TRACESTATE_MAX) break;
      handler_->OnTraceContext(
          CtxEvent{hdr, ev, std::string_view(ev->tracestate, ev->tracestate_len)});
      return;
    }
    case HT_EV_FUNC_CALL:
    case HT_EV_FUNC_ABANDONED: {
      if (record.size() < sizeof(hu_call_event)) break;
      const auto* ev = reinterpret_cast<const hu_call_event*>(record.data());
      if (ev->depth > HU_MAX_DEPTH || ev->index >= ev->depth) break;
      const hu_py_call_event* py = nullptr;
      if (ev->flags & HU_F_PY_WHERE) {
        if (record.size() < sizeof(hu_py_call_event)) break;
        py = reinterpret_cast<const hu_py_call_event*>(record.data());
        if (py->path_len >= HU_PY_PATH_MAX) break;
      }
      handler_->OnFuncCall(FuncCallEvent{ev, hdr->type == HT_EV_FUNC_ABANDONED, py});
      return;
    }
    default:
      break;
  }
  ++stats_.malformed;
}

}  // namespace hoptrace
