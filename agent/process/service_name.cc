#include "agent/process/service_name.h"

#include <algorithm>
#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/text_util.h"

namespace hoptrace {
namespace {

// First match, as getenv() in the process itself would see it.
std::optional<std::string_view> EnvValue(const std::vector<std::string>& environ,
                                         std::string_view key) {
  for (const auto& entry : environ) {
    if (entry.size() > key.size() && entry[key.size()] == '=' && StartsWith(entry, key)) {
      return std::string_view(entry).substr(key.size() + 1);
    }
  }
  return std::nullopt;
}

// ---- OTEL_RESOURCE_ATTRIBUTES ---------------------------------------------

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi << 4 | lo);
    i += 2;
  }
  return true;
}

// OpenTelemetry SDK environment variables: OTEL_RESOURCE_ATTRIBUTES is
// "key1=value1,key2=value2" as in W3C Baggage, values percent-encoded; "In case
// of any error, e.g. failure during the decoding process, the entire
// environment variable value SHOULD be discarded". A later duplicate key wins,
// as it would when the SDK builds its attribute map.
std::optional<std::string> ServiceNameFromResourceAttributes(std::string_view attrs) {
  std::optional<std::string> name;
  std::string decoded;
  while (!attrs.empty()) {
    const size_t comma = attrs.find(',');
    const std::string_view entry = Trim(attrs.substr(0, comma));
    attrs.remove_prefix(comma == std::string_view::npos ? attrs.size() : comma + 1);
    if (entry.empty()) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos || Trim(entry.substr(0, eq)).empty()) return std::nullopt;
    if (!PercentDecode(Trim(entry.substr(eq + 1)), &decoded)) return std::nullopt;
    if (Trim(entry.substr(0, eq)) == "service.name") name = decoded;
  }
  // An empty value means unset, as for every OTEL_* variable.
  if (name && name->empty()) return std::nullopt;
  return name;
}

// ---- interpreters -----------------------------------------------------------

// What an interpreter option does with the argument that follows it (or the
// rest of its own cluster, "-mhttp.server").
enum class OptKind {
  kValue,   // consumes a value that is not the program: "-W ignore", "-cp x"
  kInline,  // the program is inline code or stdin: "-c", "-e"; no script name
  kModule,  // the value names the program: "-m http.server", "java -m mod/Main"
  kScript,  // the value is the program file: "-jar app.jar", "php -f x.php"
};

struct OptRule {
  std::string_view name;
  OptKind kind;
};

struct Syntax {
  // getopt-style: "-um" is "-u" then "-m". java's options are whole words.
  bool clustered;
  // Shells also take options as "+o name".
  bool plus_options;
  std::span<const OptRule> rules;
  // Subcommands that come before the script ("deno run x.ts"), and those that
  // run no script of the user's ("deno fmt", "bun install").
  std::span<const std::string_view> run_subcommands;
  std::span<const std::string_view> other_subcommands;
};

// Only options that take a separate value, or that decide what runs, need to
// be listed; every other option is a flag and is skipped.
// clang-format off
constexpr OptRule kPythonRules[] = {
    {"-c", OptKind::kInline}, {"-m", OptKind::kModule}, {"-W", OptKind::kValue},
    {"-X", OptKind::kValue}, {"--check-hash-based-pycs", OptKind::kValue}};
constexpr OptRule kNodeRules[] = {
    {"-e", OptKind::kInline}, {"--eval", OptKind::kInline}, {"-p", OptKind::kInline},
    {"--print", OptKind::kInline}, {"-r", OptKind::kValue}, {"--require", OptKind::kValue},
    {"--import", OptKind::kValue}, {"--loader", OptKind::kValue},
    {"--experimental-loader", OptKind::kValue}, {"-C", OptKind::kValue},
    {"--conditions", OptKind::kValue}, {"--env-file", OptKind::kValue},
    {"--input-type", OptKind::kValue}, {"--title", OptKind::kValue},
    {"--inspect-port", OptKind::kValue}};
constexpr OptRule kRubyRules[] = {
    {"-e", OptKind::kInline}, {"-I", OptKind::kValue}, {"-r", OptKind::kValue},
    {"-C", OptKind::kValue}, {"-E", OptKind::kValue}, {"--encoding", OptKind::kValue}};
constexpr OptRule kPerlRules[] = {
    {"-e", OptKind::kInline}, {"-E", OptKind::kInline}, {"-I", OptKind::kValue},
    {"-M", OptKind::kValue}, {"-m", OptKind::kValue}};
constexpr OptRule kPhpRules[] = {
    {"-r", OptKind::kInline}, {"-B", OptKind::kInline}, {"-R", OptKind::kInline},
    {"-E", OptKind::kInline}, {"-f", OptKind::kScript}, {"-c", OptKind::kValue},
    {"-d", OptKind::kValue}, {"-z", OptKind::kValue}, {"-t", OptKind::kValue},
    {"-S", OptKind::kValue}};
constexpr OptRule kJavaRules[] = {
    {"-jar", OptKind::kScript}, {"-m", OptKind::kModule}, {"--module", OptKind::kModule},
    {"-cp", OptKind::kValue}, {"-classpath", OptKind::kValue}, {"--class-path", OptKind::kValue},
    {"-p", OptKind::kValue}, {"--module-path", OptKind::kValue},
    {"--upgrade-module-path", OptKind::kValue}, {"--add-modules", OptKind::kValue},
    {"--add-opens", OptKind::kValue}, {"--add-exports", OptKind::kValue},
    {"--add-reads", OptKind::kValue}, {"--limit-modules", OptKind::kValue},
    {"--patch-module", OptKind::kValue}, {"--enable-native-access", OptKind::kValue},
    {"--source", OptKind::kValue}};
constexpr OptRule kShellRules[] = {
    {"-c", OptKind::kInline}, {"-s", OptKind::kInline}, {"-o", OptKind::kValue},
    {"+o", OptKind::kValue}, {"-O", OptKind::kValue}, {"+O", OptKind::kValue},
    {"--rcfile", OptKind::kValue}, {"--init-file", OptKind::kValue}};
constexpr OptRule kDenoRules[] = {
    {"-c", OptKind::kValue}, {"--config", OptKind::kValue}, {"--import-map", OptKind::kValue},
    {"--location", OptKind::kValue}, {"--seed", OptKind::kValue}, {"-L", OptKind::kValue},
    {"--log-level", OptKind::kValue}, {"--port", OptKind::kValue}, {"--host", OptKind::kValue}};
constexpr OptRule kBunRules[] = {
    {"-e", OptKind::kInline}, {"--eval", OptKind::kInline}, {"-p", OptKind::kInline},
    {"--print", OptKind::kInline}, {"-r", OptKind::kValue}, {"--preload", OptKind::kValue},
    {"-c", OptKind::kValue}, {"--config", OptKind::kValue}, {"--cwd", OptKind::kValue},
    {"--env-file", OptKind::kValue}};

constexpr std::string_view kRunSubcommands[] = {"run", "serve"};
constexpr std::string_view kDenoOtherSubcommands[] = {
    "add", "bench", "cache", "check", "clean", "compile", "completions", "coverage", "doc",
    "eval", "fmt", "info", "init", "install", "jupyter", "lint", "lsp", "outdated", "publish",
    "remove", "repl", "task", "test", "types", "uninstall", "upgrade", "vendor"};
constexpr std::string_view kBunOtherSubcommands[] = {
    "a", "add", "build", "c", "create", "exec", "i", "init", "install", "link", "outdated",
    "pm", "publish", "remove", "repl", "rm", "test", "unlink", "update", "upgrade", "x"};
// clang-format on

constexpr Syntax kPython{true, false, kPythonRules, {}, {}};
constexpr Syntax kNode{true, false, kNodeRules, {}, {}};
constexpr Syntax kRuby{true, false, kRubyRules, {}, {}};
constexpr Syntax kPerl{true, false, kPerlRules, {}, {}};
constexpr Syntax kPhp{true, false, kPhpRules, {}, {}};
constexpr Syntax kJava{false, false, kJavaRules, {}, {}};
constexpr Syntax kShell{true, true, kShellRules, {}, {}};
constexpr Syntax kDeno{true, false, kDenoRules, kRunSubcommands, kDenoOtherSubcommands};
constexpr Syntax kBun{true, false, kBunRules, kRunSubcommands, kBunOtherSubcommands};

// "python", "python3", "python3.11": the family name, then only a version.
bool IsVersioned(std::string_view name, std::string_view family) {
  if (!StartsWith(name, family)) return false;
  return std::all_of(name.begin() + family.size(), name.end(),
                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// Exact names for the rest: "php-fpm8.2" or "bash-completion" are not the
// interpreter running a script, and treating them as one would make a config
// path their service name.
const Syntax* InterpreterSyntax(std::string_view name) {
  if (IsVersioned(name, "python")) return &kPython;
  if (IsVersioned(name, "ruby")) return &kRuby;
  if (IsVersioned(name, "perl")) return &kPerl;
  if (IsVersioned(name, "php")) return &kPhp;
  if (name == "node" || name == "nodejs") return &kNode;
  if (name == "java") return &kJava;
  if (name == "bash" || name == "sh" || name == "dash") return &kShell;
  if (name == "deno") return &kDeno;
  if (name == "bun") return &kBun;
  return nullptr;
}

// "/srv/app/backend.py" -> "backend". Empty when there is no usable name
// ("node ." runs a package, "./" is a directory).
std::string ScriptName(std::string_view path) {
  constexpr std::string_view kExtensions[] = {".py",  ".js", ".mjs", ".cjs", ".rb",  ".pl",
                                              ".php", ".sh", ".jar", ".ts",  ".java"};
  std::string_view name = Basename(path);
  for (std::string_view ext : kExtensions) {
    if (name.size() > ext.size() && name.ends_with(ext)) {
      name.remove_suffix(ext.size());
      break;
    }
  }
  if (name == "." || name == "..") return {};
  return std::string(name);
}

// "java -m com.shop/com.shop.Main" names module com.shop; python's module
// names ("http.server") are kept whole.
std::string ModuleName(std::string_view module) {
  return std::string(module.substr(0, module.find('/')));
}

const OptRule* FindRule(const Syntax& syntax, std::string_view name) {
  for (const auto& rule : syntax.rules) {
    if (rule.name == name) return &rule;
  }
  return nullptr;
}

bool Contains(std::span<const std::string_view> words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

// The program an interpreter runs, named from its arguments; empty when it
// runs inline code, stdin, or a subcommand of its own.
std::string ProgramName(const Syntax& syntax, const std::vector<std::string>& argv) {
  // Returns the name for an option's value, or nullopt to keep scanning.
  const auto apply = [](OptKind kind, std::string_view value) -> std::optional<std::string> {
    switch (kind) {
      case OptKind::kValue:
        return std::nullopt;
      case OptKind::kInline:
        return std::string();
      case OptKind::kModule:
        return ModuleName(value);
      case OptKind::kScript:
        return ScriptName(value);
    }
    return std::string();
  };
  bool first_positional = true;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") return i + 1 < argv.size() ? ScriptName(argv[i + 1]) : std::string();
    if (arg == "-") return {};  // the program comes from stdin
    const bool is_option =
        arg.size() > 1 && (arg[0] == '-' || (syntax.plus_options && arg[0] == '+'));
    if (!is_option) {
      if (first_positional && Contains(syntax.run_subcommands, arg)) {
        first_positional = false;
        continue;
      }
      if (first_positional && Contains(syntax.other_subcommands, arg)) return {};
      // java reads more options from "@argfiles".
      if (&syntax == &kJava && arg[0] == '@') continue;
      return ScriptName(arg);
    }
    // The value of a rule is the rest of the argument ("--require=x",
    // "-Wignore", "-mhttp.server") or else the next argument.
    std::optional<std::string> name;
    if (StartsWith(arg, "--") || !syntax.clustered) {
      const size_t eq = arg.find('=');
      if (const OptRule* rule = FindRule(syntax, arg.substr(0, eq))) {
        if (eq != std::string_view::npos) {
          name = apply(rule->kind, arg.substr(eq + 1));
        } else if (rule->kind == OptKind::kInline) {
          name = std::string();
        } else if (i + 1 < argv.size()) {
          name = apply(rule->kind, argv[++i]);
        } else {
          return {};
        }
      }
    } else {
      // Flags before the first rule in the cluster are skipped; the rule
      // takes the rest of the cluster as its value.
      for (size_t j = 1; j < arg.size(); ++j) {
        const char opt[] = {arg[0], arg[j]};
        const OptRule* rule = FindRule(syntax, std::string_view(opt, 2));
        if (rule == nullptr) continue;
        if (j + 1 < arg.size()) {
          name = apply(rule->kind, arg.substr(j + 1));
        } else if (rule->kind == OptKind::kInline) {
          name = std::string();
        } else if (i + 1 < argv.size()) {
          name = apply(rule->kind, argv[++i]);
        } else {
          return {};
        }
        break;
      }
    }
    if (name) return *name;
  }
  return {};
}


}  // namespace

std::optional<std::string> OwnServiceName(const std::vector<std::string>& environ) {
  if (auto v = EnvValue(environ, "OTEL_SERVICE_NAME"); v && !v->empty()) return std::string(*v);
  if (auto v = EnvValue(environ, "OTEL_RESOURCE_ATTRIBUTES")) {
    if (auto name = ServiceNameFromResourceAttributes(*v)) return *name;
  }
  return std::nullopt;
}

std::string DeriveServiceName(const std::string& executable_name,
                              const std::vector<std::string>& argv,
                              const std::vector<std::string>& environ) {
  // The process's own configuration wins: it is what an OpenTelemetry SDK in
  // that process would report, so our spans and its spans agree.
  if (auto name = OwnServiceName(environ)) return *name;

  const std::string_view argv0 = argv.empty() ? std::string_view() : Basename(argv[0]);
  // The executable decides (argv[0] can be anything); argv[0] is the fallback
  // when /proc/<pid>/exe was unreadable and the caller had only comm.
  const Syntax* syntax = InterpreterSyntax(executable_name);
  if (syntax == nullptr) syntax = InterpreterSyntax(argv0);
  if (syntax != nullptr) {
    if (std::string name = ProgramName(*syntax, argv); !name.empty()) return name;
  }

  if (!executable_name.empty()) return executable_name;
  if (!argv0.empty()) return std::string(argv0);
  return "unknown_service";
}


}  // namespace hoptrace
