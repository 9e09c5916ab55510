#include "agent/k8s/kube_client.h"

#include <curl/curl.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "agent/text_util.h"

namespace hoptrace {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

std::string ReadToken(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(Trim(ss.str()));
}

// What a transfer hands back to curl's callbacks.
struct Transfer {
  std::string buffer;
  const std::function<void(std::string_view)>* on_line = nullptr;
  const std::atomic<bool>* stop = nullptr;
  CURL* curl = nullptr;
  // The body of a response that is not 200 is kept whole for the caller.
  bool streaming_checked = false;
  bool streaming = false;
};

size_t OnData(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  t->buffer.append(data, size * n);
  if (t->on_line != nullptr) {
    if (!t->streaming_checked) {
      long status = 0;
      curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
      t->streaming = status == 200;
      t->streaming_checked = true;
    }
    if (t->streaming) {
      size_t start = 0;
      for (size_t nl; (nl = t->buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
        (*t->on_line)(std::string_view(t->buffer).substr(start, nl - start));
      }
      t->buffer.erase(0, start);
    }
  }
  // A response far larger than any list of one node's pods is not ours to
  // hold: abort it.
  constexpr size_t kMaxBody = 256u << 20;
  return t->buffer.size() > kMaxBody ? 0 : size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->stop != nullptr && t->stop->load() ? 1 : 0;
}

KubeClient::Response Perform(const KubeEndpoint& ep, const std::string& path, Transfer& t,
                             long timeout_s, long idle_timeout_s) {
  KubeClient::Response r;
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) {
    r.error = "curl_easy_init failed";
    return r;
  }
  t.curl = curl.get();
  const std::string url = ep.server + path;
  std::unique_ptr<curl_slist, SlistDeleter> headers(
      curl_slist_append(nullptr, "Accept: application/json"));
  if (const std::string token = ReadToken(ep.token_file); !token.empty()) {
    headers.reset(curl_slist_append(headers.release(), ("Authorization: Bearer " + token).c_str()));
  }
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "hoptrace/" HOPTRACE_VERSION);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  // The API server is reached directly, as client-go does in a pod.
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  if (!ep.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ep.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  if (timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
  if (idle_timeout_s > 0) {
    // Below 1 byte/s for idle_timeout: the connection is dead (the server
    // sends bookmarks, or ends the watch, long before).
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, idle_timeout_s);
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
  r.body = std::move(t.buffer);
  return r;
}

}  // namespace

std::optional<KubeEndpoint> InClusterEndpoint(const EnvLookup& env,
                                              const std::string& account_dir) {
  auto host = env("KUBERNETES_SERVICE_HOST");
  auto port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port) return std::nullopt;
  KubeEndpoint ep;
  // An IPv6 service address needs brackets in a URL.
  const bool v6 = host->find(':') != std::string::npos;
  ep.server = "https://" + (v6 ? "[" + *host + "]" : *host) + ":" + *port;
  ep.token_file = account_dir + "/token";
  ep.ca_file = account_dir + "/ca.crt";
  return ep;
}

KubeClient::Response KubeClient::Get(const std::string& path, std::chrono::seconds timeout) const {
  Transfer t;
  return Perform(endpoint_, path, t, static_cast<long>(timeout.count()), 0);
}

KubeClient::Response KubeClient::Stream(const std::string& path,
                                        const std::function<void(std::string_view)>& on_line,
                                        const std::atomic<bool>& stop,
                                        std::chrono::seconds idle_timeout) const {
  Transfer t;
  t.on_line = &on_line;
  t.stop = &stop;
  return Perform(endpoint_, path, t, 0, static_cast<long>(idle_timeout.count()));
}

}  // namespace hoptrace
