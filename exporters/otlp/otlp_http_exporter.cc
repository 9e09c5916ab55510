#include "exporters/otlp/otlp_http_exporter.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <stdexcept>

#include "exporters/otlp/gzip.h"
#include "exporters/otlp/rpc_status.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace hoptrace {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;

// A success body is a few bytes, an error body a short Status; anything longer is not worth
// keeping (a proxy's HTML page).
constexpr size_t kMaxResponseBytes = 64 * 1024;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Readable excerpt of an error body that is not a google.rpc.Status.
std::string Excerpt(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, 120)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '.';
  return out;
}

// Connection-level failures that a later attempt may not hit (collector restarting, network
// blip). TLS, URL and protocol errors will fail the same way every time.
bool IsTransientCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return true;
    default:
      return false;
  }
}

}  // namespace

OtlpHttpExporter::OtlpHttpExporter(const OtlpExporterOptions& options, OtlpExporterHooks hooks)
    : OtlpExporterBase(options, "otlp-http", std::move(hooks)),
      url_(EffectiveOtlpEndpoint(options)) {
  // curl_global_init is not thread-safe in every libcurl build: once, before any handle.
  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
  if (curl_ == nullptr) throw std::runtime_error("OTLP HTTP exporter: curl_easy_init failed");

  auto add = [this](const std::string& line) {
    curl_slist* next = curl_slist_append(headers_, line.c_str());
    if (next == nullptr) throw std::runtime_error("OTLP HTTP exporter: out of memory");
    headers_ = next;
  };
  add("Content-Type: application/x-protobuf");
  if (options.compression == OtlpCompression::kGzip) add("Content-Encoding: gzip");
  // Without this, libcurl sends "Expect: 100-continue" for bodies over 1 KiB and waits up to a
  // second for a "100 Continue" that many servers never send.
  add("Expect:");
  for (const auto& [key, value] : options.headers) {
    // The body's framing is ours; a user header must not contradict it.
    if (EqualsIgnoreCase(key, "Content-Type") || EqualsIgnoreCase(key, "Content-Encoding") ||
        EqualsIgnoreCase(key, "Content-Length")) {
      spdlog::warn("otlp-http: ignoring configured header {}: set by the exporter", key);
      continue;
    }
    // "Key:" would make libcurl remove the header; "Key;" sends it with an empty value.
    add(value.empty() ? key + ";" : key + ": " + value);
  }

  curl_easy_setopt(curl_, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(curl_, CURLOPT_POST, 1L);
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(curl_, CURLOPT_USERAGENT, "hoptrace-otlp-exporter/" HOPTRACE_VERSION);
  // Signals are not ours to take in a multi-threaded agent (libcurl uses SIGALRM otherwise).
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &OtlpHttpExporter::OnBody);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &OtlpHttpExporter::OnHeader);
  curl_easy_setopt(curl_, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, curl_error_);
  // libcurl calls this about once a second, and often while data moves: enough to end a
  // transfer soon after Cancel() at the shutdown deadline.
  curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &OtlpHttpExporter::OnProgress);
  curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, this);
  if (!options.ca_file.empty()) curl_easy_setopt(curl_, CURLOPT_CAINFO, options.ca_file.c_str());
  if (!options.client_cert_file.empty()) {
    curl_easy_setopt(curl_, CURLOPT_SSLCERT, options.client_cert_file.c_str());
    curl_easy_setopt(curl_, CURLOPT_SSLKEY, options.client_key_file.c_str());
  }
}

OtlpHttpExporter::~OtlpHttpExporter() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
  curl_slist_free_all(headers_);
}

size_t OtlpHttpExporter::OnBody(char* data, size_t size, size_t n, void* self) {
  auto* e = static_cast<OtlpHttpExporter*>(self);
  const size_t len = size * n;
  const size_t keep =
      std::min(len, kMaxResponseBytes - std::min(kMaxResponseBytes, e->response_.size()));
  e->response_.append(data, keep);
  return len;  // consume the rest without keeping it; returning less would abort the transfer
}

size_t OtlpHttpExporter::OnHeader(char* data, size_t size, size_t n, void* self) {
  auto* e = static_cast<OtlpHttpExporter*>(self);
  const std::string_view line(data, size * n);
  // A new status line starts a new header block (e.g. after "100 Continue").
  if (line.rfind("HTTP/", 0) == 0) e->retry_after_.reset();
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size() && EqualsIgnoreCase(line.substr(0, kName.size()), kName)) {
    std::string_view v = line.substr(kName.size());
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) v.remove_suffix(1);
    e->retry_after_ = std::string(v);
  }
  return size * n;
}

bool OtlpHttpExporter::PrepareBatch(std::string_view request, std::string* error) {
  if (options().compression != OtlpCompression::kGzip) {
    body_ = request;
    return true;
  }
  if (!GzipCompress(request, &compressed_)) {
    *error = "gzip compression failed";
    return false;
  }
  body_ = compressed_;
  return true;
}

int OtlpHttpExporter::OnProgress(void* self, long long, long long, long long, long long) {
  return static_cast<OtlpHttpExporter*>(self)->cancelled() ? 1 : 0;
}

AttemptResult OtlpHttpExporter::SendAttempt(std::chrono::milliseconds timeout) noexcept {
  response_.clear();
  retry_after_.reset();
  curl_error_[0] = '\0';
  // Set per attempt: the pointer and size change with every batch, the timeout with the time
  // left in the export.
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body_.data());
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  const CURLcode code = curl_easy_perform(curl_);
  long http_status = 0;
  if (code == CURLE_OK) curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &http_status);
  try {
    return Classify(code, http_status);
  } catch (...) {
    AttemptResult r;
    r.outcome = AttemptOutcome::kNonRetryable;
    r.error = "out of memory";
    return r;
  }
}

AttemptResult OtlpHttpExporter::Classify(int curl_code, long http_status) {
  AttemptResult r;
  const auto code = static_cast<CURLcode>(curl_code);
  if (code != CURLE_OK) {
    r.outcome =
        IsTransientCurlError(code) ? AttemptOutcome::kRetryable : AttemptOutcome::kNonRetryable;
    r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
    r.error = std::string("http: ") + curl_easy_strerror(code);
    if (curl_error_[0] != '\0') r.error += std::string(": ") + curl_error_;
    return r;
  }
  if (http_status >= 200 && http_status < 300) {
    // "The server MUST respond with HTTP 200 OK" and, on partial success, set partial_success
    // in the ExportTraceServiceResponse body. An unparsable body is still a success.
    collector::ExportTraceServiceResponse response;
    if (!response_.empty() && response.ParseFromString(response_) &&
        response.has_partial_success()) {
      r.rejected_spans = response.partial_success().rejected_spans();
      r.partial_success_message = response.partial_success().error_message();
    }
    return r;
  }
  r.outcome = IsRetryableHttpStatus(http_status) ? AttemptOutcome::kRetryable
                                                 : AttemptOutcome::kNonRetryable;
  if (r.outcome == AttemptOutcome::kRetryable && retry_after_) {
    r.server_delay = ParseRetryAfter(*retry_after_, std::chrono::system_clock::now());
  }
  // "The response body for all HTTP 4xx and HTTP 5xx responses MUST be a Protobuf-encoded
  // Status message that describes the problem" (when the request was binary protobuf).
  r.error = "http " + std::to_string(http_status);
  if (auto status = DecodeRpcStatus(response_); status && !status->message.empty()) {
    r.error += ": " + status->message.substr(0, 200);
  } else if (!response_.empty()) {
    r.error += ": " + Excerpt(response_);
  }
  return r;
}

}  // namespace hoptrace
