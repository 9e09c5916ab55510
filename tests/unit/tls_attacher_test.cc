// Which TLS library files carry uprobes as processes come and go
// (uprobes/openssl/tls_attacher.h), with a fake attach target and a fake
// /proc: no kernel here. Plus the maps parsing it relies on.
#include "uprobes/openssl/tls_attacher.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "uprobes/openssl/tls_libraries.h"

namespace hoptrace::tls {
namespace {

constexpr uint64_t kMs = 1'000'000;

TlsLibrary Lib(uint64_t inode, std::vector<std::string> symbols = {"SSL_write", "SSL_read"}) {
  TlsLibrary lib;
  lib.path = "/usr/lib/x86_64-linux-gnu/libssl.so." + std::to_string(inode);
  lib.open_path = lib.path;
  lib.dev = 1;
  lib.inode = inode;
  lib.kind = "libssl.so.3";
  lib.symbols = std::move(symbols);
  return lib;
}

// Records (inode, pid) attachments.
using Att = std::pair<uint64_t, pid_t>;

struct FakeTarget : UprobeTarget {
  bool Attach(const TlsLibrary& lib, pid_t pid, std::string* error) override {
    if (fail || gone.count(pid)) {
      *error = "refused";
      return false;
    }
    attached.push_back({lib.inode, pid});
    live.insert({lib.inode, pid});
    return true;
  }
  void Detach(const TlsLibrary& lib, pid_t pid) override {
    detached.push_back({lib.inode, pid});
    live.erase({lib.inode, pid});
  }
  bool fail = false;
  std::set<pid_t> gone;  // processes that exited before their attach
  std::vector<Att> attached, detached;
  std::set<Att> live;
};

struct Fixture : ::testing::Test {
  FakeTarget target;
  std::map<pid_t, std::vector<TlsLibrary>> maps;  // what /proc/PID/maps shows now
  int scans = 0;
  TlsAttacher attacher{&target, [this](pid_t pid) {
                         ++scans;
                         return maps[pid];
                       }};
};

TEST_F(Fixture, OneAttachmentPerProcessOfAFile) {
  maps[10] = {Lib(100)};
  maps[11] = {Lib(100)};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(11, 0);
  // Per process: another process mapping the file gets no breakpoint.
  EXPECT_EQ(target.attached, (std::vector<Att>{{100, 10}, {100, 11}}));
  EXPECT_EQ(attacher.attached_files(), 1u);
  EXPECT_EQ(attacher.attachments(), 2u);
}

TEST_F(Fixture, DetachesEachProcessAtItsExit) {
  maps[10] = {Lib(100)};
  maps[11] = {Lib(100), Lib(200)};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(11, 0);
  attacher.RemoveProcess(11);
  EXPECT_EQ(target.detached, (std::vector<Att>{{100, 11}, {200, 11}}));
  EXPECT_EQ(attacher.attached_files(), 1u);
  attacher.RemoveProcess(10);
  EXPECT_EQ(target.detached, (std::vector<Att>{{100, 11}, {200, 11}, {100, 10}}));
  EXPECT_TRUE(target.live.empty());
  EXPECT_EQ(attacher.processes(), 0u);
  EXPECT_EQ(attacher.attached_files(), 0u);
}

TEST_F(Fixture, ChildGetsParentFilesWithoutScanning) {
  maps[10] = {Lib(100)};
  attacher.AddProcess(10, 0);
  const int before = scans;
  attacher.AddChild(10, 12, 0);
  EXPECT_EQ(scans, before);
  EXPECT_EQ(target.attached, (std::vector<Att>{{100, 10}, {100, 12}}));
  attacher.RemoveProcess(10);
  EXPECT_EQ(target.detached, (std::vector<Att>{{100, 10}}));  // the child keeps its own
  attacher.RemoveProcess(12);
  EXPECT_EQ(target.detached, (std::vector<Att>{{100, 10}, {100, 12}}));
}

TEST_F(Fixture, RescansUntilTheLibraryIsLoaded) {
  attacher.AddProcess(10, 0);  // exec: the dynamic loader has not mapped libssl yet
  EXPECT_TRUE(target.attached.empty());
  attacher.Tick(1 * kMs);
  EXPECT_EQ(scans, 1);  // too early
  maps[10] = {Lib(100)};
  attacher.Tick(5 * kMs);
  EXPECT_EQ(target.attached, (std::vector<Att>{{100, 10}}));
  const int after = scans;
  attacher.Tick(10'000 * kMs);
  EXPECT_EQ(scans, after);  // found: no more scans
}

TEST_F(Fixture, RescansOfAProcessWithoutTlsSlowDown) {
  attacher.AddProcess(10, 0);
  uint64_t now = 0;
  for (int i = 0; i < 100; ++i) attacher.Tick(now += 100 * kMs);  // 10 s
  // 5, 20, 100, 500 ms, then every 2 s: a handful, not one per tick.
  EXPECT_LE(scans, 1 + 4 + 6);
  EXPECT_GE(scans, 1 + 4 + 3);
}

TEST_F(Fixture, ExecKeepsFilesBothImagesUse) {
  maps[10] = {Lib(100), Lib(200)};
  attacher.AddProcess(10, 0);
  maps[10] = {Lib(100)};
  attacher.AddProcess(10, 0, /*new_image=*/true);
  // 100 never re-attached, 200 released.
  EXPECT_EQ(target.attached, (std::vector<Att>{{100, 10}, {200, 10}}));
  EXPECT_EQ(target.detached, (std::vector<Att>{{200, 10}}));
}

TEST_F(Fixture, FileWithoutTheFunctionsIsNotAttachedNorRetried) {
  maps[10] = {Lib(100, {"SSL_write_ex"})};
  maps[11] = {Lib(100, {"SSL_write_ex"})};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(10, 0);
  attacher.AddProcess(11, 0);
  EXPECT_TRUE(target.attached.empty());
  EXPECT_EQ(attacher.stats().not_probeable, 1u);
}

TEST_F(Fixture, FileThatFailsInItsFirstProcessIsNotRetried) {
  target.fail = true;
  maps[10] = {Lib(100)};
  maps[11] = {Lib(100)};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(11, 0);
  EXPECT_EQ(attacher.stats().attach_failed, 1u);
  EXPECT_EQ(attacher.attached_files(), 0u);
}

TEST_F(Fixture, AProcessGoneBeforeItsAttachDoesNotSpoilTheFile) {
  maps[10] = {Lib(100)};
  maps[11] = {Lib(100)};
  maps[12] = {Lib(100)};
  attacher.AddProcess(10, 0);
  target.gone.insert(11);
  attacher.AddProcess(11, 0);
  attacher.AddProcess(12, 0);
  EXPECT_EQ(attacher.stats().attach_failed, 1u);
  EXPECT_EQ(target.attached, (std::vector<Att>{{100, 10}, {100, 12}}));
  attacher.RemoveProcess(11);  // never attached: nothing to detach
  EXPECT_TRUE(target.detached.empty());
}

TEST(TlsLibraries, NamesLibsslVersions) {
  EXPECT_EQ(LibsslKind("/usr/lib/x86_64-linux-gnu/libssl.so.3"), "libssl.so.3");
  EXPECT_EQ(LibsslKind("/usr/lib/x86_64-linux-gnu/libssl.so.1.1"), "libssl.so.1.1");
  EXPECT_EQ(LibsslKind("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"), "");
  EXPECT_EQ(LibsslKind("/usr/lib/libssl.so.3 (deleted)"), "libssl.so.3");
}

TEST(TlsLibraries, FindsOpenSslFunctionsInRealLibssl) {
  // Debian's libssl3 is a build dependency (libssl-dev): read its symbols.
  std::string error;
  auto symbols = DefinedTlsFunctions("/usr/lib/x86_64-linux-gnu/libssl.so.3", &error);
  ASSERT_TRUE(error.empty()) << error;
  for (const char* s : {"SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex"}) {
    EXPECT_NE(std::find(symbols.begin(), symbols.end(), s), symbols.end()) << s;
  }
  // A library that only imports nothing of the set defines none of it.
  EXPECT_TRUE(DefinedTlsFunctions("/usr/lib/x86_64-linux-gnu/libz.so.1", &error).empty());
}

}  // namespace
}  // namespace hoptrace::tls
