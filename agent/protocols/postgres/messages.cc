#include "agent/protocols/postgres/messages.h"

#include <charconv>
#include <cstring>

namespace hoptrace::postgres {
namespace {

uint32_t ReadU32(std::string_view b) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

// Message types per side ("Message Formats"). A length of 0 means "any";
// otherwise the only length the type can have.
struct TypeRule {
  char type;
  uint32_t exact_length;
};

constexpr TypeRule kFrontendTypes[] = {
    {'Q', 0}, {'P', 0}, {'B', 0}, {'E', 0}, {'D', 0}, {'C', 0}, {'S', 4}, {'H', 4},
    {'X', 4}, {'F', 0}, {'p', 0}, {'d', 0}, {'c', 4}, {'f', 0},
};
constexpr TypeRule kBackendTypes[] = {
    {'R', 0}, {'S', 0}, {'K', 0}, {'Z', 5}, {'T', 0}, {'D', 0}, {'C', 0}, {'E', 0},
    {'N', 0}, {'1', 4}, {'2', 4}, {'3', 4}, {'n', 4}, {'s', 4}, {'t', 0}, {'I', 4},
    {'A', 0}, {'G', 0}, {'H', 0}, {'W', 0}, {'d', 0}, {'c', 4}, {'V', 0}, {'v', 0},
};

// Whether `side` sends `type`, and with this length (0: any length).
template <size_t N>
bool Allowed(const TypeRule (&rules)[N], char type, uint32_t length) {
  for (const TypeRule& r : rules) {
    if (r.type == type) return length == 0 || r.exact_length == 0 || r.exact_length == length;
  }
  return false;
}

bool Sends(Side side, char type, uint32_t length) {
  return side == Side::kFrontend ? Allowed(kFrontendTypes, type, length)
                                 : Allowed(kBackendTypes, type, length);
}

}  // namespace

StartupHeader ParseStartupHeader(std::string_view b) {
  if (b.size() < kStartupHeaderSize) return {};
  const uint32_t length = ReadU32(b);
  const uint32_t code = ReadU32(b.substr(4));
  StartupHeader h{StartupKind::kNone, length};
  if (code == kSslRequestCode && length == 8) h.kind = StartupKind::kSsl;
  if (code == kGssEncRequestCode && length == 8) h.kind = StartupKind::kGssEnc;
  if (code == kCancelRequestCode && length == 16) h.kind = StartupKind::kCancel;
  // "user" is required, so a real StartupMessage has at least one pair.
  if (code == kProtocolV3 && length > 9 && length <= kMaxStartupLength) {
    h.kind = StartupKind::kStartup;
  }
  return h;
}

std::optional<Header> ParseHeader(Side side, std::string_view b) {
  if (b.size() < kHeaderSize) return std::nullopt;
  Header h{b[0], ReadU32(b.substr(1))};
  if (h.length < 4 || h.length > kMaxMessageLength) return std::nullopt;
  if (!Sends(side, h.type, h.length)) return std::nullopt;
  // ReadyForQuery's status: idle, in a transaction block, in a failed one.
  if (h.type == 'Z' && side == Side::kBackend && b.size() > kHeaderSize) {
    const char status = b[kHeaderSize];
    if (status != 'I' && status != 'T' && status != 'E') return std::nullopt;
  }
  return h;
}

bool LooksLikeMessages(Side side, std::string_view b, int max_headers) {
  if (b.size() < kHeaderSize) return false;
  for (int i = 0; b.size() >= kHeaderSize; ++i) {
    if (i == max_headers) return true;
    auto h = ParseHeader(side, b);
    if (!h) return false;
    const uint64_t total = uint64_t{h->length} + 1;
    if (total >= b.size()) return true;
    b.remove_prefix(static_cast<size_t>(total));
  }
  // The first bytes of a next header: its type at least must be one.
  return b.empty() || Sends(side, b[0], 0);
}

std::optional<Side> SideOfType(char type) {
  const bool frontend = Sends(Side::kFrontend, type, 0);
  const bool backend = Sends(Side::kBackend, type, 0);
  if (frontend == backend) return std::nullopt;
  return frontend ? Side::kFrontend : Side::kBackend;
}

bool ReadCString(std::string_view* b, std::string_view* out) {
  const size_t nul = b->find('\0');
  if (nul == std::string_view::npos) return false;
  *out = b->substr(0, nul);
  b->remove_prefix(nul + 1);
  return true;
}

StartupParams ParseStartupParams(std::string_view body) {
  StartupParams p;
  std::string_view user;
  std::string_view name, value;
  while (ReadCString(&body, &name) && !name.empty() && ReadCString(&body, &value)) {
    if (name == "database") p.database = std::string(value);
    if (name == "user") user = value;
  }
  if (p.database.empty()) p.database = std::string(user);
  return p;
}

std::string ParseSqlState(std::string_view body) {
  std::string_view value;
  while (!body.empty() && body.front() != '\0') {
    const char code = body.front();
    body.remove_prefix(1);
    if (!ReadCString(&body, &value)) return {};
    // SQLSTATE is five characters of [0-9A-Z] (Appendix A, Error Codes).
    if (code == 'C' && value.size() == 5) {
      for (char c : value) {
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))) return {};
      }
      return std::string(value);
    }
  }
  return {};
}

int64_t ReturnedRows(std::string_view body) {
  std::string_view tag;
  if (!ReadCString(&body, &tag)) tag = body;
  if (tag.substr(0, 7) != "SELECT " && tag.substr(0, 6) != "FETCH ") return -1;
  const size_t space = tag.rfind(' ');
  if (space == std::string_view::npos) return -1;
  const std::string_view digits = tag.substr(space + 1);
  int64_t rows = -1;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), rows);
  return ec == std::errc() && p == digits.data() + digits.size() ? rows : -1;
}

}  // namespace hoptrace::postgres
