#include "uprobes/probe_spec.h"

#include <cctype>

namespace hoptrace::uprobes {

std::optional<ProbeSpec> ParseProbeSpec(std::string_view text, std::string* error) {
  size_t colon = std::string_view::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ':') continue;
    if (i + 1 < text.size() && text[i + 1] == ':') {
      ++i;  // "::" belongs to a C++ name
      continue;
    }
    colon = i;
    break;
  }
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    *error = "--probe \"" + std::string(text) +
             "\": expected PROGRAM:FUNCTION (e.g. shop:Shop::validate or server:main.handleLogin)";
    return std::nullopt;
  }
  ProbeSpec spec{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1)),
                 std::string(text), ""};
  // PROGRAM:FILE.py:FUNCTION
  const size_t py = spec.function.find(".py:");
  if (py != std::string::npos) {
    spec.py_file = spec.function.substr(0, py + 3);
    spec.function = spec.function.substr(py + 4);
    auto bad = [&](const std::string& why) {
      *error = "--probe \"" + std::string(text) + "\": " + why;
      return std::nullopt;
    };
    if (spec.function.empty()) return bad("expected PROGRAM:FILE.py:FUNCTION (e.g. python3:app.py:login)");
    for (char c : spec.function) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
        return bad("a Python FUNCTION is a plain name (co_name: CPython's probes give no "
                   "qualname or class, and no globs are matched): write login, not Auth.login");
      }
    }
    if (spec.function.size() > kMaxPythonName) {
      return bad("Python function names longer than " + std::to_string(kMaxPythonName) +
                 " characters are not matched");
    }
    if (spec.py_file.find('*') != std::string::npos || spec.py_file.size() > kMaxPythonFile ||
        spec.py_file == ".py" || spec.py_file.back() == '/') {
      return bad("FILE is the end of the Python file's path without globs, at most " +
                 std::to_string(kMaxPythonFile) + " characters (e.g. app.py or shop/auth.py)");
    }
  }
  return spec;
}

bool GlobMatch(std::string_view p, std::string_view s) {
  // Iterative match with one backtrack point: linear enough for symbol names.
  size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (pi < p.size() && p[pi] == s[si]) {
      ++pi;
      ++si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

namespace {

// "Shop::query[abi:cxx11]" -> "Shop::query": ABI tags are not part of the
// name a user writes.
std::string WithoutAbiTags(std::string s) {
  for (size_t at; (at = s.find("[abi:")) != std::string::npos;) {
    const size_t end = s.find(']', at);
    if (end == std::string::npos) break;
    s.erase(at, end - at + 1);
  }
  return s;
}

}  // namespace

std::string WithoutParameters(std::string_view d) {
  // The parameter list is the last top-level "(...)", before qualifiers
  // (" const", "&") that follow it.
  size_t close = d.rfind(')');
  if (close == std::string_view::npos) return "";
  int depth = 0;
  for (size_t i = close + 1; i-- > 0;) {
    if (d[i] == ')') ++depth;
    if (d[i] == '(' && --depth == 0) return WithoutAbiTags(std::string(d.substr(0, i)));
  }
  return "";
}

bool SymbolMatches(const ElfSymbol& fn, std::string_view pattern) {
  if (fn.name.find(".cold") != std::string::npos || fn.name.find(".part.") != std::string::npos) {
    return false;
  }
  if (GlobMatch(pattern, fn.name)) return true;
  if (fn.demangled.empty()) return false;
  if (GlobMatch(pattern, fn.demangled)) return true;
  std::string base = WithoutParameters(fn.demangled);
  return !base.empty() && GlobMatch(pattern, base);
}

std::string DisplayName(const ElfSymbol& fn) {
  if (fn.demangled.empty()) return fn.name;
  std::string base = WithoutParameters(fn.demangled);
  return base.empty() ? fn.demangled : base;
}

}  // namespace hoptrace::uprobes
