#include "agent/k8s/pod_watcher.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <cctype>
#include <cstdio>
#include <random>

#include "agent/k8s/pod_json.h"

namespace hoptrace {
namespace {

constexpr std::chrono::seconds kRequestTimeout{30};
constexpr int kListPageSize = 500;

// The Status object's code in a failed answer or an ERROR event.
long StatusCode(const nlohmann::json& status) {
  auto it = status.find("code");
  return it != status.end() && it->is_number_integer() ? it->get<long>() : 0;
}

std::string ResourceVersionOf(const nlohmann::json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return {};
  auto rv = meta->find("resourceVersion");
  return rv != meta->end() && rv->is_string() ? rv->get<std::string>() : std::string();
}

// A list's continue token is opaque (base64): escape it for the query.
std::string QueryEscape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

PodWatcher::PodWatcher(KubeClient client, PodCache* cache, PodWatcherOptions options)
    : client_(std::move(client)),
      cache_(cache),
      options_(std::move(options)),
      owners_([this](const std::string& path) -> std::optional<std::string> {
        auto r = client_.Get(path, kRequestTimeout);
        if (r.status != 200) {
          spdlog::debug("k8s: GET {}: {}", path, r.error.empty() ? std::to_string(r.status)
                                                                  : r.error);
          return std::nullopt;
        }
        return std::move(r.body);
      }) {}

PodWatcher::~PodWatcher() { Stop(); }

void PodWatcher::Start() { thread_ = std::thread([this] { Run(); }); }

void PodWatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PodWatcher::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stop_.load(); });
}

std::string PodWatcher::PodsPath() const {
  // Node names are DNS subdomains: nothing in them needs escaping.
  return "/api/v1/pods?fieldSelector=spec.nodeName%3D" + options_.node_name;
}

void PodWatcher::Run() {
  std::mt19937 rng(std::random_device{}());
  auto backoff = options_.min_backoff;
  // Jittered exponential backoff: a whole cluster of agents that lost the
  // API server must not come back in step.
  auto wait = [&] {
    std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
    Sleep(std::chrono::milliseconds(jitter(rng)));
    backoff = std::min(options_.max_backoff, backoff * 2);
  };
  while (!stop_.load()) {
    std::string rv;
    if (!List(&rv)) {
      wait();
      continue;
    }
    backoff = options_.min_backoff;
    // Watch from rv until the server says it is too old or the watch fails.
    while (!stop_.load()) {
      const auto opened = std::chrono::steady_clock::now();
      const WatchEnd end = Watch(&rv);
      if (end == WatchEnd::kClosed) {
        // The server's timeoutSeconds: go on from rv. One that ends watches
        // at once must not make this a busy loop.
        if (std::chrono::steady_clock::now() - opened < std::chrono::seconds(1)) {
          wait();
        } else {
          backoff = options_.min_backoff;
        }
        continue;
      }
      if (end == WatchEnd::kGone) {
        ++stats_.relists_gone;
        spdlog::info("k8s: watch of pods expired (410 Gone); listing again");
        break;
      }
      if (end == WatchEnd::kError) {
        // A watch that was open for a while failed: start the backoff over.
        if (watch_opened_) backoff = options_.min_backoff;
        wait();
        if (rv.empty()) break;
        continue;  // reopen from rv: the list is still good unless the server says 410
      }
      return;  // stopped
    }
  }
}

bool PodWatcher::List(std::string* resource_version) {
  ++stats_.lists;
  std::vector<PodInfo> pods;
  std::string cont;
  do {
    std::string path = PodsPath() + "&limit=" + std::to_string(kListPageSize);
    if (!cont.empty()) path += "&continue=" + QueryEscape(cont);
    auto r = client_.Get(path, kRequestTimeout);
    if (r.status != 200) {
      ++stats_.errors;
      spdlog::warn("k8s: cannot list the pods of node {} at {}: {}", options_.node_name,
                   client_.endpoint().server,
                   !r.error.empty() ? r.error : "HTTP " + std::to_string(r.status) + " " +
                                                    r.body.substr(0, 200));
      return false;
    }
    auto json = nlohmann::json::parse(r.body, nullptr, false);
    if (json.is_discarded() || !json.contains("items") || !json["items"].is_array()) {
      ++stats_.errors;
      spdlog::warn("k8s: the pod list is not a PodList");
      return false;
    }
    for (const auto& item : json["items"]) {
      if (auto pod = PodFromJson(item)) {
        owners_.Resolve(&*pod);
        pods.push_back(std::move(*pod));
      }
    }
    const auto& meta = json["metadata"];
    *resource_version = meta.value("resourceVersion", "");
    cont = meta.value("continue", "");
  } while (!cont.empty() && !stop_.load());
  spdlog::info("k8s: {} pod(s) on node {}", pods.size(), options_.node_name);
  cache_->Replace(std::move(pods));
  return true;
}

PodWatcher::WatchEnd PodWatcher::Watch(std::string* rv) {
  ++stats_.watches;
  const std::string path = PodsPath() + "&watch=true&allowWatchBookmarks=true&resourceVersion=" +
                           *rv + "&timeoutSeconds=" +
                           std::to_string(options_.watch_timeout.count());
  WatchEnd end = WatchEnd::kClosed;
  watch_opened_ = false;
  auto r = client_.Stream(
      path, [&](std::string_view line) { Apply(line, rv, &end); }, stop_,
      options_.watch_timeout + std::chrono::seconds(30));
  if (stop_.load()) return WatchEnd::kStopped;
  if (r.status == 410) return WatchEnd::kGone;
  if (r.status != 200 || (!r.error.empty() && end == WatchEnd::kClosed)) {
    ++stats_.errors;
    spdlog::warn("k8s: pod watch ended: {}",
                 !r.error.empty() ? r.error : "HTTP " + std::to_string(r.status));
    return WatchEnd::kError;
  }
  return end;
}

void PodWatcher::Apply(std::string_view line, std::string* rv, WatchEnd* end) {
  watch_opened_ = true;
  if (line.empty() || *end != WatchEnd::kClosed) return;
  auto event = nlohmann::json::parse(line, nullptr, false);
  if (event.is_discarded() || !event.is_object()) return;
  const std::string type = event.value("type", "");
  const auto& object = event["object"];
  if (type == "ERROR") {
    // "410 Gone" when rv is older than the server keeps; anything else, a
    // new list too.
    *end = StatusCode(object) == 410 ? WatchEnd::kGone : WatchEnd::kError;
    if (*end == WatchEnd::kError) {
      ++stats_.errors;
      spdlog::warn("k8s: pod watch error: {}", object.value("message", ""));
    }
    return;
  }
  if (const std::string v = ResourceVersionOf(object); !v.empty()) *rv = v;
  if (type == "BOOKMARK") return;
  ++stats_.events;
  if (type == "DELETED") {
    if (auto pod = PodFromJson(object)) cache_->Remove(pod->uid);
  } else if (type == "ADDED" || type == "MODIFIED") {
    if (auto pod = PodFromJson(object)) {
      owners_.Resolve(&*pod);
      cache_->Upsert(std::move(*pod));
    }
  }
}

}  // namespace hoptrace
