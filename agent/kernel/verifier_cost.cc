#include "agent/kernel/verifier_cost.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <regex>

#include <spdlog/spdlog.h>

namespace hoptrace {
namespace {

constexpr uint32_t kLogStats = 4;  // BPF_LOG_STATS: the summary lines only
// The statistics are three lines, but the kernel counts more than it keeps
// (6.18: ht_sk_msg overflows 64 KiB at BPF_LOG_STATS).
constexpr size_t kLogBytes = 4 * 1024 * 1024;

// The last non-empty line of a log: the verifier's reason on failure.
std::string LastLine(const std::string& log) {
  size_t end = log.find_last_not_of("\n \0", std::string::npos, 3);
  if (end == std::string::npos) return "";
  // "processed N insns ..." follows the reason: skip the statistics lines.
  std::string rest = log.substr(0, end + 1);
  while (!rest.empty()) {
    size_t start = rest.rfind('\n');
    std::string line = start == std::string::npos ? rest : rest.substr(start + 1);
    if (line.rfind("processed ", 0) != 0 && line.rfind("verification time", 0) != 0 &&
        line.rfind("stack depth", 0) != 0 && !line.empty()) {
      return line;
    }
    if (start == std::string::npos) break;
    rest.resize(start);
  }
  return "";
}

}  // namespace

struct CostRecorder::Slot {
  bpf_program* prog = nullptr;
  std::string buf;
};

CostRecorder::CostRecorder(bpf_object* obj, bool with_log) : obj_(obj), with_log_(with_log) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj_) {
    if (!bpf_program__autoload(prog)) continue;
    auto slot = std::make_unique<Slot>();
    slot->prog = prog;
    if (with_log_) {
      slot->buf.assign(kLogBytes, '\0');
      bpf_program__set_log_buf(prog, slot->buf.data(), slot->buf.size());
      bpf_program__set_log_level(prog, kLogStats);
    }
    slots_.push_back(std::move(slot));
  }
}

CostRecorder::~CostRecorder() {
  // The buffers go with us: libbpf must not write into them later.
  if (with_log_) {
    for (auto& s : slots_) bpf_program__set_log_buf(s->prog, nullptr, 0);
  }
}

int64_t ProcessedInsnsFromLog(const std::string& log) {
  static const std::regex re(R"(processed (\d+) insns)", std::regex::icase);
  int64_t out = -1;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
       ++it) {
    out = std::stoll((*it)[1]);
  }
  return out;
}

std::vector<ProgramCost> CostRecorder::Costs(int load_err) const {
  std::vector<ProgramCost> out;
  for (const auto& s : slots_) {
    ProgramCost c;
    c.program = bpf_program__name(s->prog);
    const std::string log(s->buf.empty() ? "" : s->buf.c_str());
    const int fd = bpf_program__fd(s->prog);
    c.loaded = fd >= 0;
    if (c.loaded) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
          len >= offsetof(bpf_prog_info, verified_insns) + sizeof(info.verified_insns) &&
          info.verified_insns != 0) {
        c.insns = info.verified_insns;
      }
    } else {
      c.error = LastLine(log);
      spdlog::debug("verifier log of {} (end): {}", c.program,
                    log.size() > 4000 ? log.substr(log.size() - 4000) : log);
      // "BPF program is too large. Processed 1000001 insn"
      static const std::regex big(R"(Processed (\d+) insn)");
      std::smatch m;
      if (std::regex_search(log, m, big)) c.insns = std::stoll(m[1]);
    }
    if (c.insns < 0) c.insns = ProcessedInsnsFromLog(log);
    // Verified, but the statistics did not fit the log: the program is fine
    // (only one program loads when the matrix asks with a log).
    if (!c.loaded && load_err == -ENOSPC && slots_.size() == 1 && c.insns >= 0 &&
        log.find("processed ") != std::string::npos && c.insns < 1'000'000) {
      c.loaded = true;
      c.error.clear();
    }
    if (!c.loaded && c.error.empty()) c.error = strerror(load_err < 0 ? -load_err : EINVAL);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace hoptrace
