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

TEST_F(SettingsTest, KubernetesSectionAndDiscoveryLists) {
  Settings s(FakeEnv());
  ASSERT_EQ(s.LoadFile(WriteFile(R"(kubernetes:
  enabled: true
  node_name: node-a
  api_server: https://127.0.0.1:6443
  token_file: /tmp/token
  ca_file: /tmp/ca.crt
  max_pods: 500
discovery:
  include:
    - namespace: [shop, "pay-*"]
      pod_labels: {app.kubernetes.io/part-of: store}
    - workload: checkout
      container: app
  exclude:
    - namespace: kube-system
)")),
            std::nullopt);
  const auto& k = s.run().kubernetes;
  EXPECT_EQ(k.mode, "on");
  EXPECT_EQ(k.max_pods, 500u);
  ASSERT_EQ(s.run().discovery.include.size(), 2u);
  const PodSelector& first = s.run().discovery.include[0];
  EXPECT_EQ(first.namespaces, (std::vector<std::string>{"shop", "pay-*"}));
  EXPECT_EQ(first.labels,
            (std::map<std::string, std::string>{{"app.kubernetes.io/part-of", "store"}}));
  EXPECT_EQ(s.run().discovery.include[1].workloads, std::vector<std::string>{"checkout"});
  EXPECT_EQ(s.run().discovery.include[1].containers, std::vector<std::string>{"app"});
  ASSERT_EQ(s.run().discovery.exclude.size(), 1u);
  EXPECT_EQ(s.run().discovery.exclude[0].namespaces, std::vector<std::string>{"kube-system"});

  std::string error;
  auto target = s.Kubernetes(&error);
  ASSERT_TRUE(target) << error;
  EXPECT_EQ(target->endpoint.server, "https://127.0.0.1:6443");
  EXPECT_EQ(target->endpoint.token_file, "/tmp/token");
  EXPECT_EQ(target->endpoint.ca_file, "/tmp/ca.crt");
  EXPECT_EQ(target->node_name, "node-a");
}

TEST_F(SettingsTest, DiscoveryRejectsUnknownKeysAndShapes) {
  Settings s(FakeEnv());
  auto err = s.LoadFile(WriteFile("discovery:\n  include:\n    - namespaces: shop\n"));
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("discovery.include[].namespaces"), std::string::npos) << *err;
  err = s.LoadFile(WriteFile("discovery:\n  include: {namespace: shop}\n"));
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("\"discovery.include\" must be a list"), std::string::npos) << *err;
  err = s.LoadFile(WriteFile("kubernetes:\n  node: x\n"));
  ASSERT_TRUE(err);
  EXPECT_NE(err->find("kubernetes.node"), std::string::npos) << *err;
}

TEST_F(SettingsTest, KubernetesInClusterFromEnvironment) {
  Settings s(FakeEnv());
  std::string error, warning;
  // Outside Kubernetes nothing changes.
  EXPECT_FALSE(s.Kubernetes(&error, &warning));
  EXPECT_EQ(error, "");
  EXPECT_EQ(warning, "");
  env_["KUBERNETES_SERVICE_HOST"] = "10.96.0.1";
  env_["KUBERNETES_SERVICE_PORT"] = "443";
  // In a pod without NODE_NAME: off with a warning (it would watch the whole cluster).
  EXPECT_FALSE(s.Kubernetes(&error, &warning));
  EXPECT_EQ(error, "");
  EXPECT_NE(warning.find("NODE_NAME"), std::string::npos);
  env_["NODE_NAME"] = "node-b";
  auto t = s.Kubernetes(&error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->endpoint.server, "https://10.96.0.1:443");
  EXPECT_EQ(t->endpoint.token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
  EXPECT_EQ(t->node_name, "node-b");
  env_["NODE_NAME"] = "node-b&watch=false";
  EXPECT_FALSE(s.Kubernetes(&error));
  EXPECT_NE(error.find("not a Kubernetes node name"), std::string::npos) << error;
  env_["NODE_NAME"] = "node-b";
  s.run().kubernetes.mode = "off";
  EXPECT_FALSE(s.Kubernetes(&error));
  env_.clear();
  s.run().kubernetes.mode = "on";
  EXPECT_FALSE(s.Kubernetes(&error));
  EXPECT_NE(error.find("no API server"), std::string::npos) << error;
}

TEST_F(SettingsTest, SelectorFlagsBecomeOneSelector) {
  PodSelector sel;
  ASSERT_EQ(PodSelectorFromFlags({"shop"}, {"tier=web", "team=a=b"}, {"checkout"}, {"app"}, &sel),
            std::nullopt);
  EXPECT_EQ(sel.namespaces, std::vector<std::string>{"shop"});
  EXPECT_EQ(sel.labels, (std::map<std::string, std::string>{{"tier", "web"}, {"team", "a=b"}}));
  EXPECT_EQ(sel.workloads, std::vector<std::string>{"checkout"});
  EXPECT_EQ(sel.containers, std::vector<std::string>{"app"});
  EXPECT_TRUE(PodSelectorFromFlags({}, {"novalue"}, {}, {}, &sel).has_value());
  EXPECT_TRUE(PodSelectorFromFlags({}, {"=x"}, {}, {}, &sel).has_value());
}

TEST(PodSelectionTest, IncludeThenExcludeWithGlobs) {
  PodInfo pod;
  pod.name = "checkout-abc-x";
  pod.namespace_name = "shop";
  pod.owner_name = "checkout";
  pod.labels = {{"tier", "web"}};
  PodSelection sel;
  EXPECT_FALSE(sel.Selects(pod, "app")) << "no include: nothing";
  sel.include.push_back(PodSelector{});
  EXPECT_TRUE(sel.Selects(pod, "app")) << "an empty selector is every pod";
  sel.include[0].namespaces = {"sh*"};
  sel.include[0].labels = {{"tier", "web"}};
  EXPECT_TRUE(sel.Selects(pod, "app"));
  sel.include[0].labels = {{"tier", "db"}};
  EXPECT_FALSE(sel.Selects(pod, "app"));
  sel.include[0].labels.clear();
  sel.include[0].containers = {"app"};
  EXPECT_TRUE(sel.Selects(pod, "app"));
  EXPECT_FALSE(sel.Selects(pod, "sidecar"));
  EXPECT_FALSE(sel.Selects(pod, "")) << "a container not known yet does not match a name";
  sel.exclude.push_back(PodSelector{{}, {}, {"check*"}, {}});
  EXPECT_FALSE(sel.Selects(pod, "app"));
  pod.owner_name.clear();  // a bare pod is its own workload
  pod.name = "debug";
  EXPECT_TRUE(sel.Selects(pod, "app"));
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
  tls: false
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
  EXPECT_FALSE(r.tls);
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
