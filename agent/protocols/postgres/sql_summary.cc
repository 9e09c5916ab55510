// SQL lexical structure per PostgreSQL's documentation, "Lexical Structure"
// (sql-syntax-lexical): identifiers, quoted identifiers, string constants
// (standard, E'' escape, B''/X'' bit strings, U&'' unicode, $tag$ dollar
// quoting), numeric constants, operators, and "--" / nested "/* */" comments.
#include "agent/protocols/postgres/sql_summary.h"

#include <cctype>
#include <vector>

namespace hoptrace::postgres {
namespace {

constexpr size_t kMaxName = 128;   // longest operation / collection kept
constexpr size_t kMaxTokens = 64;  // tokens looked at to find the collection

bool IsIdentStart(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalpha(u) || c == '_' || u >= 0x80;
}
bool IsIdentChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || c == '$' || u >= 0x80;
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// End of a quoted run opened at sql[i] == quote; `backslash`: E'' escapes.
// sql.size() when unterminated.
size_t QuotedEnd(std::string_view sql, size_t i, char quote, bool backslash) {
  for (size_t j = i + 1; j < sql.size(); ++j) {
    if (backslash && sql[j] == '\\') {
      ++j;
    } else if (sql[j] == quote) {
      if (j + 1 < sql.size() && sql[j + 1] == quote) {
        ++j;  // '' (or "") stands for the quote itself
      } else {
        return j + 1;
      }
    }
  }
  return sql.size();
}

// Length of a "$tag$" opening at i (tag empty or an identifier without '$'), or 0.
size_t DollarTag(std::string_view sql, size_t i) {
  size_t j = i + 1;
  if (j < sql.size() && IsIdentStart(sql[j])) {
    while (j < sql.size() && IsIdentChar(sql[j]) && sql[j] != '$') ++j;
  }
  return j < sql.size() && sql[j] == '$' ? j + 1 - i : 0;
}

enum class Kind { kWord, kQuotedName, kOther };

struct Token {
  size_t at = 0, size = 0;  // in the sanitized text
  Kind kind = Kind::kOther;
};

// One pass over the statement: writes the sanitized text and remembers where
// its first tokens are.
class Sanitizer {
 public:
  Sanitizer(std::string_view sql, size_t max_text) : sql_(sql), max_(max_text) {}

  void Run() {
    size_t i = 0;
    while (i < sql_.size() && !truncated_) i = Next(i);
  }

  std::string text;
  std::vector<Token> tokens;
  bool truncated_ = false;

 private:
  // Consumes the token at i; returns where the next one starts.
  size_t Next(size_t i) {
    const char c = sql_[i];
    if (IsSpace(c)) {
      space_ = true;
      return i + 1;
    }
    if (c == '-' && At(i + 1) == '-') {
      const size_t nl = sql_.find('\n', i);
      space_ = true;
      return nl == std::string_view::npos ? sql_.size() : nl + 1;
    }
    if (c == '/' && At(i + 1) == '*') return SkipBlockComment(i);
    if (c == '\'') return Literal(QuotedEnd(sql_, i, '\'', false));
    if (c == '"') return Emit(i, QuotedEnd(sql_, i, '"', false), Kind::kQuotedName);
    if (c == '$') {
      if (IsDigit(At(i + 1))) {  // $1 is a parameter placeholder, not a value
        size_t j = i + 1;
        while (j < sql_.size() && IsDigit(sql_[j])) ++j;
        return Emit(i, j, Kind::kOther);
      }
      if (const size_t tag = DollarTag(sql_, i); tag > 0) {
        const size_t close = sql_.find(sql_.substr(i, tag), i + tag);
        return Literal(close == std::string_view::npos ? sql_.size() : close + tag);
      }
    }
    if (IsDigit(c) || (c == '.' && IsDigit(At(i + 1)))) return Literal(NumberEnd(i));
    if (IsIdentStart(c)) {
      size_t j = i;
      while (j < sql_.size() && IsIdentChar(sql_[j])) ++j;
      // E'..', B'..', X'..', N'..' and U&'..' are one constant with their prefix.
      if (j == i + 1 && At(j) == '\'') {
        const char p = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (p == 'E' || p == 'B' || p == 'X' || p == 'N') {
          return Literal(QuotedEnd(sql_, j, '\'', p == 'E'));
        }
      }
      if (j == i + 1 && (c == 'u' || c == 'U') && At(j) == '&' && At(j + 1) == '\'') {
        return Literal(QuotedEnd(sql_, j + 1, '\'', false));
      }
      return Emit(i, j, Kind::kWord);
    }
    return Emit(i, i + 1, Kind::kOther);  // an operator or punctuation character
  }

  char At(size_t i) const { return i < sql_.size() ? sql_[i] : '\0'; }

  // 42, 4.2, .5, 1e-3, 0x1F, 1_000 (PostgreSQL 16): digits, letters, '_', '.'
  // and a sign right after an exponent 'e'.
  size_t NumberEnd(size_t i) const {
    const bool hex = sql_[i] == '0' && (At(i + 1) == 'x' || At(i + 1) == 'X');
    size_t j = i;
    while (j < sql_.size()) {
      const char c = sql_[j];
      const bool sign = (c == '+' || c == '-') && !hex && j > i &&
                        (sql_[j - 1] == 'e' || sql_[j - 1] == 'E');
      if (c == '$' || !(IsIdentChar(c) || c == '.' || sign)) break;
      if (c == '.' && At(j + 1) == '.') break;
      ++j;
    }
    return j;
  }

  // Block comments nest in PostgreSQL ("/* a /* b */ c */").
  size_t SkipBlockComment(size_t i) {
    int depth = 0;
    size_t j = i;
    while (j + 1 < sql_.size()) {
      if (sql_[j] == '/' && sql_[j + 1] == '*') {
        ++depth;
        j += 2;
      } else if (sql_[j] == '*' && sql_[j + 1] == '/') {
        j += 2;
        if (--depth == 0) break;
      } else {
        ++j;
      }
    }
    space_ = true;
    return depth == 0 ? j : sql_.size();
  }

  size_t Literal(size_t end) {
    Append("?", Kind::kOther);
    return end;
  }

  size_t Emit(size_t begin, size_t end, Kind kind) {
    Append(sql_.substr(begin, end - begin), kind);
    return end;
  }

  void Append(std::string_view s, Kind kind) {
    const bool space = space_ && !text.empty();
    space_ = false;
    if (text.size() + space + s.size() > max_) {
      truncated_ = true;
      return;
    }
    if (space) text.push_back(' ');
    if (tokens.size() < kMaxTokens) tokens.push_back({text.size(), s.size(), kind});
    text.append(s);
  }

  std::string_view sql_;
  size_t max_;
  bool space_ = false;
};

// Operation and first collection from the first tokens of the sanitized text.
class Summarizer {
 public:
  Summarizer(const std::string& text, const std::vector<Token>& tokens)
      : text_(text), tokens_(tokens) {}

  std::string Operation() const {
    size_t k = 0;
    while (k < tokens_.size() && Text(k) == "(") ++k;  // "(SELECT ...) UNION ..."
    if (k >= tokens_.size() || tokens_[k].kind != Kind::kWord) return {};
    return Upper(Text(k)).substr(0, kMaxName);
  }

  // The first table the statement names, by its operation (PostgreSQL's SQL
  // command reference): SELECT/DELETE ... FROM t, INSERT INTO t, UPDATE t,
  // CREATE/DROP/ALTER/TRUNCATE [TABLE] [IF [NOT] EXISTS] t, COPY t.
  std::string Collection(std::string_view op) const {
    size_t k = 0;
    if (op == "SELECT" || op == "DELETE" || op == "WITH") {
      k = After("FROM", 1);
    } else if (op == "INSERT") {
      k = After("INTO", 1);
    } else if (op == "UPDATE" || op == "COPY" || op == "TRUNCATE") {
      k = First(op) + 1;
      if (IsWord(k, "TABLE")) ++k;
    } else if (op == "CREATE" || op == "DROP" || op == "ALTER") {
      k = After("TABLE", 1);
      if (IsWord(k, "IF")) k += IsWord(k + 1, "NOT") ? 3 : 2;  // IF [NOT] EXISTS
    } else {
      return {};
    }
    if (IsWord(k, "ONLY")) ++k;
    return Name(k);
  }

 private:
  std::string_view Text(size_t k) const {
    return std::string_view(text_).substr(tokens_[k].at, tokens_[k].size);
  }
  bool IsWord(size_t k, std::string_view upper) const {
    return k < tokens_.size() && tokens_[k].kind == Kind::kWord && Upper(Text(k)) == upper;
  }
  size_t First(std::string_view upper) const {
    for (size_t k = 0; k < tokens_.size(); ++k) {
      if (IsWord(k, upper)) return k;
    }
    return tokens_.size();
  }
  size_t After(std::string_view upper, size_t skip) const {
    const size_t k = First(upper);
    return k < tokens_.size() ? k + skip : tokens_.size();
  }
  // A name, possibly qualified: a, s.t, "S"."T" (dots with no space around).
  std::string Name(size_t k) const {
    std::string name;
    while (k < tokens_.size() && tokens_[k].kind != Kind::kOther) {
      name.append(Text(k));
      const bool dotted = k + 2 < tokens_.size() && Text(k + 1) == "." &&
                          tokens_[k + 1].at == tokens_[k].at + tokens_[k].size &&
                          tokens_[k + 2].at == tokens_[k + 1].at + 1;
      if (!dotted) break;
      name.push_back('.');
      k += 2;
    }
    return name.size() <= kMaxName ? name : std::string();
  }

  const std::string& text_;
  const std::vector<Token>& tokens_;
};

}  // namespace

SqlSummary SummarizeSql(std::string_view sql, size_t max_text) {
  Sanitizer s(sql, max_text);
  s.Run();
  SqlSummary out;
  Summarizer summary(s.text, s.tokens);
  out.operation = summary.Operation();
  out.collection = summary.Collection(out.operation);
  out.text = std::move(s.text);
  out.truncated = s.truncated_;
  return out;
}

}  // namespace hoptrace::postgres
