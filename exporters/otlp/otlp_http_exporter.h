// OTLP/HTTP trace exporter, binary protobuf encoding: one POST of an ExportTraceServiceRequest
// per batch (Content-Type: application/x-protobuf), optionally gzip-compressed, over a reused
// libcurl handle so the connection stays open between batches.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "exporters/otlp/otlp_exporter_base.h"

typedef void CURL;
struct curl_slist;

namespace hoptrace {

class OtlpHttpExporter final : public OtlpExporterBase {
 public:
  // Throws std::runtime_error when libcurl cannot be initialised.
  explicit OtlpHttpExporter(const OtlpExporterOptions& options, OtlpExporterHooks hooks = {});
  ~OtlpHttpExporter() override;
  OtlpHttpExporter(const OtlpHttpExporter&) = delete;
  OtlpHttpExporter& operator=(const OtlpHttpExporter&) = delete;

 private:
  bool PrepareBatch(std::string_view request, std::string* error) override;
  AttemptResult SendAttempt(std::chrono::milliseconds timeout) noexcept override;
  // Nothing to do here: OnProgress() sees cancelled() and aborts the transfer.
  void CancelAttempt() noexcept override {}
  AttemptResult Classify(int curl_code, long http_status);

  static size_t OnBody(char* data, size_t size, size_t n, void* self);
  static size_t OnHeader(char* data, size_t size, size_t n, void* self);
  static int OnProgress(void* self, long long, long long, long long, long long);

  std::string url_;
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::string_view body_;   // what is posted: the encoded batch, or compressed_
  std::string compressed_;  // the batch gzip-compressed, when the options ask for it
  std::string response_;    // response body, first kMaxResponseBytes
  std::optional<std::string> retry_after_;
  char curl_error_[256] = {};
};

}  // namespace hoptrace
