// Which TLS library files carry uprobes as processes come and go
// (uprobes/openssl/tls_attacher.h), with a fake attach target and a fake
// /proc: no kernel here. Plus the maps parsing it relies on.
#include "uprobes/openssl/tls_attacher.h"

#include <gtest/gtest.h>

#include <map>
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

struct FakeTarget : UprobeTarget {
  bool Attach(const TlsLibrary& lib, std::string* error) override {
    if (fail) {
      *error = "refused";
      return false;
    }
    attached.push_back(lib.inode);
    live[lib.inode] = true;
    return true;
  }
  void Detach(const TlsLibrary& lib) override {
    detached.push_back(lib.inode);
    live.erase(lib.inode);
  }
  bool fail = false;
  std::vector<uint64_t> attached, detached;
  std::map<uint64_t, bool> live;
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

TEST_F(Fixture, OneAttachmentPerFileSharedByProcesses) {
  maps[10] = {Lib(100)};
  maps[11] = {Lib(100)};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(11, 0);
  EXPECT_EQ(target.attached, std::vector<uint64_t>{100});
  EXPECT_EQ(attacher.attached_files(), 1u);
}

TEST_F(Fixture, DetachesWhenTheLastUserExits) {
  maps[10] = {Lib(100)};
  maps[11] = {Lib(100), Lib(200)};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(11, 0);
  attacher.RemoveProcess(11);
  EXPECT_EQ(target.detached, std::vector<uint64_t>{200});
  attacher.RemoveProcess(10);
  EXPECT_EQ(target.detached, (std::vector<uint64_t>{200, 100}));
  EXPECT_TRUE(target.live.empty());
  EXPECT_EQ(attacher.processes(), 0u);
}

TEST_F(Fixture, ChildInheritsParentFilesWithoutScanning) {
  maps[10] = {Lib(100)};
  attacher.AddProcess(10, 0);
  const int before = scans;
  attacher.AddChild(10, 12, 0);
  EXPECT_EQ(scans, before);
  attacher.RemoveProcess(10);
  EXPECT_TRUE(target.detached.empty());  // the child still uses it
  attacher.RemoveProcess(12);
  EXPECT_EQ(target.detached, std::vector<uint64_t>{100});
}

TEST_F(Fixture, RescansUntilTheLibraryIsLoaded) {
  attacher.AddProcess(10, 0);  // exec: the dynamic loader has not mapped libssl yet
  EXPECT_TRUE(target.attached.empty());
  attacher.Tick(1 * kMs);
  EXPECT_EQ(scans, 1);  // too early
  maps[10] = {Lib(100)};
  attacher.Tick(5 * kMs);
  EXPECT_EQ(target.attached, std::vector<uint64_t>{100});
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
  EXPECT_EQ(target.attached, (std::vector<uint64_t>{100, 200}));  // 100 never re-attached
  EXPECT_EQ(target.detached, std::vector<uint64_t>{200});
}

TEST_F(Fixture, FileWithoutTheFunctionsIsNotAttachedNorRetried) {
  maps[10] = {Lib(100, {"SSL_write_ex"})};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(10, 0);
  EXPECT_TRUE(target.attached.empty());
  EXPECT_EQ(attacher.stats().not_probeable, 1u);
}

TEST_F(Fixture, FailedAttachIsCountedOnce) {
  target.fail = true;
  maps[10] = {Lib(100)};
  maps[11] = {Lib(100)};
  attacher.AddProcess(10, 0);
  attacher.AddProcess(11, 0);
  EXPECT_EQ(attacher.stats().attach_failed, 1u);
  EXPECT_EQ(attacher.attached_files(), 0u);
}

TEST(TlsLibraries, ParsesFileMappingsOncePerPath) {
  const std::string maps =
      "55d0c0a00000-55d0c0a2a000 r--p 00000000 fe:01 1311 /usr/bin/curl\n"
      "7f1e3c000000-7f1e3c021000 rw-p 00000000 00:00 0 \n"
      "7f1e3d4a0000-7f1e3d4c0000 r--p 00000000 fe:01 2222 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
      "7f1e3d4c0000-7f1e3d51c000 r-xp 00020000 fe:01 2222 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
      "7ffd5a1c1000-7ffd5a1e2000 rw-p 00000000 00:00 0 [stack]\n"
      "7f1e3d600000-7f1e3d610000 r-xp 00000000 fe:01 3333 /opt/my lib/libssl.so.1.1 (deleted)\n";
  auto files = ParseMappedFiles(maps);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, "/usr/bin/curl");
  EXPECT_EQ(files[1].path, "/usr/lib/x86_64-linux-gnu/libssl.so.3");
  EXPECT_EQ(files[1].inode, 2222u);
  EXPECT_EQ(files[2].path, "/opt/my lib/libssl.so.1.1 (deleted)");
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
