#include "agent/hops/hops_command.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/hops/hop_chain.h"
#include "agent/hops/hop_table.h"

namespace hoptrace {
namespace {

using nlohmann::json;

// Values come from requests (paths, Host headers): never let them drive the terminal.
std::string Clean(std::string_view s, size_t max = 48) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (out.size() > max) out = out.substr(0, max - 3) + "...";
  return out;
}

std::string Duration(std::optional<int64_t> ns) {
  if (!ns) return "-";
  char buf[32];
  const double v = static_cast<double>(*ns);
  if (*ns < 1'000'000) {
    snprintf(buf, sizeof(buf), "%.0fus", v / 1e3);
  } else if (*ns < 1'000'000'000) {
    snprintf(buf, sizeof(buf), "%.1fms", v / 1e6);
  } else {
    snprintf(buf, sizeof(buf), "%.2fs", v / 1e9);
  }
  return buf;
}

std::string Micros(std::optional<int64_t> us) { return us ? Duration(*us * 1000) : "-"; }

std::string Number(std::optional<int64_t> n) { return n ? std::to_string(*n) : "-"; }

// ---- data sources -------------------------------------------------------------

size_t CurlWrite(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// GET http://agent/path; the parsed JSON body, or an error message.
std::optional<json> FetchJson(const std::string& agent, const std::string& path,
                              std::string* error) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    *error = "cannot initialise libcurl";
    return std::nullopt;
  }
  std::string url = "http://" + agent + path, body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CurlWrite);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");  // the agent is local: no proxy
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    *error = "cannot reach the agent at " + agent + " (" + curl_easy_strerror(rc) +
             "): start it with `hoptrace run --metrics-address " + agent + " ...`";
    return std::nullopt;
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = "the agent at " + agent + " answered " + std::to_string(status) + " without JSON";
    return std::nullopt;
  }
  if (status != 200) {
    *error = j.value("error", "the agent answered " + std::to_string(status));
    return std::nullopt;
  }
  return j;
}

// Every span of a JSON-lines file (lines that are not spans are skipped).
std::optional<std::vector<HopSpan>> ReadSpans(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read " + path;
    return std::nullopt;
  }
  std::vector<HopSpan> spans;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (auto span = SpanFromJson(j)) spans.push_back(SummarizeSpan(*span));
  }
  return spans;
}

// ---- tables --------------------------------------------------------------------

void PrintHops(const std::string& trace_id, const std::vector<Hop>& hops, FILE* out) {
  fprintf(out, "trace %s: %zu hop%s\n\n", trace_id.c_str(), hops.size(),
          hops.size() == 1 ? "" : "s");
  std::vector<std::string> who, call;
  size_t who_w = std::string("caller -> callee (address)").size(), call_w = 4;
  for (const Hop& h : hops) {
    std::string w = std::string(2 * h.depth, ' ') + Clean(h.caller, 32) + " -> " +
                    Clean(h.callee, 32) +
                    (h.callee_address.empty() ? "" : " (" + Clean(h.callee_address) + ")");
    std::string c = Clean(h.method, 12) + " " + Clean(h.target) +
                    (h.status_code ? " " + std::to_string(h.status_code) : "");
    who_w = std::max(who_w, w.size());
    call_w = std::max(call_w, c.size());
    who.push_back(std::move(w));
    call.push_back(std::move(c));
  }
  fprintf(out, "%-3s  %-*s  %-*s  %9s %9s %9s %9s %9s %8s %7s %7s\n", "#", static_cast<int>(who_w),
          "caller -> callee (address)", static_cast<int>(call_w), "call", "total", "server",
          "network", "request", "response", "rtt", "ip hops", "retrans");
  for (size_t i = 0; i < hops.size(); ++i) {
    const Hop& h = hops[i];
    fprintf(out, "%-3zu  %-*s  %-*s  %9s %9s %9s %9s %9s %8s %7s %7lld\n", i + 1,
            static_cast<int>(who_w), who[i].c_str(), static_cast<int>(call_w), call[i].c_str(),
            Duration(h.total_ns).c_str(), Duration(h.server_ns).c_str(),
            Duration(h.network_ns).c_str(), Duration(h.request_ns).c_str(),
            Duration(h.response_ns).c_str(), Micros(h.srtt_us).c_str(), Number(h.ip_hops).c_str(),
            static_cast<long long>(h.retransmits));
  }
  fprintf(
      out,
      "\ntotal: the caller's wait; server: the callee's own span; network = total - server;\n"
      "request/response: one-way times (caller's send -> callee's read, callee's last write ->\n"
      "caller's read; same host only); rtt: TCP's smoothed RTT; ip hops: routers crossed.\n");
}

std::string Pair(const EdgePercentiles& p, bool micros) {
  if (p.count == 0) return "-";
  auto f = [&](uint64_t v) {
    return micros ? Micros(static_cast<int64_t>(v)) : Duration(static_cast<int64_t>(v));
  };
  return f(p.p50) + "/" + f(p.p99);
}

void PrintEdges(const std::vector<EdgeReport>& edges, FILE* out) {
  size_t w = std::string("caller -> callee").size();
  std::vector<std::string> names;
  for (const EdgeReport& e : edges) {
    names.push_back(Clean(e.caller, 32) + " -> " + Clean(e.callee, 32));
    w = std::max(w, names.back().size());
  }
  fprintf(out, "%-*s  %8s %8s  %-17s %-17s %-17s %-15s %4s %7s %6s\n", static_cast<int>(w),
          "caller -> callee", "req/s", "requests", "total p50/p99", "server p50/p99",
          "network p50/p99", "rtt p50/p99", "hops", "retrans", "errors");
  for (size_t i = 0; i < edges.size(); ++i) {
    const EdgeReport& e = edges[i];
    fprintf(
        out, "%-*s  %8.1f %8llu  %-17s %-17s %-17s %-15s %4s %7llu %6llu\n", static_cast<int>(w),
        names[i].c_str(), e.rate_per_s, static_cast<unsigned long long>(e.requests),
        Pair(e.total, false).c_str(), Pair(e.server, false).c_str(), Pair(e.network, false).c_str(),
        Pair(e.srtt, true).c_str(), Number(e.ip_hops).c_str(),
        static_cast<unsigned long long>(e.retransmits), static_cast<unsigned long long>(e.errors));
  }
  if (edges.empty()) fprintf(out, "(no calls seen yet)\n");
}

void PrintTraces(const json& traces, FILE* out) {
  if (traces.empty()) {
    fprintf(out, "no traces yet\n");
    return;
  }
  fprintf(out, "%-32s  %5s  %9s  %s\n", "trace", "spans", "duration", "root");
  for (const json& t : traces) {
    fprintf(out, "%-32s  %5d  %9s  %s\n", t.value("trace_id", "").c_str(), t.value("spans", 0),
            Duration(t.value("duration_ns", int64_t{0})).c_str(),
            Clean(t.value("root", ""), 80).c_str());
  }
  fprintf(out, "\nhoptrace hops TRACE_ID shows the hops of one.\n");
}

// ---- the command ---------------------------------------------------------------

int Fail(const std::string& message) {
  fprintf(stderr, "hoptrace hops: %s\n", message.c_str());
  return 1;
}

int FromAgent(const HopsOptions& o, const std::atomic<bool>* stop) {
  std::string error;
  if (!o.trace_id.empty()) {
    auto j = FetchJson(o.agent, "/api/hops?trace=" + o.trace_id, &error);
    if (!j) return Fail(error);
    if (o.json) {
      printf("%s\n", j->dump(2).c_str());
      return 0;
    }
    std::vector<Hop> hops;
    for (const json& h : (*j)["hops"]) hops.push_back(HopFromJson(h));
    PrintHops(o.trace_id, hops, stdout);
    return 0;
  }
  if (!o.edges && !o.live) {
    auto j = FetchJson(o.agent, "/api/traces?limit=20", &error);
    if (!j) return Fail(error);
    if (o.json) {
      printf("%s\n", j->dump(2).c_str());
    } else {
      PrintTraces((*j)["traces"], stdout);
    }
    return 0;
  }
  const bool tty = isatty(STDOUT_FILENO) && o.live && !o.json;
  for (int n = 1; !stop->load(); ++n) {
    auto j = FetchJson(o.agent, "/api/edges", &error);
    if (!j) return Fail(error);
    if (o.json) {
      printf("%s\n", j->dump().c_str());
    } else {
      std::vector<EdgeReport> edges;
      for (const json& e : (*j)["edges"]) edges.push_back(EdgeFromJson(e));
      if (tty) printf("\x1b[H\x1b[2J");  // home, clear
      if (o.live) {
        time_t now = time(nullptr);
        char clock[16];
        strftime(clock, sizeof(clock), "%H:%M:%S", localtime(&now));
        printf("hoptrace hops --live   agent %s   %s   (last 10-20 s; Ctrl-C to stop)\n\n",
               o.agent.c_str(), clock);
      }
      PrintEdges(edges, stdout);
    }
    fflush(stdout);
    if (!o.live || (o.count > 0 && n >= o.count)) break;
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(o.interval_s * 1000));
    while (!stop->load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!tty && !o.json) printf("\n");
  }
  return 0;
}

int FromFile(const HopsOptions& o) {
  std::string error;
  auto spans = ReadSpans(o.from_file, &error);
  if (!spans) return Fail(error);
  if (!o.trace_id.empty()) {
    std::vector<HopSpan> mine;
    for (const HopSpan& s : *spans) {
      if (s.trace_id == o.trace_id) mine.push_back(s);
    }
    if (mine.empty()) return Fail("no span of trace " + o.trace_id + " in " + o.from_file);
    std::vector<Hop> hops = BuildHops(mine);
    if (o.json) {
      json list = json::array();
      for (const Hop& h : hops) list.push_back(HopToJson(h));
      printf(
          "%s\n",
          json{{"trace_id", o.trace_id}, {"spans", mine.size()}, {"hops", list}}.dump(2).c_str());
    } else {
      PrintHops(o.trace_id, hops, stdout);
    }
    return 0;
  }
  // Edges over the whole file: one window as long as the file.
  std::map<std::string, std::vector<HopSpan>> traces;
  for (HopSpan& s : *spans) traces[s.trace_id].push_back(std::move(s));
  HopTableOptions options;
  options.window_ns = ~uint64_t{0} / 4;
  options.max_edges = 4096;
  HopTable table(options);
  uint64_t last = 0;
  for (const auto& [id, list] : traces) {
    for (const Hop& h : BuildHops(list)) {
      table.AddHop(h, h.start_unix_ns);
      last = std::max(last, h.start_unix_ns);
    }
  }
  std::vector<EdgeReport> edges = table.Edges(last);
  if (o.json) {
    json list = json::array();
    for (const EdgeReport& e : edges) list.push_back(EdgeToJson(e));
    printf("%s\n", json{{"edges", list}}.dump(2).c_str());
  } else {
    PrintEdges(edges, stdout);
  }
  return 0;
}

}  // namespace

int RunHops(const HopsOptions& options, const std::atomic<bool>* stop) {
  if (options.agent.empty() == options.from_file.empty()) {
    return Fail(
        "say where the spans are: --agent HOST:PORT (a `hoptrace run --metrics-address`) "
        "or --from FILE (JSON lines of `hoptrace run --output jsonl`)");
  }
  if (!options.trace_id.empty() &&
      (options.trace_id.size() != 32 ||
       options.trace_id.find_first_not_of("0123456789abcdef") != std::string::npos)) {
    return Fail("a trace id is 32 lower-case hex digits, got \"" + Clean(options.trace_id) + "\"");
  }
  if (!options.from_file.empty()) {
    if (options.live) return Fail("--live needs --agent: a file does not change");
    return FromFile(options);
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = FromAgent(options, stop);
  curl_global_cleanup();
  return rc;
}

}  // namespace hoptrace
