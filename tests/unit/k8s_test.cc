// The Kubernetes stage without a cluster: cgroup paths of every runtime and
// cgroup driver, the API's Pod JSON, the pod cache, owner resolution and the
// k8s resource attributes.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/k8s/cgroup_identity.h"
#include "agent/k8s/cgroup_namespace.h"
#include "agent/k8s/k8s_resource.h"
#include "agent/k8s/kube_client.h"
#include "agent/k8s/owner_resolver.h"
#include "agent/k8s/pod_cache.h"
#include "agent/k8s/pod_json.h"
#include "agent/k8s/pod_process_scanner.h"

namespace hoptrace {
namespace {

constexpr char kId[] = "3f4e8a1b2c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
constexpr char kUid[] = "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
constexpr char kUidSystemd[] = "1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d";

// --- cgroup paths -------------------------------------------------------------

struct CgroupCase {
  const char* what;
  std::string cgroup;  // /proc/<pid>/cgroup
  std::string container_id, pod_uid, unified;
};

TEST(CgroupIdentityTest, EveryRuntimeAndDriver) {
  const std::string id = kId, uid = kUid, su = kUidSystemd;
  const std::string burstable_slice = "/kubepods.slice/kubepods-burstable.slice/"
                                      "kubepods-burstable-pod" + su + ".slice";
  const CgroupCase cases[] = {
      {"containerd, systemd driver, cgroup v2", "0::" + burstable_slice + "/cri-containerd-" + id +
       ".scope\n", id, uid, burstable_slice + "/cri-containerd-" + id + ".scope"},
      {"CRI-O, systemd driver, cgroup v2", "0::/kubepods.slice/kubepods-pod" + su +
       ".slice/crio-" + id + ".scope\n", id, uid, "/kubepods.slice/kubepods-pod" + su +
       ".slice/crio-" + id + ".scope"},
      {"cri-dockerd, systemd driver, besteffort", "0::/kubepods.slice/kubepods-besteffort.slice/"
       "kubepods-besteffort-pod" + su + ".slice/docker-" + id + ".scope\n", id, uid,
       "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + su +
       ".slice/docker-" + id + ".scope"},
      {"containerd, cgroupfs driver, cgroup v1", "12:memory:/kubepods/burstable/pod" + uid + "/" +
       id + "\n11:cpu,cpuacct:/kubepods/burstable/pod" + uid + "/" + id + "\n1:name=systemd:/"
       "kubepods/burstable/pod" + uid + "/" + id + "\n", id, uid, ""},
      {"containerd, cgroupfs driver, cgroup v2, guaranteed", "0::/kubepods/pod" + uid + "/" + id +
       "\n", id, uid, "/kubepods/pod" + uid + "/" + id},
      {"CRI-O, cgroupfs driver", "0::/kubepods/besteffort/pod" + uid + "/crio-" + id + "\n", id,
       uid, "/kubepods/besteffort/pod" + uid + "/crio-" + id},
      {"containerd, systemd driver, cgroup v1 with runc's slice:prefix:id",
       "4:pids:" + burstable_slice + ":cri-containerd:" + id + "\n", id, uid, ""},
      {"hybrid v1 + v2 (systemd's unified line)", "5:memory:/kubepods/pod" + uid + "/" + id +
       "\n0::/kubepods/pod" + uid + "/" + id + "\n", id, uid, "/kubepods/pod" + uid + "/" + id},
      {"seen from the agent's own cgroup namespace", "0::/../../kubepods-burstable-pod" + su +
       ".slice/cri-containerd-" + id + ".scope\n", id, uid,
       "/../../kubepods-burstable-pod" + su + ".slice/cri-containerd-" + id + ".scope"},
      {"a static pod's 32-hex uid", "0::/kubepods/burstable/pod0123456789abcdef0123456789abcdef/"
       + id + "\n", id, "0123456789abcdef0123456789abcdef",
       "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + id},
      {"the pod's sandbox cgroup, no container yet", "0::" + burstable_slice + "\n", "", uid,
       burstable_slice},
      {"plain Docker, cgroup v2", "0::/system.slice/docker-" + id + ".scope\n", id, "",
       "/system.slice/docker-" + id + ".scope"},
      {"plain Docker, cgroup v1", "4:cpu:/docker/" + id + "\n", id, "", ""},
      {"Podman, with the container's own child cgroup", "0::/machine.slice/libpod-" + id +
       ".scope/container\n", id, "", "/machine.slice/libpod-" + id + ".scope/container"},
      {"CRI-O's conmon is not the container", "0::/kubepods.slice/kubepods-pod" + su +
       ".slice/crio-conmon-" + id + ".scope\n", "", uid, "/kubepods.slice/kubepods-pod" + su +
       ".slice/crio-conmon-" + id + ".scope"},
      {"a host service", "0::/system.slice/nginx.service\n", "", "", "/system.slice/nginx.service"},
      {"63 digits", "0::/docker/" + id.substr(1) + "\n", "", "", "/docker/" + id.substr(1)},
      {"upper case", "0::/docker/3F4E" + id.substr(4) + "\n", "", "",
       "/docker/3F4E" + id.substr(4)},
      {"a user's slice named like a pod", "0::/user.slice/mypod" + uid + ".slice\n", "", "",
       "/user.slice/mypod" + uid + ".slice"},
      {"garbage", "no colons here\n", "", "", ""},
  };
  for (const auto& c : cases) {
    const CgroupIdentity got = ParseCgroupFile(c.cgroup);
    EXPECT_EQ(got.container_id, c.container_id) << c.what;
    EXPECT_EQ(got.pod_uid, c.pod_uid) << c.what;
    EXPECT_EQ(got.unified_path, c.unified) << c.what;
  }
}

// --- Pod JSON -----------------------------------------------------------------

// A Pod as the API server returns it (trimmed to what is read, plus fields
// that must be ignored).
nlohmann::json ApiPod(const std::string& uid, const std::string& name,
                      const std::string& container_id) {
  return nlohmann::json::parse(R"({
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {
      "name": ")" + name + R"(", "namespace": "shop", "uid": ")" + uid + R"(",
      "resourceVersion": "4711",
      "labels": {"app.kubernetes.io/name": "checkout", "pod-template-hash": "7d9f8c6b5"},
      "annotations": {"resource.opentelemetry.io/service.name": "checkout-api",
                      "resource.opentelemetry.io/deployment.environment.name": "prod",
                      "kubectl.kubernetes.io/last-applied-configuration": "{}"},
      "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "x"},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8c6b5",
         "uid": "y", "controller": true, "blockOwnerDeletion": true}]
    },
    "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "shop:1"}]},
    "status": {
      "phase": "Running",
      "initContainerStatuses": [{"name": "migrate", "containerID": "containerd://)" +
                               std::string(64, 'a') + R"("}],
      "containerStatuses": [
        {"name": "app", "containerID": "containerd://)" + container_id + R"(", "ready": true},
        {"name": "sidecar", "ready": false}]
    }
  })");
}

TEST(PodJsonTest, ReadsWhatBecomesAttributes) {
  auto pod = PodFromJson(ApiPod(kUid, "checkout-7d9f8c6b5-x2x4q", kId));
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->uid, kUid);
  EXPECT_EQ(pod->name, "checkout-7d9f8c6b5-x2x4q");
  EXPECT_EQ(pod->namespace_name, "shop");
  EXPECT_EQ(pod->node_name, "node-a");
  EXPECT_EQ(pod->resource_version, "4711");
  EXPECT_EQ(pod->labels.at("app.kubernetes.io/name"), "checkout");
  EXPECT_EQ(pod->service_name_annotation, "checkout-api");
  EXPECT_EQ(pod->resource_annotations,
            (std::map<std::string, std::string>{{"deployment.environment.name", "prod"}}));
  EXPECT_EQ(pod->controller_kind, "ReplicaSet");
  EXPECT_EQ(pod->controller_name, "checkout-7d9f8c6b5");
  // A container not started yet has no id: it is not listed.
  EXPECT_EQ(pod->containers, (std::map<std::string, std::string>{
                                 {std::string(64, 'a'), "migrate"}, {kId, "app"}}));
}

TEST(PodJsonTest, RejectsWhatIsNotAPod) {
  EXPECT_FALSE(PodFromJson(nlohmann::json::parse(R"({"metadata": {"name": "x"}})")));
  EXPECT_FALSE(PodFromJson(nlohmann::json::parse(R"([1, 2])")));
  EXPECT_FALSE(PodFromJson(nlohmann::json::parse(R"({"metadata": 5})")));
  EXPECT_EQ(ContainerIdFromStatus("cri-o://abc"), "abc");
  EXPECT_EQ(ContainerIdFromStatus("docker://abc"), "abc");
}

// --- the pod cache ------------------------------------------------------------

PodInfo Pod(const std::string& uid, const std::string& name, const std::string& container_id) {
  PodInfo p;
  p.uid = uid;
  p.name = name;
  p.namespace_name = "shop";
  p.node_name = "node-a";
  if (!container_id.empty()) p.containers[container_id] = "app";
  return p;
}

TEST(PodCacheTest, FindsByContainerIdThenByPodUid) {
  PodCache cache;
  const uint64_t g0 = cache.generation();
  cache.Upsert(Pod("u1", "one", kId));
  EXPECT_NE(cache.generation(), g0);
  auto by_container = cache.Find(kId, "");
  ASSERT_TRUE(by_container);
  EXPECT_EQ(by_container->pod->name, "one");
  EXPECT_EQ(by_container->container_name, "app");
  // The container the API has not reported yet: the pod, no container name.
  auto by_uid = cache.Find(std::string(64, 'b'), "u1");
  ASSERT_TRUE(by_uid);
  EXPECT_EQ(by_uid->pod->name, "one");
  EXPECT_EQ(by_uid->container_name, "");
  EXPECT_FALSE(cache.Find(std::string(64, 'b'), "u2"));
}

TEST(PodCacheTest, DeletedPodStaysForItsGracePeriodOnly) {
  PodCache cache(16, std::chrono::seconds(30));
  const auto t0 = PodCache::Clock::time_point{} + std::chrono::hours(1);
  cache.Upsert(Pod("u1", "one", kId), t0);
  cache.Remove("u1", t0);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_TRUE(cache.Pods().empty());
  EXPECT_TRUE(cache.Find(kId, "")) << "late spans of a deleted pod keep its name";
  cache.Upsert(Pod("u2", "two", ""), t0 + std::chrono::seconds(31));
  EXPECT_FALSE(cache.Find(kId, "u1"));
}

TEST(PodCacheTest, ReplaceDropsPodsTheListNoLongerHas) {
  PodCache cache(16, std::chrono::seconds(0));
  cache.Upsert(Pod("u1", "one", kId));
  EXPECT_FALSE(cache.synced());
  cache.Replace({Pod("u2", "two", "")});
  EXPECT_TRUE(cache.synced());
  EXPECT_FALSE(cache.Find(kId, "u1"));
  ASSERT_TRUE(cache.Find("", "u2"));
  EXPECT_EQ(cache.size(), 1u);
}

TEST(PodCacheTest, UpdateMovesContainerIds) {
  PodCache cache;
  cache.Upsert(Pod("u1", "one", kId));
  // The container restarted: a new id, the old one is gone.
  cache.Upsert(Pod("u1", "one", std::string(64, 'c')));
  EXPECT_FALSE(cache.Find(kId, ""));
  EXPECT_TRUE(cache.Find(std::string(64, 'c'), ""));
}

TEST(PodCacheTest, BoundedAndCountsWhatItDrops) {
  PodCache cache(2);
  cache.Upsert(Pod("u1", "one", ""));
  cache.Upsert(Pod("u2", "two", ""));
  cache.Upsert(Pod("u3", "three", ""));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.dropped(), 1u);
  EXPECT_FALSE(cache.Find("", "u3"));
  cache.Upsert(Pod("u2", "two-updated", ""));  // an update of a kept pod is not a new one
  EXPECT_EQ(cache.Find("", "u2")->pod->name, "two-updated");
  EXPECT_EQ(cache.dropped(), 1u);
}

// --- owners -------------------------------------------------------------------

TEST(OwnerResolverTest, ReplicaSetToDeploymentOnceThenCached) {
  int gets = 0;
  OwnerResolver owners([&](const std::string& path) -> std::optional<std::string> {
    ++gets;
    EXPECT_EQ(path, "/apis/apps/v1/namespaces/shop/replicasets/checkout-7d9f8c6b5");
    return R"({"kind":"ReplicaSet","metadata":{"name":"checkout-7d9f8c6b5","ownerReferences":[
              {"kind":"Deployment","name":"checkout","controller":true}]}})";
  });
  for (int i = 0; i < 3; ++i) {
    auto pod = PodFromJson(ApiPod("u" + std::to_string(i), "p", kId));
    owners.Resolve(&*pod);
    EXPECT_EQ(pod->owner_kind, "Deployment");
    EXPECT_EQ(pod->owner_name, "checkout");
  }
  EXPECT_EQ(gets, 1);
}

TEST(OwnerResolverTest, WithoutTheReplicaSetTheTemplateHashTells) {
  OwnerResolver owners([](const std::string&) { return std::nullopt; });
  auto pod = PodFromJson(ApiPod(kUid, "p", kId));
  owners.Resolve(&*pod);
  EXPECT_EQ(pod->owner_kind, "Deployment");
  EXPECT_EQ(pod->owner_name, "checkout");
  EXPECT_EQ(owners.failures(), 1u);
  // A bare ReplicaSet (no hash label) stays one.
  pod->labels.clear();
  owners.Resolve(&*pod);
  EXPECT_EQ(pod->owner_kind, "ReplicaSet");
}

TEST(OwnerResolverTest, JobToCronJobAndDirectOwners) {
  OwnerResolver owners([](const std::string& path) -> std::optional<std::string> {
    if (path != "/apis/batch/v1/namespaces/shop/jobs/nightly-29000000") return std::nullopt;
    return R"({"metadata":{"ownerReferences":[
              {"kind":"CronJob","name":"nightly","controller":true}]}})";
  });
  PodInfo job = Pod("u1", "nightly-29000000-abcde", "");
  job.controller_kind = "Job";
  job.controller_name = "nightly-29000000";
  owners.Resolve(&job);
  EXPECT_EQ(job.owner_kind, "CronJob");
  EXPECT_EQ(job.owner_name, "nightly");
  PodInfo sts = Pod("u2", "db-0", "");
  sts.controller_kind = "StatefulSet";
  sts.controller_name = "db";
  owners.Resolve(&sts);
  EXPECT_EQ(sts.owner_kind, "StatefulSet");
  EXPECT_EQ(sts.owner_name, "db");
}

// --- attributes and service.name --------------------------------------------

std::string Attr(const Attributes& attrs, std::string_view key) {
  const AttrValue* v = FindAttribute(attrs, key);
  if (v == nullptr) return "<absent>";
  const auto* s = std::get_if<std::string>(v);
  return s != nullptr ? *s : "<not a string>";
}

TEST(K8sResourceTest, ConventionAttributesOfADeploymentPod) {
  auto pod = PodFromJson(ApiPod(kUid, "checkout-7d9f8c6b5-x2x4q", kId));
  pod->owner_kind = "Deployment";
  pod->owner_name = "checkout";
  Attributes attrs = {{"service.name", "mine"}};
  AddKubernetesAttributes(PodMatch{std::make_shared<PodInfo>(*pod), "app"}, attrs);
  EXPECT_EQ(Attr(attrs, "k8s.namespace.name"), "shop");
  EXPECT_EQ(Attr(attrs, "k8s.pod.name"), "checkout-7d9f8c6b5-x2x4q");
  EXPECT_EQ(Attr(attrs, "k8s.pod.uid"), kUid);
  EXPECT_EQ(Attr(attrs, "k8s.container.name"), "app");
  EXPECT_EQ(Attr(attrs, "k8s.node.name"), "node-a");
  EXPECT_EQ(Attr(attrs, "k8s.deployment.name"), "checkout");
  EXPECT_EQ(Attr(attrs, "k8s.replicaset.name"), "checkout-7d9f8c6b5");
  EXPECT_EQ(Attr(attrs, "deployment.environment.name"), "prod");
  EXPECT_EQ(Attr(attrs, "service.name"), "mine");  // present keys are kept
  EXPECT_EQ(Attr(attrs, "k8s.statefulset.name"), "<absent>");
}

TEST(K8sResourceTest, ServiceNamePrecedence) {
  auto info = std::make_shared<PodInfo>(Pod("u1", "web-0", kId));
  PodMatch m{info, "nginx"};
  EXPECT_EQ(KubernetesServiceName(m), "nginx");  // container name
  info->owner_kind = "StatefulSet";
  info->owner_name = "web";
  EXPECT_EQ(KubernetesServiceName(m), "web");  // workload over container
  info->labels["app.kubernetes.io/name"] = "storefront";
  EXPECT_EQ(KubernetesServiceName(m), "storefront");  // label over workload
  info->service_name_annotation = "storefront-edge";
  EXPECT_EQ(KubernetesServiceName(m), "storefront-edge");  // annotation over all
  PodMatch bare{std::make_shared<PodInfo>(Pod("u2", "lonely", "")), ""};
  EXPECT_EQ(KubernetesServiceName(bare), "lonely");
}

// --- selection by pod: the /proc scan --------------------------------------------

class FakeProcCgroups {
 public:
  FakeProcCgroups() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hoptrace_k8s_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  ~FakeProcCgroups() { std::filesystem::remove_all(root_); }
  void Process(int pid, const std::string& cgroup) {
    std::filesystem::create_directories(root_ + "/" + std::to_string(pid));
    std::ofstream(root_ + "/" + std::to_string(pid) + "/cgroup") << cgroup;
  }
  void Exit(int pid) { std::filesystem::remove_all(root_ + "/" + std::to_string(pid)); }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

std::string ContainerdCgroup(const std::string& id) {
  return "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
         std::string(kUidSystemd) + ".slice/cri-containerd-" + id + ".scope\n";
}

TEST(PodProcessScannerTest, SelectsProcessesOfSelectedContainersOnce) {
  const std::string shop(64, '1'), system(64, '2'), later(64, '3');
  FakeProcCgroups proc;
  proc.Process(10, ContainerdCgroup(shop));
  proc.Process(11, ContainerdCgroup(shop));   // a second process of the container
  proc.Process(12, ContainerdCgroup(system));
  proc.Process(13, ContainerdCgroup(later));
  proc.Process(14, "0::/system.slice/sshd.service\n");
  proc.Process(99, ContainerdCgroup(shop));  // the agent itself
  PodCache pods;
  PodInfo a = Pod("u-shop", "web-1", shop);
  PodInfo b = Pod("u-sys", "dns-1", system);
  b.namespace_name = "kube-system";
  pods.Upsert(a);
  pods.Upsert(b);
  PodSelection sel;
  sel.include.push_back(PodSelector{});
  sel.exclude.push_back(PodSelector{{"kube-system"}, {}, {}, {}});
  PodProcessScanner scanner(&pods, sel, 99, proc.root());
  auto found = scanner.Scan();
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<pid_t>{10, 11}));
  EXPECT_EQ(scanner.selected(), 2u);
  EXPECT_TRUE(scanner.Scan().empty()) << "selected once, not on every scan";
  // The pod of 13 arrives: 13 is selected on the next scan.
  pods.Upsert(Pod("u-later", "late-1", later));
  EXPECT_EQ(scanner.Scan(), std::vector<pid_t>{13});
  proc.Exit(10);
  scanner.Scan();
  EXPECT_EQ(scanner.selected(), 2u);  // 11 and 13
}

TEST(PodProcessScannerTest, ExecOfAProcessInASelectedContainerSelectsItAtOnce) {
  const std::string shop(64, '4'), system(64, '5');
  FakeProcCgroups proc;
  PodCache pods;
  PodInfo b = Pod("u-sys", "dns-1", system);
  b.namespace_name = "kube-system";
  pods.Upsert(Pod("u-shop", "web-1", shop));
  pods.Upsert(b);
  PodSelection sel;
  sel.include.push_back(PodSelector{});
  sel.exclude.push_back(PodSelector{{"kube-system"}, {}, {}, {}});
  PodProcessScanner scanner(&pods, sel, 99, proc.root());
  EXPECT_TRUE(scanner.Scan().empty());
  EXPECT_TRUE(scanner.SelectedCgroups().empty());
  proc.Process(20, ContainerdCgroup(shop));
  proc.Process(21, ContainerdCgroup(system));
  EXPECT_TRUE(scanner.Consider(20));
  EXPECT_FALSE(scanner.Consider(21)) << "kube-system is excluded";
  EXPECT_FALSE(scanner.Consider(20)) << "selected already: a second exec changes nothing";
  EXPECT_FALSE(scanner.Consider(77)) << "gone before it was read";
  EXPECT_EQ(scanner.selected(), 1u);
  // Propagation's scope: the selected container's own cgroup, once.
  proc.Process(22, ContainerdCgroup(shop));
  EXPECT_TRUE(scanner.Consider(22));
  const auto cgroups = scanner.SelectedCgroups();
  ASSERT_EQ(cgroups.size(), 1u);
  EXPECT_NE(cgroups[0].find("cri-containerd-" + shop + ".scope"), std::string::npos);
  EXPECT_TRUE(scanner.Scan().empty()) << "the resync finds nothing new";
  proc.Exit(20);
  proc.Exit(22);
  scanner.Scan();
  EXPECT_TRUE(scanner.SelectedCgroups().empty()) << "no selected process left in it";
}

TEST(CgroupNamespaceTest, NormalizesPathsReadFromAnotherNamespace) {
  EXPECT_EQ(NormalizeCgroupPath("/a/b/../../kubepods.slice/x.scope"), "/kubepods.slice/x.scope");
  EXPECT_EQ(NormalizeCgroupPath("/../../.."), "/");
  EXPECT_EQ(NormalizeCgroupPath("/kubepods/pod1/../pod2/c//"), "/kubepods/pod2/c");
  EXPECT_EQ(NormalizeCgroupPath(""), "/");
}

TEST(CgroupNamespaceTest, FindsTheAgentsNamespaceRootByItsOwnPid) {
  FakeProcCgroups host;  // a directory tree standing for the host's cgroup v2 root
  const std::string agent = "/kubepods.slice/kubepods-podA.slice/cri-containerd-a.scope";
  std::filesystem::create_directories(host.root() + agent);
  std::filesystem::create_directories(host.root() + "/kubepods.slice/kubepods-podB.slice/b");
  std::ofstream(host.root() + "/kubepods.slice/kubepods-podB.slice/b/cgroup.procs") << "7\n8\n";
  std::ofstream(host.root() + agent + "/cgroup.procs") << "41\n42\n";
  // In its own namespace the agent is at its root ("0::/").
  EXPECT_EQ(FindNamespaceRoot(host.root(), 42, "/"), agent);
  // ... or below it.
  EXPECT_EQ(FindNamespaceRoot(host.root(), 42, "/cri-containerd-a.scope"),
            "/kubepods.slice/kubepods-podA.slice");
  EXPECT_EQ(FindNamespaceRoot(host.root(), 43, "/"), std::nullopt) << "not there";
  // A pod's process read from the agent's namespace, resolved to its host path.
  EXPECT_EQ(NormalizeCgroupPath(agent + "/../../kubepods-podB.slice/b"),
            "/kubepods.slice/kubepods-podB.slice/b");
}

TEST(KubeClientTest, InClusterEndpointFromServiceEnvironment) {
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "KUBERNETES_SERVICE_HOST") return "10.96.0.1";
    if (name == "KUBERNETES_SERVICE_PORT") return "443";
    return std::nullopt;
  };
  auto ep = InClusterEndpoint(env, "/sa");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->server, "https://10.96.0.1:443");
  EXPECT_EQ(ep->token_file, "/sa/token");
  EXPECT_EQ(ep->ca_file, "/sa/ca.crt");
  auto v6 = InClusterEndpoint([](std::string_view n) -> std::optional<std::string> {
    return n == "KUBERNETES_SERVICE_HOST" ? "fd00::1" : "6443";
  });
  EXPECT_EQ(v6->server, "https://[fd00::1]:6443");
  EXPECT_FALSE(InClusterEndpoint([](std::string_view) { return std::nullopt; }));
}

}  // namespace
}  // namespace hoptrace
