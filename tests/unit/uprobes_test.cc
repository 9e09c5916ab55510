// uprobes/: symbols, file offsets, return instructions and glob matching,
// checked against programs the build makes (C++ PIE with debug info, non-PIE
// without, a stripped one with only .dynsym, a shared library loaded with
// dlopen, a Go binary from the pinned toolchain). Each fixture prints where
// its functions are in its own memory; the resolver, reading the ELF files
// and /proc/PID/maps from outside, must find exactly those addresses.
#include <fcntl.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "uprobes/elf_file.h"
#include "uprobes/probe_manager.h"
#include "uprobes/source_location.h"
#include "uprobes/probe_resolver.h"
#include "uprobes/probe_spec.h"
#include "uprobes/usdt.h"
#include "uprobe_trace.h"
#include "uprobes/process_maps.h"
#include "uprobes/return_sites.h"

namespace hoptrace::uprobes {
namespace {

// A fixture process: started with a pipe on stdin (closed at the end) and
// its first lines ("name 0xADDR") read from stdout.
class Fixture {
 public:
  Fixture(std::vector<std::string> argv, int lines) {
    int in[2], out[2];
    EXPECT_EQ(pipe(in), 0);
    EXPECT_EQ(pipe(out), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    FILE* f = fdopen(out[0], "r");
    char name[64];
    unsigned long long addr;
    for (int i = 0; i < lines && fscanf(f, "%63s %llx", name, &addr) == 2; ++i) {
      addresses_[name] = addr;
    }
    stdout_ = f;  // open until the end: a write to a closed pipe kills a Go program
  }
  ~Fixture() {
    close(stdin_);
    fclose(stdout_);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  uint64_t address(const std::string& name) { return addresses_[name]; }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  FILE* stdout_ = nullptr;
  std::map<std::string, uint64_t> addresses_;
};

// The bytes of the process at addr (it is our child: ptrace access holds).
std::vector<uint8_t> ReadMemory(pid_t pid, uint64_t addr, size_t n) {
  std::vector<uint8_t> out(n);
  int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY);
  if (fd < 0) return {};
  ssize_t got = pread(fd, out.data(), n, static_cast<off_t>(addr));
  close(fd);
  if (got != static_cast<ssize_t>(n)) return {};
  return out;
}

bool IsReturnOrTailJump(const std::vector<uint8_t>& b) {
  if (b.empty()) return false;
  size_t i = 0;
  while (i < b.size() && (b[i] == 0xf3 || b[i] == 0xf2 || b[i] == 0x3e)) ++i;  // rep/bnd/notrack
  return i < b.size() && (b[i] == 0xc3 || b[i] == 0xc2 || b[i] == 0xe9 || b[i] == 0xeb);
}

ProbeSpec Spec(const std::string& text) {
  std::string error;
  auto s = ParseProbeSpec(text, &error);
  EXPECT_TRUE(s) << error;
  return *s;
}

const ProcessProbe* Find(const ResolveResult& r, const std::string& function) {
  for (const auto& p : r.probes) {
    if (p.function == function) return &p;
  }
  return nullptr;
}

void ExpectReturnsAreReturns(pid_t pid, const ProcessProbe& p) {
  ASSERT_FALSE(p.return_addresses.empty()) << p.function;
  ASSERT_EQ(p.return_addresses.size(), p.return_offsets.size());
  for (uint64_t a : p.return_addresses) {
    EXPECT_TRUE(IsReturnOrTailJump(ReadMemory(pid, a, 4)))
        << p.function << ": no ret/jmp at " << std::hex << a;
  }
}

TEST(ProbeSpecTest, SplitsAtTheFirstSingleColon) {
  EXPECT_EQ(Spec("shop:Shop::validate").program, "shop");
  EXPECT_EQ(Spec("shop:Shop::validate").function, "Shop::validate");
  EXPECT_EQ(Spec("/usr/bin/x:main.handleLogin").program, "/usr/bin/x");
  EXPECT_EQ(Spec("libssl.so*:SSL_*").function, "SSL_*");
  std::string error;
  EXPECT_FALSE(ParseProbeSpec("Shop::validate", &error));
  EXPECT_NE(error.find("PROGRAM:FUNCTION"), std::string::npos);
  EXPECT_FALSE(ParseProbeSpec("shop:", &error));
}

TEST(ProbeSpecTest, AFileEndingInPyNamesAPythonFunction) {
  const ProbeSpec s = Spec("login-svc:app.py:login");
  EXPECT_TRUE(s.python());
  EXPECT_EQ(s.program, "login-svc");
  EXPECT_EQ(s.py_file, "app.py");
  EXPECT_EQ(s.function, "login");
  EXPECT_EQ(Spec("python3:shop/auth.py:check_password").py_file, "shop/auth.py");
  EXPECT_EQ(Spec("/usr/bin/python3.11:/srv/app.py:f").py_file, "/srv/app.py");
  EXPECT_FALSE(Spec("shop:Shop::validate").python());
  EXPECT_FALSE(Spec("server:main.handleLogin").python());
}

TEST(ProbeSpecTest, RefusesPythonNamesTheKernelCannotCompare) {
  std::string error;
  // CPython 3.11's probes give co_name: a qualname would never match.
  EXPECT_FALSE(ParseProbeSpec("svc:app.py:Auth.login", &error));
  EXPECT_NE(error.find("co_name"), std::string::npos) << error;
  EXPECT_FALSE(ParseProbeSpec("svc:app.py:log*", &error));
  EXPECT_FALSE(ParseProbeSpec("svc:*.py:login", &error));
  EXPECT_FALSE(ParseProbeSpec("svc:app.py:", &error));
  EXPECT_FALSE(ParseProbeSpec("svc:app.py:" + std::string(kMaxPythonName + 1, 'a'), &error));
  EXPECT_TRUE(ParseProbeSpec("svc:app.py:" + std::string(kMaxPythonName, 'a'), &error));
  EXPECT_FALSE(ParseProbeSpec("svc:" + std::string(kMaxPythonFile, 'a') + ".py:f", &error));
  // The limits are the kernel's (bpf/uprobe_trace.h).
  EXPECT_EQ(kMaxPythonName, HU_PY_NAME_LEN - 2u);
  EXPECT_EQ(kMaxPythonFile, HU_PY_FILE_LEN - 1u);
}

// The USDT notes of the interpreter the tests run, against readelf's view
// of them (the same file, read by binutils).
TEST(UsdtTest, ReadsCPythonsFunctionProbesAsReadelfDoes) {
  const char* python = "/usr/bin/python3.11";
  std::string error;
  const std::vector<UsdtProbe> probes = ReadUsdtProbes(python, &error);
  ASSERT_FALSE(probes.empty()) << error;
  FILE* f = popen("readelf -n /usr/bin/python3.11", "r");
  ASSERT_NE(f, nullptr);
  std::string text;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), f)) > 0;) text.append(buf, n);
  pclose(f);
  int checked = 0;
  for (const UsdtProbe& p : probes) {
    if (p.provider != "python" || p.name != "function__entry") continue;
    char want[256];
    snprintf(want, sizeof(want), "Name: function__entry\n    Location: 0x%016llx, Base: ",
             static_cast<unsigned long long>(p.address));
    EXPECT_NE(text.find(want), std::string::npos) << want;
    snprintf(want, sizeof(want), "Semaphore: 0x%016llx",
             static_cast<unsigned long long>(p.semaphore_address));
    EXPECT_NE(text.find(want), std::string::npos) << want;
    ASSERT_EQ(p.args.size(), 3u);
    // filename and funcname: 8-byte registers, whose pt_regs slot is known.
    EXPECT_EQ(p.args[0].size, 8);
    EXPECT_EQ(p.args[1].size, 8);
    EXPECT_GE(p.args[0].reg_offset, 0) << p.args[0].text;
    EXPECT_GE(p.args[1].reg_offset, 0) << p.args[1].text;
    EXPECT_EQ(p.args[2].size, -4);  // lineno: int
    // The semaphore's file offset holds 0 in the file (.probes, writable).
    EXPECT_GT(p.semaphore_offset, 0u);
    ++checked;
  }
  EXPECT_EQ(checked, 1);
}

TEST(UsdtTest, ParsesRegisterArguments) {
  EXPECT_EQ(ParseUsdtArg("8@%rbp").reg_offset, 32);
  EXPECT_EQ(ParseUsdtArg("8@%r12").reg_offset, 24);
  EXPECT_EQ(ParseUsdtArg("-4@%eax").reg_offset, 80);
  EXPECT_EQ(ParseUsdtArg("-4@%eax").size, -4);
  EXPECT_EQ(ParseUsdtArg("4@%r9d").reg_offset, 64);
  EXPECT_EQ(ParseUsdtArg("8@16(%rsp)").reg_offset, -1);  // memory: not a register
}

TEST(ProbeSpecTest, GlobMatchesOnlyWithStars) {
  EXPECT_TRUE(GlobMatch("main.handle*", "main.handleLogin"));
  EXPECT_TRUE(GlobMatch("*Login", "main.handleLogin"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_FALSE(GlobMatch("main.handle", "main.handleLogin"));
}

TEST(ProbeSpecTest, DemangledNamesMatchWithOrWithoutParameters) {
  ElfSymbol s;
  s.name = "_ZNK4Shop4Cart5totalEl";
  s.demangled = Demangle(s.name);
  EXPECT_EQ(s.demangled, "Shop::Cart::total(long) const");
  EXPECT_EQ(WithoutParameters(s.demangled), "Shop::Cart::total");
  EXPECT_TRUE(SymbolMatches(s, "Shop::Cart::total"));
  EXPECT_TRUE(SymbolMatches(s, "Shop::Cart::total(long) const"));
  EXPECT_TRUE(SymbolMatches(s, "_ZNK4Shop4Cart5totalEl"));
  EXPECT_TRUE(SymbolMatches(s, "Shop::*"));
  EXPECT_FALSE(SymbolMatches(s, "Shop::Cart::tot"));
  EXPECT_EQ(DisplayName(s), "Shop::Cart::total");
  ElfSymbol tagged;
  tagged.name = "_ZN4Shop5queryB5cxx11Eb";
  tagged.demangled = Demangle(tagged.name);
  EXPECT_EQ(tagged.demangled, "Shop::query[abi:cxx11](bool)");
  EXPECT_TRUE(SymbolMatches(tagged, "Shop::query"));
  EXPECT_EQ(DisplayName(tagged), "Shop::query");
  ElfSymbol cold = s;
  cold.name += ".cold";
  cold.demangled = Demangle(cold.name);
  EXPECT_FALSE(SymbolMatches(cold, "Shop::*"));
}

TEST(ProcessMapsTest, KeepsExecutableFileMappingsOnly) {
  auto maps = ParseMaps(
      "55d0c0000000-55d0c0001000 r--p 00000000 08:01 42 /usr/bin/shop\n"
      "55d0c0001000-55d0c0005000 r-xp 00001000 08:01 42 /usr/bin/shop\n"
      "7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
      "7f1000000000-7f1000010000 r-xp 00002000 fd:02 77 /lib/libx.so (deleted)\n"
      "7ffd00000000-7ffd00021000 r-xp 00000000 00:00 0 [vdso]\n");
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].path, "/usr/bin/shop");
  EXPECT_EQ(maps[0].inode, 42u);
  EXPECT_EQ(AddressOf(maps, "/usr/bin/shop", 0x1234), 0x55d0c0001234u);
  EXPECT_EQ(AddressOf(maps, "/usr/bin/shop", 0x9000), 0u);
}

class NativeResolveTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NativeResolveTest, FindsTheAddressesTheProcessSees) {
  const std::string exe = GetParam();
  Fixture f({exe, UPROBES_FIXTURE_LIB}, 4);
  ASSERT_NE(f.address("validate"), 0u);
  ProbeResolver resolver({Spec(exe + ":Shop::validate"), Spec(exe + ":Shop::Cart::total"),
                          Spec(exe + ":plain_c_function"), Spec("libgreet.so:greet"),
                          Spec(exe + ":no_such_function*")});
  const ResolveResult r = resolver.Resolve(f.pid(), ProcessNames{});
  ASSERT_EQ(r.matches_per_spec.size(), 5u);
  EXPECT_EQ(r.matches_per_spec[0], 1u);
  EXPECT_EQ(r.matches_per_spec[1], 1u);
  EXPECT_EQ(r.matches_per_spec[2], 1u);
  EXPECT_EQ(r.matches_per_spec[3], 1u);
  EXPECT_EQ(r.matches_per_spec[4], 0u);  // the agent warns about this one

  const ProcessProbe* validate = Find(r, "Shop::validate");
  ASSERT_NE(validate, nullptr);
  EXPECT_EQ(validate->entry_address, f.address("validate"));
  EXPECT_FALSE(validate->go);
  ExpectReturnsAreReturns(f.pid(), *validate);
  const ProcessProbe* total = Find(r, "Shop::Cart::total");
  ASSERT_NE(total, nullptr);
  EXPECT_EQ(total->entry_address, f.address("total"));
  ExpectReturnsAreReturns(f.pid(), *total);
  const ProcessProbe* plain = Find(r, "plain_c_function");
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->entry_address, f.address("plain"));
  const ProcessProbe* greet = Find(r, "greet");
  ASSERT_NE(greet, nullptr);
  EXPECT_EQ(greet->entry_address, f.address("greet"));
  EXPECT_NE(greet->file.find("libgreet.so"), std::string::npos);
  ExpectReturnsAreReturns(f.pid(), *greet);
}

INSTANTIATE_TEST_SUITE_P(Builds, NativeResolveTest,
                         ::testing::Values(UPROBES_FIXTURE_PIE_DEBUG, UPROBES_FIXTURE_NOPIE,
                                           UPROBES_FIXTURE_STRIPPED));

// A path names the program through a symlink too (/usr/bin/python3 ->
// python3.11): /proc/PID/exe gives the file, the user the link.
TEST(ProbeResolverTest, APathNamesItsProgramThroughASymlink) {
  Fixture f({UPROBES_FIXTURE_NOPIE, UPROBES_FIXTURE_LIB}, 4);
  const std::string link = "/tmp/ht_uprobes_test_link_" + std::to_string(getpid());
  ASSERT_EQ(symlink(UPROBES_FIXTURE_NOPIE, link.c_str()), 0);
  const std::string exe = ExecutablePath(f.pid());
  EXPECT_EQ(exe, UPROBES_FIXTURE_NOPIE);
  EXPECT_TRUE(SpecNamesProcess(Spec(exe + ":Shop::validate"), f.pid(), exe, ProcessNames{}));
  EXPECT_TRUE(SpecNamesProcess(Spec(link + ":Shop::validate"), f.pid(), exe, ProcessNames{}));
  EXPECT_FALSE(SpecNamesProcess(Spec(std::string(UPROBES_FIXTURE_PIE_DEBUG) + ":Shop::validate"),
                                f.pid(), exe, ProcessNames{}));
  EXPECT_FALSE(SpecNamesProcess(Spec("/no/such/file:Shop::validate"), f.pid(), exe,
                                ProcessNames{}));
  ProbeResolver resolver({Spec(link + ":Shop::validate")});
  EXPECT_TRUE(resolver.Wants(f.pid(), ProcessNames{}));
  EXPECT_EQ(resolver.Resolve(f.pid(), ProcessNames{}).matches_per_spec[0], 1u);
  unlink(link.c_str());
}

class CountingAttacher : public UprobeAttacher {
 public:
  size_t Attach(pid_t pid, const std::vector<AttachSite>& sites,
                std::vector<std::string>*) override {
    attached.push_back(pid);
    return sites.size();
  }
  void Detach(pid_t pid) override { detached.push_back(pid); }
  std::vector<pid_t> attached, detached;
};

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

// The agent reads an exec's event later than /proc shows the new program:
// an exec reported before the process was resolved is the program resolved
// (kept: attached once); one reported after replaced it (forgotten).
TEST(ProbeManagerTest, AnExecForgetsOnlyWhatWasResolvedBeforeIt) {
  Fixture f({UPROBES_FIXTURE_NOPIE, UPROBES_FIXTURE_LIB}, 4);
  CountingAttacher attacher;
  ProbeManager manager({Spec(std::string(UPROBES_FIXTURE_NOPIE) + ":Shop::validate")},
                       &attacher);
  const uint64_t exec_seen_late = MonotonicNs();
  ASSERT_EQ(manager.OnProcess(f.pid(), ProcessNames{}).probes.size(), 1u);
  ASSERT_EQ(attacher.attached, std::vector<pid_t>{f.pid()});
  EXPECT_FALSE(manager.OnExec(f.pid(), exec_seen_late));
  EXPECT_TRUE(manager.Knows(f.pid()));
  EXPECT_TRUE(attacher.detached.empty());
  EXPECT_TRUE(manager.OnExec(f.pid(), MonotonicNs()));
  EXPECT_FALSE(manager.Knows(f.pid()));
  EXPECT_EQ(attacher.detached, std::vector<pid_t>{f.pid()});
  EXPECT_FALSE(manager.OnExec(f.pid(), MonotonicNs()));  // not known: nothing to do
}

TEST(ElfFileTest, TellsDebugInfoAndGoApart) {
  std::string error;
  auto pie = ElfFile::Open(UPROBES_FIXTURE_PIE_DEBUG, &error);
  ASSERT_TRUE(pie) << error;
  EXPECT_TRUE(pie->has_debug_info());
  EXPECT_FALSE(pie->is_go());
  auto nopie = ElfFile::Open(UPROBES_FIXTURE_NOPIE, &error);
  ASSERT_TRUE(nopie) << error;
  EXPECT_FALSE(nopie->has_debug_info());
  auto go = ElfFile::Open(UPROBES_FIXTURE_GO, &error);
  ASSERT_TRUE(go) << error;
  EXPECT_TRUE(go->is_go());
  EXPECT_FALSE(ElfFile::Open("/proc/self/status", &error));
  EXPECT_NE(error.find("not an ELF file"), std::string::npos);
}

// only_names keeps exactly the functions of those names, at the same
// addresses and offsets as a full read (the TLS check reads four names of
// node's tens of thousands this way).
TEST(ElfFileTest, ReadsOnlyTheNamesAsked) {
  std::string error;
  auto all = ElfFile::Open(UPROBES_FIXTURE_PIE_DEBUG, &error);
  ASSERT_TRUE(all) << error;
  const std::string_view names[] = {"plain_c_function", "no_such_function"};
  auto some = ElfFile::Open(UPROBES_FIXTURE_PIE_DEBUG, &error, SymbolTables::kAll, names);
  ASSERT_TRUE(some) << error;
  ASSERT_EQ(some->functions().size(), 1u);
  const ElfSymbol& fn = some->functions()[0];
  EXPECT_EQ(fn.name, "plain_c_function");
  auto full = std::find_if(all->functions().begin(), all->functions().end(),
                           [](const ElfSymbol& f) { return f.name == "plain_c_function"; });
  ASSERT_NE(full, all->functions().end());
  EXPECT_EQ(fn.address, full->address);
  EXPECT_EQ(fn.file_offset, full->file_offset);
  EXPECT_GT(all->functions().size(), 3u);
  EXPECT_TRUE(some->objects().empty());
}

// The line of `pattern` in a fixture's source, 1-based; 0 if absent.
int LineOf(const std::string& source, const std::string& pattern) {
  std::ifstream in(source);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(pattern) != std::string::npos) return n;
  }
  return 0;
}

TEST(SourceIndexTest, FindsWhereFunctionsAreDefinedInDwarf) {
  std::string error;
  auto pie = ElfFile::Open(UPROBES_FIXTURE_PIE_DEBUG, &error);
  ASSERT_TRUE(pie) << error;
  auto index = SourceIndex::Open(UPROBES_FIXTURE_PIE_DEBUG);
  ASSERT_TRUE(index);
  const std::string source = std::string(UPROBES_FIXTURE_SOURCE_DIR) + "/shop.cc";
  int seen = 0;
  for (const auto& fn : pie->functions()) {
    const std::string pattern = fn.demangled == "Shop::validate(int)" ? "int validate(int order)"
                                : fn.name == "plain_c_function"       ? "int plain_c_function("
                                                                      : "";
    if (pattern.empty()) continue;
    ++seen;
    auto loc = index->Function(fn.address);
    ASSERT_TRUE(loc) << fn.name;
    EXPECT_EQ(loc->file, source);  // absolute: the CU's directory joined and normalised
    EXPECT_EQ(loc->line, LineOf(source, pattern)) << fn.name;
  }
  EXPECT_EQ(seen, 2);
  // An address where no function starts names none.
  EXPECT_FALSE(index->Function(1));
  // Built with -g0: no DWARF to read.
  auto nopie = SourceIndex::Open(UPROBES_FIXTURE_NOPIE);
  EXPECT_TRUE(!nopie || !nopie->Function(0x401000));
}

// A stripped binary whose DWARF was split off (objcopy --only-keep-debug,
// --strip-debug --add-gnu-debuglink): file and line still come from the
// .debug file named by the link, next to the binary.
TEST(SourceIndexTest, FindsDwarfInASeparateDebugFile) {
  char dir_template[] = "/tmp/hoptrace-debuglink-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string bin = dir + "/shop", debug = dir + "/shop.debug";
  const std::string cmd = "cp " + std::string(UPROBES_FIXTURE_PIE_DEBUG) + " " + bin +
                          " && objcopy --only-keep-debug " + bin + " " + debug +
                          " && cd " + dir + " && objcopy --strip-debug --add-gnu-debuglink=shop.debug shop";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::string error;
  auto stripped = ElfFile::Open(bin, &error);
  ASSERT_TRUE(stripped) << error;
  EXPECT_FALSE(stripped->has_debug_info());
  EXPECT_TRUE(stripped->names_debug_file());
  const std::string source = std::string(UPROBES_FIXTURE_SOURCE_DIR) + "/shop.cc";
  int seen = 0;
  {
    auto index = SourceIndex::Open(bin);
    ASSERT_TRUE(index);
    for (const auto& fn : stripped->functions()) {
      if (fn.demangled != "Shop::validate(int)") continue;
      ++seen;
      auto loc = index->Function(fn.address);
      ASSERT_TRUE(loc);
      EXPECT_EQ(loc->file, source);
      EXPECT_EQ(loc->line, LineOf(source, "int validate(int order)"));
    }
  }
  EXPECT_EQ(seen, 1);
  // Without the debug file: nothing to read.
  std::remove(debug.c_str());
  auto gone = SourceIndex::Open(bin);
  EXPECT_TRUE(!gone || !gone->Function(1));
  std::remove(bin.c_str());
  rmdir(dir.c_str());
}

TEST(SourceIndexTest, ReadsGoDwarfWithoutAranges) {
  std::string error;
  auto go = ElfFile::Open(UPROBES_FIXTURE_GO, &error);
  ASSERT_TRUE(go) << error;
  auto index = SourceIndex::Open(UPROBES_FIXTURE_GO);
  ASSERT_TRUE(index);
  const std::string source = std::string(UPROBES_FIXTURE_GO_SOURCE_DIR) + "/main.go";
  for (const auto& fn : go->functions()) {
    if (fn.name != "main.checkPassword") continue;
    auto loc = index->Function(fn.address);
    ASSERT_TRUE(loc);
    EXPECT_EQ(loc->file, source);
    EXPECT_EQ(loc->line, LineOf(source, "func checkPassword("));
    return;
  }
  FAIL() << "main.checkPassword not in the Go fixture";
}

TEST(ElfFileTest, StrippedBinaryKeepsDynamicSymbolsOnly) {
  std::string error;
  auto stripped = ElfFile::Open(UPROBES_FIXTURE_STRIPPED, &error);
  ASSERT_TRUE(stripped) << error;
  bool has_validate = false, has_local = false;
  for (const auto& fn : stripped->functions()) {
    has_validate |= fn.demangled == "Shop::validate(int)";
    has_local |= fn.name == "local_only";  // internal linkage: .symtab only
  }
  EXPECT_TRUE(has_validate);  // exported with -rdynamic
  EXPECT_FALSE(has_local);
}

TEST(GoResolveTest, FindsGoFunctionsAndTheirReturnInstructions) {
  // The addresses the Go program reports for itself.
  FILE* p = popen(UPROBES_FIXTURE_GO " addresses", "r");
  ASSERT_NE(p, nullptr);
  std::map<std::string, uint64_t> want;
  char name[64];
  unsigned long long addr;
  while (fscanf(p, "%63s %llx", name, &addr) == 2) want[name] = addr;
  pclose(p);
  ASSERT_EQ(want.size(), 2u);

  Fixture f({UPROBES_FIXTURE_GO, "0", ""}, 0);  // usage error path would exit: use port 0
  usleep(200'000);
  ProbeResolver resolver({Spec("login:main.handle*"), Spec("login:main.checkPassword")});
  ProcessNames names{{"login"}};
  ASSERT_TRUE(resolver.Wants(f.pid(), names));
  const ResolveResult r = resolver.Resolve(f.pid(), names);
  // handleLogin and its deferred closure, main.handleLogin.func1.
  EXPECT_EQ(r.matches_per_spec[0], 2u);
  EXPECT_NE(Find(r, "main.handleLogin.func1"), nullptr);
  const ProcessProbe* check = Find(r, "main.checkPassword");
  ASSERT_NE(check, nullptr);
  EXPECT_TRUE(check->go);
  EXPECT_EQ(check->entry_address, want["main.checkPassword"]);
  ExpectReturnsAreReturns(f.pid(), *check);
  const ProcessProbe* handle = Find(r, "main.handleLogin");
  ASSERT_NE(handle, nullptr);
  EXPECT_EQ(handle->entry_address, want["main.handleLogin"]);
  ExpectReturnsAreReturns(f.pid(), *handle);
}

TEST(ReturnSitesTest, FindsRetAndTailJumpAndRejectsGarbage) {
  // push rbp; mov rbp,rsp; pop rbp; ret; jmp +0x100 (outside); int3 padding
  const uint8_t body[] = {0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3, 0xe9, 0x00, 0x01, 0x00, 0x00, 0xcc};
  std::string error;
  auto sites = FindReturnSites(body, 0x1000, &error);
  ASSERT_TRUE(sites) << error;
  EXPECT_EQ(sites->rets, std::vector<uint64_t>{5});
  EXPECT_EQ(sites->tail_jumps, std::vector<uint64_t>{6});
  // A jump back into the body is a loop, not a return.
  const uint8_t loop[] = {0x90, 0xeb, 0xfd, 0xc3};
  sites = FindReturnSites(loop, 0x1000, &error);
  ASSERT_TRUE(sites) << error;
  EXPECT_TRUE(sites->tail_jumps.empty());
  // A function that never returns (calls a panic, then ud2): no site, no error.
  const uint8_t noreturn[] = {0x55, 0xe8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x0b};
  sites = FindReturnSites(noreturn, 0x1000, &error);
  ASSERT_TRUE(sites) << error;
  EXPECT_TRUE(sites->rets.empty());
  EXPECT_TRUE(sites->tail_jumps.empty());
  const uint8_t garbage[] = {0x90, 0x06, 0x07, 0xc3};  // push es; pop es: invalid in 64-bit mode
  EXPECT_FALSE(FindReturnSites(garbage, 0x1000, &error));
}

}  // namespace
}  // namespace hoptrace::uprobes
