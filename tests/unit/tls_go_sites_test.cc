// uprobes/go/go_tls_sites: where the crypto/tls probes go in a Go binary
// built with the pinned toolchain (net/http links crypto/tls), checked
// against the binary's own bytes and symbols; a stripped copy is refused
// with a reason; other files are not Go.
#include "uprobes/go/go_tls_sites.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace hoptrace::uprobes {
namespace {

std::vector<uint8_t> FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(GoTlsSitesTest, FindsWriteAndReadEntriesAndTheirReturnInstructions) {
  GoTlsSites sites;
  std::string why;
  ASSERT_EQ(FindGoTlsSites(UPROBES_FIXTURE_GO, &sites, &why), GoTls::kProbeable) << why;
  const std::vector<uint8_t> file = FileBytes(UPROBES_FIXTURE_GO);
  // The stack check reads g from R14: cmp rsp|r12, [r14+0x10] within the
  // first 12 bytes (after a lea r12 for a big frame).
  auto checks_r14 = [&](uint64_t entry) {
    for (uint64_t i = entry; i < entry + 12 && i + 4 < file.size(); ++i) {
      if ((file[i] == 0x49 || file[i] == 0x4d) && file[i + 1] == 0x3b && file[i + 2] == 0x66 &&
          file[i + 3] == 0x10) {
        return true;
      }
    }
    return false;
  };
  ASSERT_LT(sites.read_entry + 4, file.size());
  EXPECT_TRUE(checks_r14(sites.write_entry));
  EXPECT_TRUE(checks_r14(sites.read_entry));
  ASSERT_FALSE(sites.write_returns.empty());
  ASSERT_FALSE(sites.read_returns.empty());
  for (uint64_t off : sites.write_returns) {
    EXPECT_GT(off, sites.write_entry);
    EXPECT_EQ(file[off], 0xc3) << std::hex << off;
  }
  for (uint64_t off : sites.read_returns) {
    EXPECT_GT(off, sites.read_entry);
    EXPECT_EQ(file[off], 0xc3) << std::hex << off;
  }
  EXPECT_NE(sites.tcpconn_itab_vaddr, 0u);
  EXPECT_NE(sites.write_vaddr, 0u);
  EXPECT_EQ(sites.sysfd_off, 16u);
}

TEST(GoTlsSitesTest, StrippedGoBinaryIsRefusedWithAReason) {
  char dir[] = "/tmp/tls_go_sites_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string copy = std::string(dir) + "/stripped";
  ASSERT_EQ(std::system(("objcopy --strip-all " + std::string(UPROBES_FIXTURE_GO) + " " + copy)
                            .c_str()),
            0);
  GoTlsSites sites;
  std::string why;
  EXPECT_EQ(FindGoTlsSites(copy, &sites, &why), GoTls::kRefused);
  EXPECT_NE(why.find("stripped Go binary"), std::string::npos) << why;
  unlink(copy.c_str());
  rmdir(dir);
}

TEST(GoTlsSitesTest, OtherFilesAreNotGo) {
  GoTlsSites sites;
  std::string why;
  EXPECT_EQ(FindGoTlsSites("/proc/self/exe", &sites, &why), GoTls::kNotGo);
  EXPECT_EQ(FindGoTlsSites("/nonexistent/file", &sites, &why), GoTls::kRefused);
  EXPECT_FALSE(why.empty());
}

}  // namespace
}  // namespace hoptrace::uprobes
