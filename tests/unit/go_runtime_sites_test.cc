// uprobes/go: where the goroutine probes go in a Go binary built with the
// pinned toolchain, checked against the binary's own bytes; and that other
// files keep the thread model with a reason.
#include "uprobes/go/go_runtime_sites.h"

#include <gtest/gtest.h>

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

TEST(GoRuntimeSitesTest, FindsNewproc1EntryReturnsAndSendInAGoBinary) {
  std::string why;
  bool not_go = true;
  auto sites = FindGoRuntimeSites(UPROBES_FIXTURE_GO, &why, &not_go);
  ASSERT_TRUE(sites) << why;
  EXPECT_FALSE(not_go);
  const std::vector<uint8_t> file = FileBytes(UPROBES_FIXTURE_GO);
  auto at = [&](uint64_t off, size_t n) {
    return std::vector<uint8_t>(file.begin() + off, file.begin() + off + n);
  };
  // Both functions begin with the R14 stack check: cmp rsp, [r14+0x10].
  const std::vector<uint8_t> check = {0x49, 0x3b, 0x66, 0x10};
  EXPECT_EQ(at(sites->newproc1_entry, 4), check);
  EXPECT_EQ(at(sites->send_entry, 4), check);
  // Every return site is a ret (c3) inside newproc1's body, after its entry.
  ASSERT_FALSE(sites->newproc1_returns.empty());
  for (uint64_t off : sites->newproc1_returns) {
    EXPECT_GT(off, sites->newproc1_entry);
    EXPECT_EQ(file[off], 0xc3) << std::hex << off;
  }
}

TEST(GoRuntimeSitesTest, NonGoFilesKeepTheThreadModelQuietly) {
  std::string why;
  bool not_go = false;
  EXPECT_FALSE(FindGoRuntimeSites("/proc/self/exe", &why, &not_go));
  EXPECT_TRUE(not_go);
  EXPECT_FALSE(FindGoRuntimeSites("/proc/self/status", &why, &not_go));
  EXPECT_FALSE(not_go);
  EXPECT_FALSE(why.empty());
}

}  // namespace
}  // namespace hoptrace::uprobes
