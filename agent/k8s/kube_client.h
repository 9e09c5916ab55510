// A small Kubernetes API client over libcurl: GET and the streaming watch,
// authenticated with a bearer token (the pod's service account) and verified
// against a CA file. Just what the PodWatcher needs; not a general client.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace hoptrace {

struct KubeEndpoint {
  std::string server;      // "https://10.96.0.1:443"
  std::string token_file;  // read before every request: projected tokens rotate
  std::string ca_file;     // empty: the system's CA store
};

// The endpoint a pod finds itself in (the in-cluster config of client-go):
// KUBERNETES_SERVICE_HOST / _PORT and the service account's files. Nullopt
// outside Kubernetes.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;
std::optional<KubeEndpoint> InClusterEndpoint(
    const EnvLookup& env,
    const std::string& account_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

class KubeClient {
 public:
  struct Response {
    long status = 0;        // HTTP status; 0 when no response came
    std::string body;       // the body (for a watch: the unconsumed tail)
    std::string error;      // transport error, empty when a response came
  };

  explicit KubeClient(KubeEndpoint endpoint) : endpoint_(std::move(endpoint)) {}

  // GET path ("/api/v1/pods?..."), whole body.
  Response Get(const std::string& path, std::chrono::seconds timeout) const;

  // GET path as a watch stream: on_line for every line (one watch event) as
  // it arrives. Returns when the server ends the stream, on a transport
  // error, when no byte came for idle_timeout, or soon after stop is set.
  // A non-200 answer is returned with its body and no line is delivered.
  Response Stream(const std::string& path, const std::function<void(std::string_view)>& on_line,
                  const std::atomic<bool>& stop, std::chrono::seconds idle_timeout) const;

  const KubeEndpoint& endpoint() const { return endpoint_; }

 private:
  KubeEndpoint endpoint_;
};

}  // namespace hoptrace
