// Hot path of the HTTP/1.x layer: every captured syscall of a traced
// connection goes through the stitcher, every message head through ParseHead.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "agent/protocols/http1/parse.h"
#include "agent/protocols/http1/stitcher.h"

namespace hoptrace::http1 {
namespace {

// ~400 bytes each, shaped like what browsers, curl and web servers send.
constexpr std::string_view kRequest =
    "GET /api/v2/catalog/items?category=books&page=3&sort=price HTTP/1.1\r\n"
    "Host: catalog.shop.svc.cluster.local:8080\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

constexpr std::string_view kResponseHead =
    "HTTP/1.1 200 OK\r\n"
    "Date: Mon, 27 Jul 2024 12:28:53 GMT\r\n"
    "Server: nginx/1.22.1\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Content-Length: 64\r\n"
    "Cache-Control: private, max-age=0, must-revalidate\r\n"
    "ETag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\r\n"
    "Vary: Accept-Encoding, Origin\r\n"
    "Set-Cookie: session=38afes7a8; HttpOnly; Secure; SameSite=Lax; Path=/\r\n"
    "Strict-Transport-Security: max-age=63072000\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

const std::string kBody(64, 'j');

void ParseOne(benchmark::State& state, MessageType type, std::string_view head) {
  Message msg;
  for (auto _ : state) {
    std::string_view buf = head;
    const ParseState result = ParseHead(type, &buf, &msg);
    benchmark::DoNotOptimize(result);
    benchmark::DoNotOptimize(msg);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * head.size()));
}

void BM_ParseHeadRequest(benchmark::State& state) {
  ParseOne(state, MessageType::kRequest, kRequest);
}
BENCHMARK(BM_ParseHeadRequest);

void BM_ParseHeadResponse(benchmark::State& state) {
  ParseOne(state, MessageType::kResponse, kResponseHead);
}
BENCHMARK(BM_ParseHeadResponse);

// Where bytes stop: keeps the optimizer from dropping the records.
struct SinkListener : Listener {
  void OnRequestHead(const Message& request) override { heads += request.head_bytes; }
  void OnRecord(Record record) override { records += record.outcome == Record::Outcome::kComplete; }
  uint64_t heads = 0;
  uint64_t records = 0;
};

// A keep-alive server connection: each iteration is one request read and one
// response written (head and body in one syscall, as nginx does).
void BM_StitcherKeepAlive(benchmark::State& state) {
  const std::string response = std::string(kResponseHead) + kBody;
  SinkListener listener;
  Stitcher stitcher(Role::kServer, &listener);
  uint64_t ts = 1;
  for (auto _ : state) {
    stitcher.OnData(Direction::kIngress, kRequest, kRequest.size(), ts, ts + 1, 1);
    stitcher.OnData(Direction::kEgress, response, response.size(), ts + 2, ts + 3, 1);
    ts += 4;
  }
  benchmark::DoNotOptimize(listener.records);
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * (kRequest.size() + response.size())));
  state.SetItemsProcessed(static_cast<int64_t>(listener.records));
}
BENCHMARK(BM_StitcherKeepAlive);

// The same exchange arriving in small pieces: exercises head buffering.
void BM_StitcherKeepAliveSplit(benchmark::State& state) {
  const std::string response = std::string(kResponseHead) + kBody;
  const size_t piece = static_cast<size_t>(state.range(0));
  SinkListener listener;
  Stitcher stitcher(Role::kServer, &listener);
  uint64_t ts = 1;
  for (auto _ : state) {
    for (size_t i = 0; i < kRequest.size(); i += piece) {
      const std::string_view part = kRequest.substr(i, piece);
      stitcher.OnData(Direction::kIngress, part, part.size(), ts, ts + 1, 1);
    }
    for (size_t i = 0; i < response.size(); i += piece) {
      const std::string_view part = std::string_view(response).substr(i, piece);
      stitcher.OnData(Direction::kEgress, part, part.size(), ts + 2, ts + 3, 1);
    }
    ts += 4;
  }
  benchmark::DoNotOptimize(listener.records);
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * (kRequest.size() + response.size())));
}
BENCHMARK(BM_StitcherKeepAliveSplit)->Arg(16)->Arg(128);

// A large response whose body is mostly not captured (4096 of each 64 KiB
// syscall): the stitcher only counts.
void BM_StitcherLargeBodyWithGaps(benchmark::State& state) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
  const std::string first = head + std::string(4096 - head.size(), 'b');
  const std::string rest(4096, 'b');
  SinkListener listener;
  Stitcher stitcher(Role::kServer, &listener);
  uint64_t ts = 1;
  for (auto _ : state) {
    stitcher.OnData(Direction::kIngress, kRequest, kRequest.size(), ts, ts + 1, 1);
    stitcher.OnData(Direction::kEgress, first, 65536, ts, ts + 1, 1);
    for (int i = 1; i < 16; ++i) {
      const uint64_t total = i == 15 ? 65536 + head.size() : 65536;
      stitcher.OnData(Direction::kEgress, rest, total, ts, ts + 1, 1);
    }
    ts += 2;
  }
  benchmark::DoNotOptimize(listener.records);
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * (kRequest.size() + 1048576 + head.size())));
}
BENCHMARK(BM_StitcherLargeBodyWithGaps);

}  // namespace
}  // namespace hoptrace::http1
