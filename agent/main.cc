// hoptrace: zero-code HTTP tracing from the socket layer.
//
//   hoptrace run   --pid/--exe/--port/--all [--output tree|jsonl] ...
//   hoptrace check
#include <signal.h>

#include <atomic>
#include <cstdio>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/agent_runner.h"
#include "agent/loader/preflight.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

void SetUpLogging(const std::string& level) {
  // Logs go to stderr: stdout carries spans.
  auto logger = spdlog::stderr_color_mt("hoptrace");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hoptrace: zero-code distributed tracing from the socket layer"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.set_version_flag("--version", std::string("hoptrace ") + HOPTRACE_VERSION);

  hoptrace::AgentOptions opts;
  std::string output = "tree";
  int stats_seconds = 0, duration_seconds = 0, ringbuf_mb = 8;
  auto* run = app.add_subcommand("run", "trace HTTP of the selected processes");
  run->add_option("--pid", opts.loader.pids, "trace this process and its children (repeatable)");
  run->add_option("--exe", opts.exe_names,
                  "trace processes whose executable, comm or service name is NAME, including "
                  "ones started later (repeatable)");
  run->add_option("--port", opts.loader.ports,
                  "trace TCP connections to or from this port, whatever the process (repeatable)");
  run->add_flag("--all", opts.loader.trace_all, "trace every process on the host");
  run->add_option("--output", output, "tree (readable, default) or jsonl (every field)")
      ->check(CLI::IsMember({"tree", "jsonl"}));
  run->add_option("--output-file", opts.output_file, "write spans here instead of stdout");
  run->add_option("--payload-bytes", opts.loader.max_payload,
                  "bytes captured per read/write (headers must fit)")
      ->check(CLI::Range(256, 8192));
  run->add_option("--ringbuf-mb", ringbuf_mb, "kernel->agent ring buffer size")
      ->check(CLI::Range(1, 1024));
  run->add_flag("!--no-redact-query", opts.redact_query, "export query strings unredacted");
  run->add_option("--stats-interval", stats_seconds, "log counters every N seconds (0: at exit)");
  run->add_option("--duration", duration_seconds, "stop after N seconds (0: until Ctrl-C)");

  auto* check = app.add_subcommand("check", "say which kernel features work here");

  CLI11_PARSE(app, argc, argv);
  SetUpLogging(log_level);

  if (check->parsed()) {
    return hoptrace::PrintPreflight(hoptrace::RunPreflight(), stdout) ? 0 : 1;
  }

  opts.output = output == "jsonl" ? hoptrace::AgentOptions::Output::kJsonl
                                  : hoptrace::AgentOptions::Output::kTree;
  opts.loader.ringbuf_bytes = static_cast<uint32_t>(ringbuf_mb) << 20;
  opts.stats_interval = std::chrono::seconds(stats_seconds);
  if (duration_seconds > 0) opts.duration = std::chrono::seconds(duration_seconds);

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  try {
    return hoptrace::RunAgent(opts, &g_stop);
  } catch (const hoptrace::StartupError& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
}
