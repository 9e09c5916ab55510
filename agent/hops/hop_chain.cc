#include "agent/hops/hop_chain.h"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <variant>

namespace hoptrace {
namespace {

using nlohmann::json;

std::optional<std::string> Str(const Attributes& a, std::string_view key) {
  const AttrValue* v = FindAttribute(a, key);
  if (v == nullptr) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(v)) return *s;
  return std::nullopt;
}

std::optional<int64_t> Int(const Attributes& a, std::string_view key) {
  const AttrValue* v = FindAttribute(a, key);
  if (v == nullptr) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(v)) return *i;
  if (const auto* d = std::get_if<double>(v)) return static_cast<int64_t>(*d);
  return std::nullopt;
}

std::string Endpoint(const Attributes& a, std::string_view addr_key, std::string_view port_key) {
  auto addr = Str(a, addr_key);
  if (!addr || addr->empty()) return "";
  auto port = Int(a, port_key);
  const bool v6 = addr->find(':') != std::string::npos;
  std::string host = v6 ? "[" + *addr + "]" : *addr;
  return port ? host + ":" + std::to_string(*port) : host;
}

template <size_t N>
bool ParseHex(std::string_view hex, std::array<uint8_t, N>* out) {
  if (hex.size() != 2 * N) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < N; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

void Put(json& j, const char* key, const std::optional<int64_t>& v) {
  j[key] = v ? json(*v) : json(nullptr);
}

std::optional<int64_t> Get(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<int64_t>();
}

std::string GetStr(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

HopSpan SummarizeSpan(const Span& span) {
  const Attributes& a = span.attributes;
  HopSpan s;
  s.trace_id = span.trace_id.Hex();
  s.span_id = span.span_id.Hex();
  s.parent_span_id = span.parent_span_id.IsValid() ? span.parent_span_id.Hex() : "";
  s.kind = span.kind;
  s.service = span.resource ? span.resource->ServiceName() : "unknown_service";
  s.method = Str(a, "http.request.method").value_or(span.name);
  if (s.method == "_OTHER") s.method = Str(a, "http.request.method_original").value_or(s.method);
  s.target = span.kind == SpanKind::kClient ? Str(a, "url.full").value_or("")
                                            : Str(a, "url.path").value_or("");
  s.status_code = Int(a, "http.response.status_code").value_or(0);
  s.error = span.status == StatusCode::kError;
  s.start_unix_ns = span.start_unix_nano;
  s.end_unix_ns = span.end_unix_nano;
  s.local_address = Endpoint(a, "network.local.address", "network.local.port");
  s.peer_address = Endpoint(a, "network.peer.address", "network.peer.port");
  s.server_address = Endpoint(a, "server.address", "server.port");
  s.srtt_us = Int(a, "hoptrace.tcp.srtt_us");
  s.rttvar_us = Int(a, "hoptrace.tcp.rttvar_us");
  s.ip_hops = Int(a, "hoptrace.network.ip_hops");
  s.retransmits = Int(a, "hoptrace.tcp.retransmits").value_or(0);
  s.timeouts = Int(a, "hoptrace.tcp.timeouts").value_or(0);
  s.resets = Int(a, "hoptrace.tcp.resets").value_or(0);
  s.network_ns = Int(a, "hoptrace.network.time_ns");
  s.request_ns = Int(a, "hoptrace.network.request_ns");
  s.response_ns = Int(a, "hoptrace.network.response_ns");
  s.server_ns = Int(a, "hoptrace.server.time_ns");
  s.network_retransmits = Int(a, "hoptrace.network.retransmits");
  return s;
}

namespace {

// What a hop takes from the span seen at one of its ends: the request, its
// outcome, and that end's TCP facts.
void CopySpanFacts(const HopSpan& span, Hop* h) {
  h->method = span.method;
  h->target = span.target;
  h->status_code = span.status_code;
  h->error = span.error;
  h->start_unix_ns = span.start_unix_ns;
  h->srtt_us = span.srtt_us;
  h->rttvar_us = span.rttvar_us;
  h->ip_hops = span.ip_hops;
  h->retransmits = span.retransmits;
  h->timeouts = span.timeouts;
  h->resets = span.resets;
}

}  // namespace

Hop MakeCallHop(const HopSpan& c, const HopSpan* s) {
  Hop h;
  CopySpanFacts(c, &h);
  h.caller = c.service;
  h.caller_address = c.local_address;
  h.callee = s ? s->service : c.server_address;
  h.callee_address = !c.peer_address.empty() ? c.peer_address : c.server_address;
  h.total_ns = static_cast<int64_t>(c.duration_ns());
  h.client_span_id = c.span_id;
  if (s != nullptr) {
    h.server_span_id = s->span_id;
    // The agent's own pairing (same host, one clock) when it made one; from
    // the two spans otherwise (spans of two hosts: no one-way times then).
    h.server_ns = c.server_ns.value_or(static_cast<int64_t>(s->duration_ns()));
    h.network_ns = c.network_ns.value_or(std::max<int64_t>(0, *h.total_ns - *h.server_ns));
    h.request_ns = c.request_ns;
    h.response_ns = c.response_ns;
    if (!h.srtt_us) {
      h.srtt_us = s->srtt_us;
      h.rttvar_us = s->rttvar_us;
    }
    if (!h.ip_hops) h.ip_hops = s->ip_hops;
    h.retransmits = c.network_retransmits.value_or(c.retransmits + s->retransmits);
    h.timeouts = c.timeouts + s->timeouts;
    h.resets = c.resets + s->resets;
  }
  return h;
}

Hop MakeEntryHop(const HopSpan& s) {
  Hop h;
  CopySpanFacts(s, &h);
  h.caller_address = s.peer_address;
  h.caller = s.peer_address.empty() ? "?" : s.peer_address.substr(0, s.peer_address.rfind(':'));
  h.callee = s.service;
  h.callee_address = s.local_address;
  h.server_ns = static_cast<int64_t>(s.duration_ns());
  h.server_span_id = s.span_id;
  return h;
}

std::vector<Hop> BuildHops(const std::vector<HopSpan>& spans) {
  std::unordered_map<std::string, const HopSpan*> by_id;
  for (const HopSpan& s : spans) by_id.emplace(s.span_id, &s);
  std::unordered_map<std::string, std::vector<const HopSpan*>> children;
  std::vector<const HopSpan*> roots;
  for (const HopSpan& s : spans) {
    if (!s.parent_span_id.empty() && by_id.count(s.parent_span_id)) {
      children[s.parent_span_id].push_back(&s);
    } else {
      roots.push_back(&s);
    }
  }
  auto by_start = [](const HopSpan* a, const HopSpan* b) {
    return a->start_unix_ns != b->start_unix_ns ? a->start_unix_ns < b->start_unix_ns
                                                : a->span_id < b->span_id;
  };
  std::sort(roots.begin(), roots.end(), by_start);
  for (auto& [id, list] : children) std::sort(list.begin(), list.end(), by_start);

  std::vector<Hop> hops;
  // Depth first; depth counts calls, so a callee's own calls sit one deeper.
  auto visit = [&](auto&& self, const HopSpan* s, int depth) -> void {
    const auto kids = children.find(s->span_id);
    const std::vector<const HopSpan*> none;
    const auto& list = kids == children.end() ? none : kids->second;
    if (s->kind == SpanKind::kClient) {
      const HopSpan* server = nullptr;
      for (const HopSpan* k : list) {
        if (k->kind == SpanKind::kServer) {
          server = k;
          break;
        }
      }
      hops.push_back(MakeCallHop(*s, server));
      hops.back().depth = depth;
      for (const HopSpan* k : list) self(self, k, depth + 1);
      return;
    }
    int child_depth = depth;
    if (s->kind == SpanKind::kServer) {
      const auto parent = by_id.find(s->parent_span_id);
      const bool called_by_traced_client =
          parent != by_id.end() && parent->second->kind == SpanKind::kClient;
      if (!called_by_traced_client) {
        hops.push_back(MakeEntryHop(*s));
        hops.back().depth = depth;
        child_depth = depth + 1;
      }
    }
    for (const HopSpan* k : list) self(self, k, child_depth);
  };
  for (const HopSpan* r : roots) visit(visit, r, 0);
  return hops;
}

json HopToJson(const Hop& h) {
  json j;
  j["depth"] = h.depth;
  j["caller"] = h.caller;
  j["caller_address"] = h.caller_address;
  j["callee"] = h.callee;
  j["callee_address"] = h.callee_address;
  j["method"] = h.method;
  j["target"] = h.target;
  j["status_code"] = h.status_code;
  j["error"] = h.error;
  j["start_time_unix_nano"] = h.start_unix_ns;
  Put(j, "total_ns", h.total_ns);
  Put(j, "server_ns", h.server_ns);
  Put(j, "network_ns", h.network_ns);
  Put(j, "request_ns", h.request_ns);
  Put(j, "response_ns", h.response_ns);
  Put(j, "srtt_us", h.srtt_us);
  Put(j, "rttvar_us", h.rttvar_us);
  Put(j, "ip_hops", h.ip_hops);
  j["retransmits"] = h.retransmits;
  j["timeouts"] = h.timeouts;
  j["resets"] = h.resets;
  j["client_span_id"] = h.client_span_id;
  j["server_span_id"] = h.server_span_id;
  return j;
}

Hop HopFromJson(const json& j) {
  Hop h;
  h.depth = static_cast<int>(Get(j, "depth").value_or(0));
  h.caller = GetStr(j, "caller");
  h.caller_address = GetStr(j, "caller_address");
  h.callee = GetStr(j, "callee");
  h.callee_address = GetStr(j, "callee_address");
  h.method = GetStr(j, "method");
  h.target = GetStr(j, "target");
  h.status_code = Get(j, "status_code").value_or(0);
  h.error = j.value("error", false);
  h.start_unix_ns = static_cast<uint64_t>(Get(j, "start_time_unix_nano").value_or(0));
  h.total_ns = Get(j, "total_ns");
  h.server_ns = Get(j, "server_ns");
  h.network_ns = Get(j, "network_ns");
  h.request_ns = Get(j, "request_ns");
  h.response_ns = Get(j, "response_ns");
  h.srtt_us = Get(j, "srtt_us");
  h.rttvar_us = Get(j, "rttvar_us");
  h.ip_hops = Get(j, "ip_hops");
  h.retransmits = Get(j, "retransmits").value_or(0);
  h.timeouts = Get(j, "timeouts").value_or(0);
  h.resets = Get(j, "resets").value_or(0);
  h.client_span_id = GetStr(j, "client_span_id");
  h.server_span_id = GetStr(j, "server_span_id");
  return h;
}

std::optional<Span> SpanFromJson(const json& j) {
  if (!j.is_object()) return std::nullopt;
  Span span;
  if (!ParseHex(GetStr(j, "trace_id"), &span.trace_id.bytes) ||
      !ParseHex(GetStr(j, "span_id"), &span.span_id.bytes)) {
    return std::nullopt;
  }
  ParseHex(GetStr(j, "parent_span_id"), &span.parent_span_id.bytes);
  const std::string kind = GetStr(j, "kind");
  span.kind = kind == "SERVER"   ? SpanKind::kServer
              : kind == "CLIENT" ? SpanKind::kClient
                                 : SpanKind::kInternal;
  span.name = GetStr(j, "name");
  span.start_unix_nano = static_cast<uint64_t>(Get(j, "start_time_unix_nano").value_or(0));
  span.end_unix_nano = static_cast<uint64_t>(Get(j, "end_time_unix_nano").value_or(0));
  if (auto st = j.find("status"); st != j.end() && st->is_object()) {
    span.status = GetStr(*st, "code") == "ERROR" ? StatusCode::kError
                  : GetStr(*st, "code") == "OK"  ? StatusCode::kOk
                                                 : StatusCode::kUnset;
  }
  auto read_attrs = [](const json& obj, Attributes* out) {
    if (!obj.is_object()) return;
    for (const auto& [k, v] : obj.items()) {
      auto key = AttrKey::Intern(k);
      if (!key) continue;
      if (v.is_string()) {
        out->push_back({*key, v.get<std::string>()});
      } else if (v.is_boolean()) {
        out->push_back({*key, v.get<bool>()});
      } else if (v.is_number_integer()) {
        out->push_back({*key, v.get<int64_t>()});
      } else if (v.is_number()) {
        out->push_back({*key, v.get<double>()});
      }
    }
  };
  if (auto a = j.find("attributes"); a != j.end()) read_attrs(*a, &span.attributes);
  if (auto r = j.find("resource"); r != j.end() && r->is_object()) {
    auto res = std::make_shared<Resource>();
    if (auto ra = r->find("attributes"); ra != r->end()) read_attrs(*ra, &res->attributes);
    span.resource = std::move(res);
  }
  return span;
}

}  // namespace hoptrace
