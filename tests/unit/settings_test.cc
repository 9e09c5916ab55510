#include "agent/cli/settings.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace hoptrace {
namespace {

class SettingsTest : public ::testing::Test {
 protected:
  Getenv FakeEnv() {
    return [this](std::string_view n) -> std::optional<std::string> {
      auto it = env_.find(std::string(n));
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }
  std::string WriteFile(const std::string& text) {
    auto path = std::filesystem::temp_directory_path() /
                ("hoptrace-settings-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter_++) + ".yaml");
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& f : files_) std::filesystem::remove(f);
  }
  std::map<std::string, std::string> env_;
  std::vector<std::filesystem::path> files_;
  int counter_ = 0;
};

TEST_F(SettingsTest, FlagBeatsEnvironmentBeatsFile) {
  Settings s(FakeEnv());
  ASSERT_EQ(s.LoadFile(WriteFile("otlp:\n  endpoint: http://file:4317\n  protocol: grpc\n"
                                 "sampler:\n  name: always_off\n")),
            std::nullopt);
  EXPECT_EQ(s.Get("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://file:4317");
  env_["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://env:4317";
  EXPECT_EQ(s.Get("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://env:4317");
  s.SetFlag("OTEL_EXPORTER_OTLP_ENDPOINT", "http://flag:4317");
  EXPECT_EQ(s.Get("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://flag:4317");
  EXPECT_EQ(s.Get("OTEL_EXPORTER_OTLP_PROTOCOL"), "grpc");
  EXPECT_EQ(s.Get("OTEL_TRACES_SAMPLER"), "always_off");
  EXPECT_EQ(s.Get("OTEL_TRACES_SAMPLER_ARG"), std::nullopt);
}

TEST_F(SettingsTest, FileSetsPropagationCgroupAndSwitch) {
  Settings s(FakeEnv());
  EXPECT_TRUE(s.run().propagation);
  EXPECT_EQ(s.run().propagation_cgroup, "");
  ASSERT_EQ(s.LoadFile(WriteFile("propagation:\n  cgroup: /sys/fs/cgroup/unified/shop\n"
                                 "  enabled: false\n")),
            std::nullopt);
  EXPECT_EQ(s.run().propagation_cgroup, "/sys/fs/cgroup/unified/shop");
  EXPECT_FALSE(s.run().propagation);
  auto err = s.LoadFile(WriteFile("propagation:\n  cgroups: /x\n"));
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("propagation.cgroups"), std::string::npos) << *err;
}

TEST_F(SettingsTest, ProbesSectionNamesFunctionsAndThreshold) {
  Settings s(FakeEnv());
  EXPECT_TRUE(s.run().probes.empty());
  EXPECT_EQ(s.run().probe_min_duration_us, 100u);
  ASSERT_EQ(s.LoadFile(WriteFile("probes:\n  functions:\n    - shop:Shop::validate\n"
                                 "    - login:main.handle*\n  min_duration_us: 250\n")),
            std::nullopt);
  EXPECT_EQ(s.run().probes,
            (std::vector<std::string>{"shop:Shop::validate", "login:main.handle*"}));
  EXPECT_EQ(s.run().probe_min_duration_us, 250u);
  auto err = s.LoadFile(WriteFile("probes:\n  function: shop:x\n"));
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("probes.function"), std::string::npos) << *err;
}

TEST_F(SettingsTest, BatchSectionSetsExportConsumersBesideTheBspVariables) {
  Settings s(FakeEnv());
  EXPECT_EQ(s.run().export_consumers, 4u);
  ASSERT_EQ(s.LoadFile(WriteFile("batch:\n  consumers: 8\n  max_queue_size: 4096\n")),
            std::nullopt);
  EXPECT_EQ(s.run().export_consumers, 8u);
  EXPECT_EQ(s.Get("OTEL_BSP_MAX_QUEUE_SIZE"), "4096");
  auto err = s.LoadFile(WriteFile("batch:\n  consumers: 0\n"));
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("batch.consumers"), std::string::npos) << *err;
}

TEST_F(SettingsTest, FileSetsSelectionOutputsAndCapture) {
  Settings s(FakeEnv());
  ASSERT_EQ(s.LoadFile(WriteFile(R"(
select:
  pids: [10, 20]
  exe: nginx
  ports: [8080]
output: [tree, otlp]
output_file: /tmp/x.jsonl
capture:
  payload_bytes: 2048
  redact_query: false
  shed_under_load: false
metrics:
  address: 127.0.0.1:9464
log_level: debug
)")),
            std::nullopt);
  const RunSettings& r = s.run();
  EXPECT_EQ(r.pids, std::vector<pid_t>({10, 20}));
  EXPECT_EQ(r.exe_names, std::vector<std::string>({"nginx"}));
  EXPECT_EQ(r.ports, std::vector<uint16_t>({8080}));
  EXPECT_EQ(r.outputs, std::vector<std::string>({"tree", "otlp"}));
  EXPECT_EQ(r.output_file, "/tmp/x.jsonl");
  EXPECT_EQ(r.payload_bytes, 2048u);
  EXPECT_FALSE(r.redact_query);
  EXPECT_FALSE(r.shed);
  EXPECT_EQ(r.metrics_address, "127.0.0.1:9464");
  EXPECT_EQ(r.log_level, "debug");
}

TEST_F(SettingsTest, HeadersAndResourceMapsBecomeEncodedLists) {
  Settings s(FakeEnv());
  ASSERT_EQ(s.LoadFile(WriteFile("otlp:\n  headers:\n    api-key: a,b=c\n"
                                 "resource:\n  attributes:\n    deployment.environment.name: prod\n")),
            std::nullopt);
  EXPECT_EQ(s.Get("OTEL_EXPORTER_OTLP_HEADERS"), "api-key=a%2Cb%3Dc");
  std::vector<std::pair<std::string, std::string>> attrs;
  ASSERT_EQ(ParseResourceAttributes(*s.Get("OTEL_RESOURCE_ATTRIBUTES"), &attrs), std::nullopt);
  ASSERT_EQ(attrs.size(), 1u);
  EXPECT_EQ(attrs[0].first, "deployment.environment.name");
  EXPECT_EQ(attrs[0].second, "prod");
}

TEST_F(SettingsTest, UnknownKeysAndBadFilesAreClearErrors) {
  Settings s(FakeEnv());
  auto err = s.LoadFile(WriteFile("otlp:\n  endpiont: x\n"));
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("otlp.endpiont"), std::string::npos) << *err;
  err = s.LoadFile(WriteFile("colour: blue\n"));
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("\"colour\""), std::string::npos) << *err;
  err = s.LoadFile("/nonexistent/hoptrace.yaml");
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("cannot read"), std::string::npos) << *err;
  err = s.LoadFile(WriteFile("select: [1, 2\n"));
  ASSERT_TRUE(err);
}

TEST(ResourceAttributesTest, ParsesDecodesAndRejectsMalformedLists) {
  std::vector<std::pair<std::string, std::string>> a;
  ASSERT_EQ(ParseResourceAttributes(" k1 = v1 ,k2=hello%20world,, ", &a), std::nullopt);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], std::make_pair(std::string("k1"), std::string("v1")));
  EXPECT_EQ(a[1], std::make_pair(std::string("k2"), std::string("hello world")));
  EXPECT_NE(ParseResourceAttributes("novalue", &a), std::nullopt);
  EXPECT_NE(ParseResourceAttributes("k=%zz", &a), std::nullopt);
  EXPECT_NE(ParseResourceAttributes("k=%4", &a), std::nullopt);
}

}  // namespace
}  // namespace hoptrace
