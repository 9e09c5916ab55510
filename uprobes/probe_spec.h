// What the user asks to time: `--probe PROGRAM:FUNCTION`.
//
// PROGRAM is a path ("/usr/local/bin/shop", a library "/usr/lib/libshop.so")
// or a name: the executable, comm or service name of a process (as --exe),
// or the file name of a library it maps ("libshop.so*"). FUNCTION is a symbol
// as the ELF file names it (C, Rust's or C++'s mangled name, Go's
// "main.handleLogin") or a C++ demangled name with or without its parameters
// ("Shop::validate", "Shop::validate(int)"); `*` matches any run of characters.
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

  bool program_is_path() const { return program.find('/') != std::string::npos; }
};

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
