// What the user asks to time: `--probe PROGRAM:FUNCTION`.
//
// PROGRAM is a path ("/usr/local/bin/shop", a library "/usr/lib/libshop.so")
// or a name: the executable, comm or service name of a process (as --exe),
// or the file name of a library it maps ("libshop.so*"). FUNCTION is a symbol
// as the ELF file names it (C, Rust's or C++'s mangled name, Go's
// "main.handleLogin") or a C++ demangled name with or without its parameters
// ("Shop::validate", "Shop::validate(int)"); `*` matches any run of characters.
//
// A Python function: `PROGRAM:FILE.py:FUNCTION` (e.g. `login-svc:app.py:login`,
// `python3:shop/auth.py:check_password`). CPython 3.11's probes name a
// function by co_name only ("login", not "Auth.login"), so FUNCTION is a
// plain name, compared whole; FILE matches the end of the code's file name
// at a '/' ("app.py" matches "/srv/app.py", not "/srv/myapp.py"). No globs:
// the kernel compares both on every Python call.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "uprobes/elf_file.h"

namespace hoptrace::uprobes {

struct ProbeSpec {
  std::string program;
  std::string function;
  std::string text;  // as given, for messages
  std::string py_file;  // a Python function: the file suffix ("app.py"); empty for native ones

  bool python() const { return !py_file.empty(); }

  bool program_is_path() const { return program.find('/') != std::string::npos; }
};

// What the kernel compares (bpf/uprobe_trace.h: HU_PY_NAME_LEN - 2, so that
// a longer co_name, truncated, never equals a wanted one; HU_PY_FILE_LEN
// with the '/' before the suffix).
inline constexpr size_t kMaxPythonName = 46;
inline constexpr size_t kMaxPythonFile = 63;

// Splits at the first ':' that is not part of a C++ "::". nullopt and *error
// when either side is empty.
std::optional<ProbeSpec> ParseProbeSpec(std::string_view text, std::string* error);

// Shell-style match where only '*' is special.
bool GlobMatch(std::string_view pattern, std::string_view s);

// "Shop::validate(int) const" -> "Shop::validate"; "" when s has no parameter list.
std::string WithoutParameters(std::string_view demangled);

// Does the function match the pattern by any of its names (raw, demangled,
// demangled without parameters)? Compiler-split parts ("foo.cold",
// "[clone .cold]") never match: they are not entry points.
bool SymbolMatches(const ElfSymbol& fn, std::string_view pattern);

// The name spans carry (code.function.name): the demangled name without
// parameters for C++, else the symbol.
std::string DisplayName(const ElfSymbol& fn);

}  // namespace hoptrace::uprobes
