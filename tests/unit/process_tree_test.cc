#include "agent/process/process_tree.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace hoptrace {
namespace {

namespace fs = std::filesystem;

class ProcessTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("hoptrace-proctree-" + std::to_string(getpid()));
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void Proc(int pid, int ppid, const std::string& comm = "x") {
    fs::create_directories(root_ / std::to_string(pid));
    std::ofstream(root_ / std::to_string(pid) / "stat")
        << pid << " (" << comm << ") S " << ppid << " 1 1 0 -1\n";
  }
  fs::path root_;
};

TEST_F(ProcessTreeTest, AddsChildrenAndGrandchildrenOnly) {
  Proc(1, 0);
  Proc(100, 1, "nginx");
  Proc(101, 100, "nginx");        // worker
  Proc(102, 100, "nginx");        // worker
  Proc(200, 101, "odd ) name (");  // grandchild with a hostile comm
  Proc(300, 1);                   // unrelated
  EXPECT_EQ(WithDescendants({100}, root_), std::vector<pid_t>({100, 101, 102, 200}));
  EXPECT_EQ(WithDescendants({300}, root_), std::vector<pid_t>({300}));
}

TEST_F(ProcessTreeTest, KeepsPidsThatAreGone) {
  Proc(1, 0);
  EXPECT_EQ(WithDescendants({555, 555}, root_), std::vector<pid_t>({555}));
}

}  // namespace
}  // namespace hoptrace
