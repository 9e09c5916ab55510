// uprobes/node: the pieces of the inspector client that need no process
// (handshake key, client frames), and the announce encoding the JavaScript
// agent and bpf/runtime_node.h must agree on.
#include <linux/types.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "node_agent_js.h"
#include "runtime_node.h"
#include "uprobes/node/node_inspector.h"

namespace hoptrace::node {
namespace {

TEST(NodeInspector, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(Base64(""), "");
  EXPECT_EQ(Base64("f"), "Zg==");
  EXPECT_EQ(Base64("fo"), "Zm8=");
  EXPECT_EQ(Base64("foo"), "Zm9v");
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");
  // RFC 6455 1.3: the sample nonce.
  EXPECT_EQ(Base64("the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST(NodeInspector, MaskedTextFrameMatchesRfc6455Example) {
  // RFC 6455 5.7: "A single-frame masked text message" ("Hello").
  const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  const std::string f = WsTextFrame("Hello", mask);
  const std::string want = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  EXPECT_EQ(f, want);
}

TEST(NodeInspector, LongFrameUsesTheSixteenBitLength) {
  const unsigned char mask[4] = {0, 0, 0, 0};
  const std::string f = WsTextFrame(std::string(300, 'x'), mask);
  ASSERT_EQ(f.size(), 4u + 4u + 300u);
  EXPECT_EQ(static_cast<unsigned char>(f[1]), 0x80 | 126);
  EXPECT_EQ((static_cast<unsigned char>(f[2]) << 8) | static_cast<unsigned char>(f[3]), 300);
}

TEST(NodeInspector, ScriptAnnouncesWithTheKernelsMagic) {
  char want[64];
  std::snprintf(want, sizeof(want), "const MAGIC = 0x%x * 2 ** 40", HT_NODE_MAGIC);
  EXPECT_NE(std::string(kAgentScript).find(want), std::string::npos);
  EXPECT_NE(std::string(kAgentScript).find("NONE = 0xfffff"), std::string::npos);
  static_assert(HT_NODE_FD_NONE == HT_NODE_FD_MASK);
  // The largest position stays exact as a JavaScript number (below 2^53).
  const double top = double(HT_NODE_MAGIC) * (1ull << 40) + double(HT_NODE_FD_MASK) * (1 << 20) +
                     double(HT_NODE_FD_MASK);
  EXPECT_LT(top, 9007199254740992.0);
}

TEST(NodeInspector, RefusesAProcessThatIsNotNode) {
  const Eligibility e = CheckProcess(getpid());
  EXPECT_FALSE(e.ok);
  EXPECT_EQ(e.why.rfind("not a Node.js process", 0), 0u) << e.why;
}

}  // namespace
}  // namespace hoptrace::node
