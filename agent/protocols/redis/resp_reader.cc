#include "agent/protocols/redis/resp_reader.h"

#include <algorithm>
#include <charconv>

namespace hoptrace::redis {
namespace {

bool ParseLength(std::string_view s, int64_t* n) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *n);
  return ec == std::errc() && p == s.data() + s.size() && *n >= -1;
}

bool IsAggregate(char t) { return t == '*' || t == '~' || t == '>' || t == '%' || t == '|'; }
bool IsBulk(char t) { return t == '$' || t == '=' || t == '!'; }
bool IsSimple(char t) {
  return t == '+' || t == '-' || t == ':' || t == '_' || t == '#' || t == ',' || t == '(';
}

std::string FirstWord(std::string_view s) {
  s = s.substr(0, std::min(s.find(' '), kKeptArgBytes));
  return std::string(s);
}

}  // namespace

bool RespReader::idle() const { return !started_; }

void RespReader::Reset() {
  in_bulk_ = false;
  bulk_remaining_ = 0;
  bulk_keep_ = nullptr;
  line_.clear();
  started_ = false;
  stack_.clear();
  ready_ = false;
  inline_ = false;
}

RespReader::Result RespReader::Feed(std::string_view* data) {
  if (ready_) {  // the previous value was handed out: start the next
    ready_ = false;
    value_ = RespValue{};
  }
  while (!data->empty()) {
    if (in_bulk_) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(bulk_remaining_, data->size()));
      if (bulk_keep_ != nullptr && bulk_keep_->size() < bulk_kept_limit_) {
        bulk_keep_->append(data->substr(0, std::min(n, bulk_kept_limit_ - bulk_keep_->size())));
      }
      data->remove_prefix(n);
      bulk_remaining_ -= n;
      if (bulk_remaining_ == 0) {
        in_bulk_ = false;
        bulk_keep_ = nullptr;
        CompleteElement();
        if (ready_) return Result::kValue;
      }
      continue;
    }
    if (!started_) {
      started_ = true;
      value_ = RespValue{};
      value_.type = (*data)[0];
      inline_ = requests_ && !IsAggregate(value_.type);
      if (requests_ && value_.type != '*' && !inline_) return Result::kInvalid;
    }
    const size_t nl = data->find('\n');
    const std::string_view part = data->substr(0, nl == std::string_view::npos ? data->size() : nl);
    if (line_.size() + part.size() > kMaxLine) return Result::kInvalid;
    line_.append(part);
    if (nl == std::string_view::npos) {
      *data = {};
      return Result::kNeedMore;
    }
    data->remove_prefix(nl + 1);
    std::string line;
    line.swap(line_);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!OnLine(line)) return Result::kInvalid;
    if (ready_) return Result::kValue;
  }
  return Result::kNeedMore;
}

bool RespReader::Skip(uint64_t n) {
  if (!in_bulk_ || n > bulk_remaining_) return false;
  bulk_remaining_ -= n;
  if (bulk_remaining_ == 0) {
    in_bulk_ = false;
    bulk_keep_ = nullptr;
    CompleteElement();
  }
  return true;
}

bool RespReader::OnLine(std::string_view line) {
  if (inline_) {  // "SET k v": words separated by spaces (no quoting is kept)
    size_t pos = 0;
    while (pos < line.size()) {
      pos = line.find_first_not_of(' ', pos);
      if (pos == std::string_view::npos) break;
      const size_t end = std::min(line.find(' ', pos), line.size());
      if (value_.args.size() < kKeptArgs) {
        value_.args.emplace_back(line.substr(pos, std::min(end - pos, kKeptArgBytes)));
      }
      ++value_.argc;
      pos = end;
    }
    if (value_.argc == 0) {  // an empty line between commands
      started_ = false;
      return true;
    }
    started_ = false;
    ready_ = true;
    return true;
  }
  if (line.empty()) return false;
  const char type = line[0];
  const std::string_view rest = line.substr(1);
  if (IsAggregate(type)) {
    int64_t n = 0;
    if (!ParseLength(rest, &n)) return false;
    return OnAggregate(type, n);
  }
  if (IsBulk(type)) {
    int64_t n = 0;
    if (!ParseLength(rest, &n)) return false;
    if (n == -1) {
      CompleteElement();
      return true;
    }
    in_bulk_ = true;
    bulk_remaining_ = static_cast<uint64_t>(n) + 2;
    bulk_keep_ = nullptr;
    // Keep the first bulk strings of a top-level command array, and the
    // start of a top-level blob error.
    if (stack_.size() == 1 && stack_[0].type == '*' && value_.args.size() < kKeptArgs &&
        requests_) {
      bulk_keep_ = &value_.args.emplace_back();
      bulk_kept_limit_ = std::min<size_t>(kKeptArgBytes, static_cast<size_t>(n));
    } else if (stack_.empty() && type == '!') {
      value_.error = true;
      bulk_keep_ = &value_.error_prefix;
      bulk_kept_limit_ = std::min<size_t>(kKeptArgBytes, static_cast<size_t>(n));
    }
    if (requests_ && (stack_.size() != 1 || type != '$')) return false;  // commands: bulk strings
    return true;
  }
  if (!IsSimple(type) || requests_) return false;
  if (stack_.empty() && type == '-') {
    value_.error = true;
    value_.error_prefix = FirstWord(rest);
  }
  CompleteElement();
  return true;
}

bool RespReader::OnAggregate(char type, int64_t n) {
  if (requests_ && !stack_.empty()) return false;  // commands are flat arrays
  if (stack_.empty()) {
    value_.push = type == '>';
    value_.attribute = type == '|';
    if (type == '*' && n > 0) value_.argc = static_cast<size_t>(n);
  }
  if (n <= 0) {  // empty or null
    CompleteElement();
    return true;
  }
  if (stack_.size() >= kMaxDepth) return false;
  stack_.push_back({type, (type == '%' || type == '|') ? 2 * n : n});
  return true;
}

void RespReader::CompleteElement() {
  while (!stack_.empty()) {
    if (--stack_.back().remaining > 0) return;
    stack_.pop_back();
  }
  started_ = false;
  ready_ = true;
  if (!value_.error_prefix.empty() && value_.type == '!') {
    value_.error_prefix = FirstWord(value_.error_prefix);
  }
}

bool LooksLikeRespStart(bool requests, std::string_view b) {
  if (b.empty()) return false;
  const char type = b[0];
  if (requests && type != '*') return false;
  const size_t nl = b.find("\r\n");
  if (nl == std::string_view::npos) return false;
  const std::string_view rest = b.substr(1, nl - 1);
  int64_t n = 0;
  if (IsAggregate(type) || IsBulk(type)) {
    if (!ParseLength(rest, &n)) return false;
    // As the kernel checks (bpf/db_protocols.bpf.h): a count of 1 to 5
    // digits, then '$' unless the bytes end first.
    if (requests) {
      return n > 0 && rest[0] != '0' && rest.size() <= 5 &&
             (b.size() == nl + 2 || b[nl + 2] == '$');
    }
    return true;
  }
  if (type == ':') return ParseLength(rest, &n) || (!rest.empty() && rest[0] == '-');
  if (type == '_') return rest.empty();
  if (type == '#') return rest == "t" || rest == "f";
  if (type == '+' || type == '-' || type == ',' || type == '(') {
    return std::all_of(rest.begin(), rest.end(),
                       [](char c) { return c >= 0x20 || c == '\t'; });
  }
  return false;
}

}  // namespace hoptrace::redis
