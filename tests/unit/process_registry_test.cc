// ProcessRegistry over a fake /proc tree (no root, no real processes), plus
// one check against the real /proc/self, and DeriveServiceName's rules.
#include "agent/process/process_registry.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace hoptrace {
namespace {

namespace fs = std::filesystem;

using Args = std::vector<std::string>;

// cmdline and environ: each string NUL-terminated, back to back.
std::string NulJoined(const Args& parts) {
  std::string out;
  for (const auto& p : parts) {
    out += p;
    out += '\0';
  }
  return out;
}

std::string Name(const std::string& exe, const Args& argv, const Args& env = {}) {
  return DeriveServiceName(exe, argv, env);
}

// --- DeriveServiceName -------------------------------------------------------

TEST(DeriveServiceNameTest, PythonScriptWithoutDirectoryOrExtension) {
  EXPECT_EQ(Name("python3", {"python3", "backend.py"}), "backend");
  EXPECT_EQ(Name("python3", {"/usr/bin/python3", "-u", "/srv/app/backend.py"}), "backend");
  EXPECT_EQ(Name("python3.11", {"python3", "backend.py", "--port", "8000"}), "backend");
  EXPECT_EQ(Name("python", {"python", "./manage"}), "manage");
}

TEST(DeriveServiceNameTest, PythonModuleKeepsDottedName) {
  EXPECT_EQ(Name("python3", {"python3", "-m", "http.server", "8000"}), "http.server");
  EXPECT_EQ(Name("python3", {"python3", "-um", "http.server"}), "http.server");
  EXPECT_EQ(Name("python3", {"python3", "-mhttp.server"}), "http.server");
  EXPECT_EQ(Name("python3.12", {"python3", "-O", "-m", "uvicorn", "main:app"}), "uvicorn");
}

TEST(DeriveServiceNameTest, PythonOptionValuesAreNotTheScript) {
  EXPECT_EQ(Name("python3", {"python3", "-W", "ignore", "-X", "dev", "app.py"}), "app");
  EXPECT_EQ(Name("python3", {"python3", "-Wignore", "app.py"}), "app");
  EXPECT_EQ(Name("python3", {"python3", "--check-hash-based-pycs", "never", "app.py"}), "app");
  EXPECT_EQ(Name("python3", {"python3", "--", "app.py"}), "app");
}

TEST(DeriveServiceNameTest, InlineCodeOrStdinFallsBackToExecutable) {
  EXPECT_EQ(Name("python3", {"python3", "-c", "import time; time.sleep(9)"}), "python3");
  EXPECT_EQ(Name("python3", {"python3", "-uc", "print(1)"}), "python3");
  EXPECT_EQ(Name("python3", {"python3", "-"}), "python3");
  EXPECT_EQ(Name("python3", {"python3"}), "python3");
  EXPECT_EQ(Name("node", {"node", "-e", "require('http').createServer().listen(80)"}), "node");
  EXPECT_EQ(Name("node", {"node", "--eval=1"}), "node");
  EXPECT_EQ(Name("ruby", {"ruby", "-e", "sleep"}), "ruby");
  EXPECT_EQ(Name("perl", {"perl", "-E", "say 1"}), "perl");
  EXPECT_EQ(Name("php8.2", {"php", "-r", "echo 1;"}), "php8.2");
  EXPECT_EQ(Name("bash", {"bash", "-c", "sleep 1; exec app"}), "bash");
  EXPECT_EQ(Name("bun", {"bun", "-e", "1"}), "bun");
}

TEST(DeriveServiceNameTest, NodeScripts) {
  EXPECT_EQ(Name("node", {"node", "server.js"}), "server");
  EXPECT_EQ(Name("nodejs", {"nodejs", "app.js"}), "app");
  EXPECT_EQ(Name("node", {"node", "--require", "dotenv/config", "dist/api.mjs"}), "api");
  EXPECT_EQ(Name("node", {"node", "-r", "ts-node/register", "src/worker.ts"}), "worker");
  EXPECT_EQ(Name("node", {"node", "--inspect=0.0.0.0:9229", "--max-old-space-size=512",
                          "/app/gateway.cjs"}),
            "gateway");
  // "node ." runs the package in the current directory: no name in argv.
  EXPECT_EQ(Name("node", {"node", "."}), "node");
}

TEST(DeriveServiceNameTest, JavaJarModuleAndMainClass) {
  EXPECT_EQ(Name("java", {"java", "-jar", "/opt/app.jar"}), "app");
  EXPECT_EQ(Name("java", {"java", "-Xmx1g", "-Dspring.profiles.active=prod", "-jar",
                          "/srv/orders-1.2.jar", "--server.port=8080"}),
            "orders-1.2");
  EXPECT_EQ(Name("java", {"java", "--add-opens=java.base/java.lang=ALL-UNNAMED", "-jar", "x.jar"}),
            "x");
  EXPECT_EQ(Name("java", {"java", "-cp", "lib/*:classes", "com.example.Server", "8080"}),
            "com.example.Server");
  EXPECT_EQ(Name("java", {"java", "@jvm.opts", "-classpath", "a.jar", "Main"}), "Main");
  EXPECT_EQ(Name("java", {"java", "-m", "com.shop/com.shop.Main"}), "com.shop");
  EXPECT_EQ(Name("java", {"java", "Hello.java"}), "Hello");
  EXPECT_EQ(Name("java", {"java", "-version"}), "java");
}

TEST(DeriveServiceNameTest, RubyPerlPhpScripts) {
  EXPECT_EQ(Name("ruby3.1", {"ruby", "-rbundler/setup", "-I", "lib", "app.rb"}), "app");
  EXPECT_EQ(Name("perl5.36.0", {"perl", "-I", "lib", "-MStrict", "/opt/script.pl"}), "script");
  EXPECT_EQ(Name("php8.2", {"php", "-d", "memory_limit=1G", "index.php"}), "index");
  EXPECT_EQ(Name("php", {"php", "-f", "/var/www/cron.php"}), "cron");
  EXPECT_EQ(Name("php", {"php", "-S", "0.0.0.0:8000", "-t", "public", "router.php"}), "router");
}

TEST(DeriveServiceNameTest, ShellScripts) {
  EXPECT_EQ(Name("bash", {"bash", "-o", "pipefail", "/opt/start.sh"}), "start");
  EXPECT_EQ(Name("dash", {"sh", "-e", "run.sh", "arg"}), "run");
  EXPECT_EQ(Name("bash", {"bash", "+o", "history", "-x", "deploy"}), "deploy");
  EXPECT_EQ(Name("bash", {"-bash"}), "bash");
}

TEST(DeriveServiceNameTest, DenoAndBunSkipRunSubcommand) {
  EXPECT_EQ(Name("deno", {"deno", "run", "--allow-net", "server.ts"}), "server");
  EXPECT_EQ(Name("deno", {"deno", "run", "-c", "deno.json", "main.ts"}), "main");
  EXPECT_EQ(Name("deno", {"deno", "serve", "api.ts"}), "api");
  EXPECT_EQ(Name("deno", {"deno", "fmt"}), "deno");
  EXPECT_EQ(Name("bun", {"bun", "run", "app.ts"}), "app");
  EXPECT_EQ(Name("bun", {"bun", "--hot", "server.ts"}), "server");
  EXPECT_EQ(Name("bun", {"bun", "install"}), "bun");
}

TEST(DeriveServiceNameTest, NonInterpreterUsesExecutableName) {
  EXPECT_EQ(Name("nginx", {"nginx: master process /usr/sbin/nginx -g daemon off;"}), "nginx");
  EXPECT_EQ(Name("envoy", {"envoy", "-c", "/etc/envoy.yaml"}), "envoy");
  // Not an interpreter running a script, despite the prefix.
  EXPECT_EQ(Name("php-fpm8.2", {"php-fpm8.2", "--fpm-config", "/etc/php/fpm.conf"}), "php-fpm8.2");
  EXPECT_EQ(Name("shellcheck", {"shellcheck", "x.sh"}), "shellcheck");
}

TEST(DeriveServiceNameTest, Argv0DecidesWhenExecutableIsUnknown) {
  EXPECT_EQ(Name("", {"/usr/bin/python3", "backend.py"}), "backend");
  EXPECT_EQ(Name("", {"/usr/sbin/haproxy", "-f", "x.cfg"}), "haproxy");
  EXPECT_EQ(Name("", {}), "unknown_service");
}

TEST(DeriveServiceNameTest, OtelServiceNameWins) {
  const Args env = {"PATH=/bin", "OTEL_RESOURCE_ATTRIBUTES=service.name=other",
                    "OTEL_SERVICE_NAME=checkout"};
  EXPECT_EQ(Name("python3", {"python3", "backend.py"}, env), "checkout");
  EXPECT_EQ(Name("nginx", {"nginx"}, {"OTEL_SERVICE_NAME=edge proxy"}), "edge proxy");
}

TEST(DeriveServiceNameTest, EmptyOrLookAlikeOtelServiceNameIsIgnored) {
  EXPECT_EQ(Name("nginx", {"nginx"}, {"OTEL_SERVICE_NAME="}), "nginx");
  EXPECT_EQ(Name("nginx", {"nginx"}, {"OTEL_SERVICE_NAME_X=a", "XOTEL_SERVICE_NAME=b"}), "nginx");
  // First definition wins, as getenv() in the process sees it.
  EXPECT_EQ(Name("nginx", {"nginx"}, {"OTEL_SERVICE_NAME=a", "OTEL_SERVICE_NAME=b"}), "a");
}

TEST(DeriveServiceNameTest, ServiceNameFromOtelResourceAttributes) {
  EXPECT_EQ(Name("java", {"java", "-jar", "app.jar"},
                 {"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod,service.name=cart"}),
            "cart");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES= service.name = checkout%20api%2Cv2 "}),
            "checkout api,v2");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES=service.name=a,,team=b,"}), "a");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES=service.name=a,service.name=b"}), "b");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES=service.namespace=shop"}), "x");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES=service.name="}), "x");
}

// "In case of any error, e.g. failure during the decoding process, the entire
// environment variable value SHOULD be discarded".
TEST(DeriveServiceNameTest, MalformedOtelResourceAttributesAreDiscardedWhole) {
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES=service.name=a%zz"}), "x");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES=service.name=a%2"}), "x");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES=garbage,service.name=a"}), "x");
  EXPECT_EQ(Name("x", {"x"}, {"OTEL_RESOURCE_ATTRIBUTES==v,service.name=a"}), "x");
}

// --- ProcessRegistry over a fake /proc ---------------------------------------

constexpr char kDockerId[] = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";
constexpr char kBootId[] = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

// A throw-away directory laid out like /proc.
class FakeProc {
 public:
  FakeProc() {
    std::string tmpl = (fs::temp_directory_path() / "hoptrace_proc_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  ~FakeProc() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  FakeProc(const FakeProc&) = delete;
  FakeProc& operator=(const FakeProc&) = delete;

  const std::string& root() const { return root_; }

  void Write(const std::string& relative, const std::string& content) {
    const fs::path path = fs::path(root_) / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
  }
  void Write(pid_t pid, const std::string& file, const std::string& content) {
    Write(std::to_string(pid) + "/" + file, content);
  }
  // Like the kernel's magic link, the target need not exist here.
  void Exe(pid_t pid, const std::string& target) {
    const fs::path dir = fs::path(root_) / std::to_string(pid);
    fs::create_directories(dir);
    fs::create_symlink(target, dir / "exe");
  }
  // /proc/<pid>/stat with comm as given and field 22 (starttime) set.
  void Stat(pid_t pid, const std::string& comm, uint64_t starttime) {
    Write(pid, "stat",
          std::to_string(pid) + " (" + comm + ") S 1 100 100 0 -1 4194560 10 0 0 0 5 3 0 0 " +
              "20 0 1 0 " + std::to_string(starttime) +
              " 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0\n");
  }
  // The process the Python service test wants: every file a real one has.
  void AddPythonBackend(pid_t pid) {
    Write(pid, "comm", "python3\n");
    Exe(pid, "/usr/bin/python3.11");
    Write(pid, "cmdline", NulJoined({"python3", "-u", "/srv/app/backend.py", "--token", "s3cr3t"}));
    Write(pid, "environ", NulJoined({"PATH=/usr/bin", "DB_PASSWORD=hunter2", "LANG=C.UTF-8"}));
    Write(pid, "cgroup", std::string("0::/system.slice/docker-") + kDockerId + ".scope\n");
    Stat(pid, "python3", 987654);
    Write("sys/kernel/random/boot_id", std::string(kBootId) + "\n");
  }

 private:
  std::string root_;
};

std::string StringAttr(const Resource& r, std::string_view key) {
  const AttrValue* v = FindAttribute(r.attributes, key);
  if (v == nullptr) return "<absent>";
  const auto* s = std::get_if<std::string>(v);
  return s ? *s : "<not a string>";
}

std::vector<std::string> Keys(const Resource& r) {
  std::vector<std::string> keys;
  for (const auto& a : r.attributes) keys.push_back(std::string(a.key.view()));
  return keys;
}

TEST(ProcessRegistryTest, BuildsEveryResourceAttributeFromProc) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  ProcessRegistry registry("node-a", proc.root());

  const auto info = registry.Get(4242);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->pid, 4242);
  EXPECT_EQ(info->comm, "python3");
  EXPECT_EQ(info->executable_name, "python3.11");
  EXPECT_EQ(info->executable_path, "/usr/bin/python3.11");
  EXPECT_EQ(info->argv, (Args{"python3", "-u", "/srv/app/backend.py", "--token", "s3cr3t"}));
  EXPECT_EQ(info->service_name, "backend");
  EXPECT_EQ(info->container_id, kDockerId);

  ASSERT_NE(info->resource, nullptr);
  const Resource& r = *info->resource;
  EXPECT_EQ(Keys(r), (Args{"service.name", "service.instance.id", "host.name", "process.pid",
                           "process.parent_pid", "process.executable.name",
                           "process.executable.path", "process.command", "container.id"}));
  EXPECT_EQ(r.ServiceName(), "backend");
  // uuid.uuid5(UUID('4d63009a-8d0f-11ee-aad7-4c796ed8e320'),
  //            'node-a/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/4242/987654')
  EXPECT_EQ(StringAttr(r, "service.instance.id"), "0241663c-4c3d-5c5c-9e7d-f76c69a745d0");
  EXPECT_EQ(StringAttr(r, "host.name"), "node-a");
  const AttrValue* pid = FindAttribute(r.attributes, "process.pid");
  ASSERT_NE(pid, nullptr);
  ASSERT_TRUE(std::holds_alternative<int64_t>(*pid));
  EXPECT_EQ(std::get<int64_t>(*pid), 4242);
  EXPECT_EQ(StringAttr(r, "process.executable.name"), "python3.11");
  EXPECT_EQ(StringAttr(r, "process.executable.path"), "/usr/bin/python3.11");
  EXPECT_EQ(StringAttr(r, "process.command"), "python3");
  EXPECT_EQ(StringAttr(r, "container.id"), kDockerId);
}

TEST(ProcessRegistryTest, NeverExportsEnvironmentOrArguments) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  ProcessRegistry registry("node-a", proc.root());
  const auto info = registry.Get(4242);
  for (const auto& a : info->resource->attributes) {
    const auto* s = std::get_if<std::string>(&a.value);
    if (s == nullptr) continue;
    for (const char* secret : {"hunter2", "DB_PASSWORD", "s3cr3t", "--token", "-u"}) {
      EXPECT_EQ(s->find(secret), std::string::npos) << a.key << " = " << *s;
    }
  }
}

TEST(ProcessRegistryTest, ServiceNameFromProcessEnvironment) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  proc.Write(4242, "environ", NulJoined({"A=1", "OTEL_SERVICE_NAME=checkout"}));
  ProcessRegistry registry("node-a", proc.root());
  EXPECT_EQ(registry.Get(4242)->service_name, "checkout");
  EXPECT_EQ(registry.Get(4242)->resource->ServiceName(), "checkout");
}

TEST(ProcessRegistryTest, UnreadableEnvironIsSkipped) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  fs::remove(fs::path(proc.root()) / "4242" / "environ");
  ProcessRegistry registry("node-a", proc.root());
  EXPECT_EQ(registry.Get(4242)->service_name, "backend");
}

TEST(ProcessRegistryTest, UnreadableExeFallsBackToComm) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  fs::remove(fs::path(proc.root()) / "4242" / "exe");
  ProcessRegistry registry("node-a", proc.root());
  const auto info = registry.Get(4242);
  EXPECT_EQ(info->executable_name, "python3");
  EXPECT_EQ(info->executable_path, "");
  EXPECT_EQ(info->service_name, "backend");
  EXPECT_EQ(StringAttr(*info->resource, "process.executable.name"), "python3");
  EXPECT_EQ(StringAttr(*info->resource, "process.executable.path"), "<absent>");
}

TEST(ProcessRegistryTest, DeletedExecutableKeepsItsPath) {
  FakeProc proc;
  proc.Write(7, "comm", "api\n");
  proc.Exe(7, "/usr/local/bin/api (deleted)");
  proc.Stat(7, "api", 5);
  ProcessRegistry registry("h", proc.root());
  const auto info = registry.Get(7);
  EXPECT_EQ(info->executable_path, "/usr/local/bin/api");
  EXPECT_EQ(info->service_name, "api");
}

// Field 2 of stat is comm in parentheses; comm may hold ") (" and spaces.
TEST(ProcessRegistryTest, StartTimeIsReadPastAHostileComm) {
  FakeProc proc;
  proc.Write(4343, "comm", "a) (b c\n");
  proc.Stat(4343, "a) (b c", 1);
  ProcessRegistry registry(std::string(33, 'h'), proc.root());
  // uuid.uuid5(ns, 'h' * 33 + '//4343/1'): no boot_id file in this tree.
  EXPECT_EQ(StringAttr(*registry.Get(4343)->resource, "service.instance.id"),
            "78bd6845-f339-57af-af01-a6079a3cb4c1");
}

// Host names of several lengths put the SHA-1 padding in one block, across
// two, and over several blocks.
TEST(ProcessRegistryTest, InstanceIdIsUuidV5InTheOtelNamespace) {
  const std::pair<size_t, const char*> cases[] = {{33, "78bd6845-f339-57af-af01-a6079a3cb4c1"},
                                                  {100, "b7934357-7d17-571e-b699-1a0ed037db49"},
                                                  {200, "fa6b4e81-4d37-58e2-ab7b-026f33f4947b"}};
  FakeProc proc;
  proc.Write(4343, "comm", "x\n");
  proc.Stat(4343, "x", 1);
  for (const auto& [host_len, want] : cases) {
    ProcessRegistry registry(std::string(host_len, 'h'), proc.root());
    const std::string id = StringAttr(*registry.Get(4343)->resource, "service.instance.id");
    EXPECT_EQ(id, want) << "host name of " << host_len << " characters";
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '5') << "version nibble";
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << "RFC variant";
  }
}

TEST(ProcessRegistryTest, InstanceIdChangesWithStartTime) {
  FakeProc proc;
  proc.Write(10, "comm", "x\n");
  proc.Stat(10, "x", 1);
  ProcessRegistry registry("h", proc.root());
  const std::string first = StringAttr(*registry.Get(10)->resource, "service.instance.id");
  registry.Forget(10);
  proc.Stat(10, "x", 2);  // the pid was reused by a new process
  EXPECT_NE(StringAttr(*registry.Get(10)->resource, "service.instance.id"), first);
}

TEST(ProcessRegistryTest, ContainerIdFromEachRuntimeLayout) {
  const std::string id = kDockerId;
  const std::pair<std::string, std::string> cases[] = {
      {"0::/system.slice/docker-" + id + ".scope\n", id},
      {"12:memory:/docker/" + id + "\n11:cpu:/docker/" + id + "\n", id},
      {"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_7a8b_"
       "9c0d_1e2f3a4b5c6d.slice/cri-containerd-" +
           id + ".scope\n",
       id},
      {"11:cpu,cpuacct:/kubepods/burstable/pod1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d/" + id + "\n",
       id},
      {"0::/machine.slice/libpod-" + id + ".scope/container\n", id},
      {"0::/kubepods.slice/crio-" + id + ".scope\n", id},
      {"0::/system.slice/nginx.service\n", ""},
      {"0::/\n", ""},
      {"0::/docker/" + id.substr(1) + "\n", ""},      // 63 digits
      {"0::/docker/3F4E" + id.substr(4) + "\n", ""},  // not lower-case
      {"garbage without colons\n", ""},
  };
  for (const auto& [cgroup, want] : cases) {
    FakeProc proc;
    proc.Write(5, "comm", "app\n");
    proc.Write(5, "cgroup", cgroup);
    ProcessRegistry registry("h", proc.root());
    const auto info = registry.Get(5);
    EXPECT_EQ(info->container_id, want) << cgroup;
    EXPECT_EQ(StringAttr(*info->resource, "container.id"), want.empty() ? "<absent>" : want)
        << cgroup;
  }
}

// --- with the node's pods ----------------------------------------------------

constexpr char kPodUid[] = "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d";

// A process in container kDockerId of pod kPodUid (containerd, systemd driver).
void AddPodProcess(FakeProc& proc, pid_t pid, const Args& env = {}) {
  proc.Write(pid, "comm", "python3\n");
  proc.Exe(pid, "/usr/bin/python3.11");
  proc.Write(pid, "cmdline", NulJoined({"python3", "/app/server.py"}));
  proc.Write(pid, "environ", NulJoined(env));
  proc.Write(pid, "cgroup",
             std::string("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                         "1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/cri-containerd-") +
                 kDockerId + ".scope\n");
  proc.Stat(pid, "python3", 1234);
}

PodInfo CheckoutPod() {
  PodInfo pod;
  pod.uid = kPodUid;
  pod.name = "checkout-7d9f8c6b5-x2x4q";
  pod.namespace_name = "shop";
  pod.node_name = "node-a";
  pod.controller_kind = "ReplicaSet";
  pod.controller_name = "checkout-7d9f8c6b5";
  pod.owner_kind = "Deployment";
  pod.owner_name = "checkout";
  pod.containers[kDockerId] = "app";
  return pod;
}

TEST(ProcessRegistryTest, PodMetadataOnTheResource) {
  FakeProc proc;
  AddPodProcess(proc, 40);
  PodCache pods;
  pods.Upsert(CheckoutPod());
  ProcessRegistry registry("node-a", proc.root());
  registry.SetPods(&pods);
  const auto info = registry.Get(40);
  EXPECT_EQ(info->pod_uid, kPodUid);
  const Resource& r = *info->resource;
  EXPECT_EQ(StringAttr(r, "service.name"), "checkout");  // the workload: no label, no annotation
  EXPECT_EQ(StringAttr(r, "container.id"), kDockerId);
  EXPECT_EQ(StringAttr(r, "k8s.namespace.name"), "shop");
  EXPECT_EQ(StringAttr(r, "k8s.pod.name"), "checkout-7d9f8c6b5-x2x4q");
  EXPECT_EQ(StringAttr(r, "k8s.pod.uid"), kPodUid);
  EXPECT_EQ(StringAttr(r, "k8s.container.name"), "app");
  EXPECT_EQ(StringAttr(r, "k8s.node.name"), "node-a");
  EXPECT_EQ(StringAttr(r, "k8s.deployment.name"), "checkout");
  EXPECT_EQ(StringAttr(r, "process.executable.name"), "python3.11");
}

TEST(ProcessRegistryTest, PodThatAppearsAfterItsProcessNamesItOnTheNextGet) {
  FakeProc proc;
  AddPodProcess(proc, 41);
  PodCache pods;
  ProcessRegistry registry("node-a", proc.root());
  registry.SetPods(&pods);
  const auto before = registry.Get(41);
  EXPECT_EQ(StringAttr(*before->resource, "service.name"), "server");
  EXPECT_EQ(StringAttr(*before->resource, "k8s.pod.name"), "<absent>");
  EXPECT_EQ(StringAttr(*before->resource, "container.id"), kDockerId);
  pods.Upsert(CheckoutPod());
  const auto after = registry.Get(41);
  EXPECT_EQ(StringAttr(*after->resource, "service.name"), "checkout");
  EXPECT_EQ(StringAttr(*after->resource, "k8s.pod.name"), "checkout-7d9f8c6b5-x2x4q");
  // Same instance: the process did not change, only what is known of it.
  EXPECT_EQ(StringAttr(*after->resource, "service.instance.id"),
            StringAttr(*before->resource, "service.instance.id"));
  // Nothing changed since: the same resource object, no rebuild per span.
  EXPECT_EQ(registry.Get(41)->resource, after->resource);
}

TEST(ProcessRegistryTest, ProcessOwnServiceNameOutranksThePod) {
  FakeProc proc;
  AddPodProcess(proc, 42, {"OTEL_SERVICE_NAME=payments"});
  PodCache pods;
  PodInfo pod = CheckoutPod();
  pod.service_name_annotation = "from-annotation";
  pods.Upsert(pod);
  ProcessRegistry registry("node-a", proc.root());
  registry.SetPods(&pods);
  const Resource& r = *registry.Get(42)->resource;
  EXPECT_EQ(StringAttr(r, "service.name"), "payments");
  EXPECT_EQ(StringAttr(r, "k8s.pod.name"), "checkout-7d9f8c6b5-x2x4q");
}

TEST(ProcessRegistryTest, OutsideKubernetesNoK8sAttributes) {
  FakeProc proc;
  AddPodProcess(proc, 43);
  ProcessRegistry registry("node-a", proc.root());  // no pod cache
  const Resource& r = *registry.Get(43)->resource;
  EXPECT_EQ(StringAttr(r, "service.name"), "server");
  EXPECT_EQ(StringAttr(r, "k8s.pod.uid"), "<absent>");
  EXPECT_EQ(StringAttr(r, "container.id"), kDockerId);
}

TEST(ProcessRegistryTest, ProcessCommandStopsAtRewrittenTitle) {
  FakeProc proc;
  proc.Write(6, "comm", "postgres\n");
  proc.Write(6, "cmdline", NulJoined({"postgres: alice shop 10.0.0.7(51234) idle"}));
  ProcessRegistry registry("h", proc.root());
  EXPECT_EQ(StringAttr(*registry.Get(6)->resource, "process.command"), "postgres:");
}

TEST(ProcessRegistryTest, GonePidGetsMinimalResourceAndIsCached) {
  FakeProc proc;
  ProcessRegistry registry("node-a", proc.root());
  const auto info = registry.Get(31337);
  ASSERT_NE(info, nullptr);
  ASSERT_NE(info->resource, nullptr);
  EXPECT_EQ(info->pid, 31337);
  EXPECT_EQ(info->service_name, "unknown_service");
  EXPECT_EQ(info->resource->attributes,
            (Attributes{{"service.name", std::string("unknown_service")},
                        {"host.name", std::string("node-a")},
                        {"process.pid", int64_t{31337}}}));
  EXPECT_EQ(registry.size(), 1u);
  EXPECT_EQ(registry.Get(31337), info);
}

// "read once from /proc and cached, so it is still known after the process
// has exited".
TEST(ProcessRegistryTest, CachesUntilForgotten) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  ProcessRegistry registry("node-a", proc.root());
  const auto first = registry.Get(4242);
  fs::remove_all(fs::path(proc.root()) / "4242");  // the process exits
  EXPECT_EQ(registry.Get(4242), first);
  EXPECT_EQ(registry.Get(4242)->service_name, "backend");
  EXPECT_EQ(registry.size(), 1u);

  registry.Forget(4242);
  EXPECT_EQ(registry.size(), 0u);
  EXPECT_EQ(registry.Get(4242)->service_name, "unknown_service");
}

// --- what the kernel said at exec or fork (KernelIdentity) --------------------

int64_t IntAttr(const Resource& r, std::string_view key) {
  const AttrValue* v = FindAttribute(r.attributes, key);
  if (v == nullptr) return -1;
  const auto* i = std::get_if<int64_t>(v);
  return i ? *i : -2;
}

// USER_HZ is 100 on every architecture we run on: 1 tick = 10 ms.
constexpr uint64_t kNsPerTick = 10'000'000;

KernelIdentity ExecOf(pid_t pid, std::string path, std::string comm) {
  KernelIdentity k;
  k.pid = pid;
  k.ppid = 4000;
  k.comm = std::move(comm);
  k.exec_path = std::move(path);
  k.start_boottime_ns = 987654 * kNsPerTick + 1234;
  k.cgroup_id = 77;
  return k;
}

TEST(ProcessRegistryKernelTest, NamesAProcessAlreadyGoneFromProc) {
  FakeProc proc;  // no /proc/5001: it exited before the agent read the event
  proc.Write("sys/kernel/random/boot_id", std::string(kBootId) + "\n");
  ProcessRegistry registry("node-a", proc.root());
  const auto info = registry.Learn(ExecOf(5001, "/opt/tools/htfast", "htfast"));

  EXPECT_EQ(info->service_name, "htfast");
  EXPECT_EQ(info->executable_name, "htfast");
  EXPECT_EQ(info->executable_path, "/opt/tools/htfast");
  EXPECT_EQ(info->ppid, 4000);
  EXPECT_EQ(info->cgroup_id, 77u);
  const Resource& r = *info->resource;
  EXPECT_EQ(Keys(r), (Args{"service.name", "service.instance.id", "host.name", "process.pid",
                           "process.parent_pid", "process.executable.name",
                           "process.executable.path", "process.command"}));
  EXPECT_EQ(r.ServiceName(), "htfast");
  EXPECT_EQ(IntAttr(r, "process.pid"), 5001);
  EXPECT_EQ(IntAttr(r, "process.parent_pid"), 4000);
  EXPECT_EQ(StringAttr(r, "process.executable.name"), "htfast");
  EXPECT_EQ(StringAttr(r, "process.executable.path"), "/opt/tools/htfast");
  EXPECT_EQ(StringAttr(r, "process.command"), "htfast");
  // Later lookups (the span builder's) get the kernel's identity, not a
  // fresh read of the empty /proc.
  EXPECT_EQ(registry.Get(5001), info);
}

TEST(ProcessRegistryKernelTest, InstanceIdFromKernelStartTimeEqualsTheOneFromProc) {
  FakeProc live;
  live.AddPythonBackend(4242);  // starttime 987654 ticks
  ProcessRegistry from_proc("node-a", live.root());
  FakeProc gone;
  gone.Write("sys/kernel/random/boot_id", std::string(kBootId) + "\n");
  ProcessRegistry from_kernel("node-a", gone.root());

  const std::string id = StringAttr(*from_proc.Get(4242)->resource, "service.instance.id");
  EXPECT_EQ(id, "0241663c-4c3d-5c5c-9e7d-f76c69a745d0");
  EXPECT_EQ(StringAttr(*from_kernel.Learn(ExecOf(4242, "/usr/bin/python3.11", "python3"))->resource,
                       "service.instance.id"),
            id);
}

TEST(ProcessRegistryKernelTest, EnvironmentIsReadWhenTheProcessIsLearntNotWhenItsSpanIsBuilt) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  proc.Write(4242, "environ", NulJoined({"A=1", "OTEL_SERVICE_NAME=checkout"}));
  ProcessRegistry registry("node-a", proc.root());
  registry.Learn(ExecOf(4242, "/usr/bin/python3", "python3"));
  // The process changes its mind, then exits: what it was at exec stands.
  proc.Write(4242, "environ", NulJoined({"OTEL_SERVICE_NAME=other"}));
  fs::remove_all(fs::path(proc.root()) / "4242");

  const auto info = registry.Get(4242);
  EXPECT_EQ(info->service_name, "checkout");
  EXPECT_EQ(info->resource->ServiceName(), "checkout");
  // /proc was there when learnt: its facts win over the kernel's.
  EXPECT_EQ(info->executable_path, "/usr/bin/python3.11");
  EXPECT_EQ(info->container_id, kDockerId);
  EXPECT_EQ(StringAttr(*info->resource, "process.command"), "python3");
}

TEST(ProcessRegistryKernelTest, ScriptNameReadFromCmdlineWhenLearnt) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  ProcessRegistry registry("node-a", proc.root());
  registry.Learn(ExecOf(4242, "/usr/bin/python3", "python3"));
  fs::remove_all(fs::path(proc.root()) / "4242");
  EXPECT_EQ(registry.Get(4242)->service_name, "backend");
}

TEST(ProcessRegistryKernelTest, ZombieWithoutExeOrCmdlineIsNamedByItsExecPath) {
  FakeProc proc;  // an exited, unreaped process: comm and stat, nothing else
  proc.Write(6001, "comm", "curl\n");
  proc.Stat(6001, "curl", 555);
  ProcessRegistry registry("h", proc.root());
  const auto info = registry.Learn(ExecOf(6001, "/usr/bin/curl", "curl"));
  EXPECT_EQ(info->service_name, "curl");
  EXPECT_EQ(StringAttr(*info->resource, "process.executable.name"), "curl");
  EXPECT_EQ(StringAttr(*info->resource, "process.executable.path"), "/usr/bin/curl");
  EXPECT_EQ(StringAttr(*info->resource, "process.command"), "curl");
  EXPECT_EQ(IntAttr(*info->resource, "process.parent_pid"), 1);  // from stat, not the kernel's
}

TEST(ProcessRegistryKernelTest, RelativeExecPathNamesButIsNoPath) {
  FakeProc proc;
  ProcessRegistry registry("h", proc.root());
  const auto info = registry.Learn(ExecOf(6002, "./bin/htfast", "htfast"));
  EXPECT_EQ(info->executable_name, "htfast");
  EXPECT_EQ(StringAttr(*info->resource, "process.executable.path"), "<absent>");
}

TEST(ProcessRegistryKernelTest, ChildSeenOnlyAtForkBorrowsItsParentsIdentity) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  proc.Write(4242, "environ", NulJoined({"OTEL_SERVICE_NAME=checkout"}));
  ProcessRegistry registry("node-a", proc.root());
  registry.Get(4242);
  KernelIdentity fork;
  fork.pid = 4243;  // gone already
  fork.ppid = 4242;
  fork.comm = "python3";
  const auto child = registry.Learn(fork);
  EXPECT_EQ(child->service_name, "checkout");
  EXPECT_EQ(child->executable_path, "/usr/bin/python3.11");
  EXPECT_EQ(IntAttr(*child->resource, "process.pid"), 4243);
  EXPECT_EQ(IntAttr(*child->resource, "process.parent_pid"), 4242);
  // No start time from a fork: no instance id rather than a wrong one.
  EXPECT_EQ(StringAttr(*child->resource, "service.instance.id"), "<absent>");

  // Then it execs: who it became replaces what it borrowed.
  const auto after = registry.Learn(ExecOf(4243, "/usr/bin/curl", "curl"));
  EXPECT_EQ(after->service_name, "curl");
  EXPECT_EQ(registry.Get(4243), after);
}

TEST(ProcessRegistryKernelTest, FirstSeenWithoutExecIsNamedByItsExecutable) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  ProcessRegistry registry("node-a", proc.root());
  registry.Get(4242);
  KernelIdentity seen;  // --port: first seen at its connect, gone since
  seen.pid = 4250;
  seen.ppid = 4242;
  seen.comm = "curl";
  seen.exe_name = "curl";
  seen.start_boottime_ns = 5 * kNsPerTick;
  const auto info = registry.Learn(seen);
  // Another program than its parent's: nothing borrowed.
  EXPECT_EQ(info->service_name, "curl");
  EXPECT_EQ(StringAttr(*info->resource, "process.executable.name"), "curl");
  EXPECT_EQ(StringAttr(*info->resource, "process.executable.path"), "<absent>");
  EXPECT_NE(StringAttr(*info->resource, "service.instance.id"), "<absent>");

  seen.pid = 4251;  // a forked worker of the backend, first seen at its connect
  seen.comm = "python3";
  seen.exe_name = "python3.11";
  EXPECT_EQ(registry.Learn(seen)->service_name, "backend");
}

TEST(ProcessRegistryKernelTest, ContainerOfAGoneProcessFromAnotherInItsCgroup) {
  FakeProc proc;
  proc.AddPythonBackend(4242);
  ProcessRegistry registry("node-a", proc.root());
  registry.Learn(ExecOf(4242, "/usr/bin/python3", "python3"));  // cgroup id 77
  const auto gone = registry.Learn(ExecOf(7001, "/usr/bin/curl", "curl"));
  EXPECT_EQ(StringAttr(*gone->resource, "container.id"), kDockerId);
  KernelIdentity elsewhere = ExecOf(7002, "/usr/bin/curl", "curl");
  elsewhere.cgroup_id = 78;
  EXPECT_EQ(StringAttr(*registry.Learn(elsewhere)->resource, "container.id"), "<absent>");
}

// --- the real /proc ----------------------------------------------------------

TEST(ProcessRegistryTest, ReadsOwnProcessFromRealProc) {
  ProcessRegistry registry("test-host");
  const auto info = registry.Get(getpid());
  ASSERT_NE(info, nullptr);
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  EXPECT_EQ(info->pid, getpid());
  EXPECT_EQ(info->executable_path, exe.string());
  EXPECT_EQ(info->executable_name, exe.filename().string());
  // comm is the executable name cut to 15 characters (TASK_COMM_LEN - 1).
  EXPECT_EQ(info->comm, exe.filename().string().substr(0, 15));
  ASSERT_FALSE(info->argv.empty());
  EXPECT_EQ(fs::path(info->argv[0]).filename(), exe.filename());
  const char* otel_name = getenv("OTEL_SERVICE_NAME");
  if (otel_name != nullptr && *otel_name != '\0') {
    EXPECT_EQ(info->service_name, otel_name);
  } else if (getenv("OTEL_RESOURCE_ATTRIBUTES") == nullptr) {
    EXPECT_EQ(info->service_name, exe.filename().string());
  }

  const Resource& r = *info->resource;
  EXPECT_EQ(StringAttr(r, "host.name"), "test-host");
  EXPECT_EQ(StringAttr(r, "process.executable.path"), exe.string());
  const std::string id = StringAttr(r, "service.instance.id");
  ASSERT_EQ(id.size(), 36u) << id;
  EXPECT_EQ(id[8], '-');
  EXPECT_EQ(id[14], '5');
  const AttrValue* pid = FindAttribute(r.attributes, "process.pid");
  ASSERT_NE(pid, nullptr);
  EXPECT_EQ(std::get<int64_t>(*pid), getpid());
  // Same process, same id: a second registry (an agent restart) agrees.
  ProcessRegistry again("test-host");
  EXPECT_EQ(StringAttr(*again.Get(getpid())->resource, "service.instance.id"), id);
}

}  // namespace
}  // namespace hoptrace
