// The kernel's W3C Trace Context checks (bpf/w3c.bpf.h, run by the capture
// programs on every request head) must agree with the agent's
// (agent/trace_context.cc, which the W3C suite cases in trace_context_test.cc
// pin): the kernel decides what goes on the wire, the agent what the spans
// say. The BPF header is compiled here as plain C++ (bpf_loop becomes a
// loop) and both are fed the same values: hand-picked edge cases and a
// deterministic stream of mutations of valid ones.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "agent/trace/trace_context.h"

// What w3c.bpf.h needs from the BPF environment.
#include <linux/types.h>
#undef __always_inline
#define __always_inline inline
template <typename Ctx>
static long bpf_loop(__u32 n, long (*fn)(__u64, Ctx*), Ctx* ctx, __u64) {
  for (__u32 i = 0; i < n; ++i) {
    if (fn(i, ctx)) return i + 1;
  }
  return n;
}
#include "w3c.bpf.h"

namespace hoptrace {
namespace {

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kParent = "00f067aa0ba902b7";

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The kernel's view of a traceparent field value: OWS trimmed, the first
// HT_TP_KEEP characters kept, the length counted.
bool KernelTraceparent(std::string_view value, TraceContext* out) {
  std::string_view v = TrimOws(value);
  char kept[HT_TP_KEEP] = {};
  memcpy(kept, v.data(), std::min<size_t>(v.size(), HT_TP_KEEP));
  uint8_t trace[16], parent[8], flags = 0;
  if (!ht_parse_traceparent(kept, static_cast<uint32_t>(v.size()), trace, parent, &flags)) {
    return false;
  }
  memcpy(out->trace_id.bytes.data(), trace, 16);
  memcpy(out->parent_id.bytes.data(), parent, 8);
  out->flags = flags;
  return true;
}

bool KernelTracestate(std::string_view value) {
  std::string_view v = TrimOws(value);
  if (v.size() > HT_TRACESTATE_MAX) return false;  // the kernel drops it whole
  std::vector<char> buf(HT_TRACESTATE_MAX, 0);
  memcpy(buf.data(), v.data(), v.size());
  ht_ts_check k{};
  return ht_tracestate_valid(&k, buf.data(), static_cast<uint32_t>(v.size()));
}

void ExpectSameTraceparent(std::string_view value) {
  TraceContext kernel;
  const bool kernel_ok = KernelTraceparent(value, &kernel);
  auto agent = ParseTraceparent(value);
  ASSERT_EQ(kernel_ok, agent.has_value()) << "traceparent \"" << value << "\"";
  if (agent) {
    EXPECT_EQ(kernel.trace_id, agent->trace_id) << value;
    EXPECT_EQ(kernel.parent_id, agent->parent_id) << value;
    EXPECT_EQ(kernel.flags, agent->flags) << value;
  }
}

void ExpectSameTracestate(std::string_view value) {
  const bool agent =
      TrimOws(value).size() <= HT_TRACESTATE_MAX && IsValidTracestate(TrimOws(value));
  ASSERT_EQ(KernelTracestate(value), agent) << "tracestate \"" << value << "\"";
}

std::string Tp(std::string_view version, std::string_view trace, std::string_view parent,
               std::string_view flags) {
  return std::string(version) + "-" + std::string(trace) + "-" + std::string(parent) + "-" +
         std::string(flags);
}

TEST(W3cKernelParity, TraceparentEdgeCases) {
  const std::string good = Tp("00", kTrace, kParent, "01");
  for (const std::string& v : std::vector<std::string>{
           good,
           " " + good + "\t",
           Tp("00", kTrace, kParent, "00"),
           Tp("00", kTrace, kParent, "ff"),
           Tp("01", kTrace, kParent, "03"),
           Tp("cc", kTrace, kParent, "09") + "-what-the-future",
           Tp("cc", kTrace, kParent, "09") + "what",
           Tp("ff", kTrace, kParent, "01"),
           Tp("0", kTrace, kParent, "01"),
           Tp("000", kTrace, kParent, "01"),
           Tp("00", std::string(32, '0'), kParent, "01"),
           Tp("00", kTrace, std::string(16, '0'), "01"),
           Tp("00", "00000000000000000000000000000001", "0000000000000001", "01"),
           Tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736", kParent, "01"),
           Tp("00", kTrace, "00F067AA0BA902B7", "01"),
           Tp("00", kTrace, kParent, "0A"),
           Tp("00", kTrace, kParent, "01") + "-",
           Tp("00", kTrace, kParent, "1"),
           good.substr(0, 54),
           good + "0",
           "00_" + good.substr(3),
           good.substr(0, 35) + "_" + good.substr(36),
           "",
           "-",
           "00",
           "\v" + good,
           good + " x",
       }) {
    ExpectSameTraceparent(v);
  }
}

TEST(W3cKernelParity, TracestateEdgeCases) {
  std::string many;
  for (int i = 0; i < 32; ++i) many += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  for (const std::string& v : std::vector<std::string>{
           std::string("a=1"),
           std::string("vendor=abc,other=1"),
           std::string(" a=1 ,\tb=2 "),
           std::string(""),
           std::string(","),
           std::string(" , ,"),
           std::string("a=1,,b=2"),
           std::string("a=1,a=2"),
           std::string("A=1"),
           std::string("1a=1"),
           std::string("a1_-*/=x"),
           std::string("t@s=1"),
           std::string("1t@s=1"),
           std::string("t@1s=1"),
           std::string("t@=1"),
           std::string("@s=1"),
           std::string("t@s@x=1"),
           std::string("a="),
           std::string("a= "),
           std::string("a= b"),
           std::string("a=b c"),
           std::string("a=b\tc"),
           std::string("a=b=c"),
           std::string("a=b,c"),
           std::string("a"),
           std::string("a =1"),
           std::string("a=\x7f"),
           std::string("a=~!"),
           many,
           many + ",k32=v",
           std::string(256, 'a') + "=1",
           std::string(257, 'a') + "=1",
           "a=" + std::string(256, 'v'),
           "a=" + std::string(257, 'v'),
           std::string(241, 't') + "@" + std::string(14, 's') + "=1",
           std::string(242, 't') + "@s=1",
           "t@" + std::string(15, 's') + "=1",
       }) {
    ExpectSameTracestate(v);
  }
}

// Mutations of valid values: change, insert or delete a few characters,
// drawn from the characters that matter to the grammars.
std::string Mutate(std::string s, std::mt19937_64& rng) {
  static constexpr std::string_view kAlphabet = "0123456789abcdefABCDEFxyz-_*/@=, \t~\x7f";
  std::uniform_int_distribution<int> ops(1, 3), op(0, 2);
  const int n = ops(rng);
  for (int i = 0; i < n; ++i) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    const char c = kAlphabet[rng() % kAlphabet.size()];
    switch (op(rng)) {
      case 0:
        if (pos < s.size()) s[pos] = c;
        break;
      case 1:
        s.insert(s.begin() + pos, c);
        break;
      default:
        if (pos < s.size()) s.erase(pos, 1);
        break;
    }
  }
  return s;
}

TEST(W3cKernelParity, MutatedTraceparentsAgree) {
  std::mt19937_64 rng(20261122);
  const std::vector<std::string> seeds = {Tp("00", kTrace, kParent, "01"),
                                          Tp("42", kTrace, kParent, "01") + "-ext"};
  for (int i = 0; i < 200000; ++i) {
    ExpectSameTraceparent(Mutate(seeds[i % seeds.size()], rng));
    if (HasFatalFailure()) return;
  }
}

TEST(W3cKernelParity, MutatedTracestatesAgree) {
  std::mt19937_64 rng(4);
  const std::vector<std::string> seeds = {"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
                                          "t@sys=1, a-b_c*/d=v a l", "a=1,,b=2", "k=v"};
  for (int i = 0; i < 200000; ++i) {
    ExpectSameTracestate(Mutate(seeds[i % seeds.size()], rng));
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace hoptrace
