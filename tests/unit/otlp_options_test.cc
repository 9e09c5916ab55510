#include "exporters/otlp/otlp_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "exporters/otlp/otlp_exporter_factory.h"
#include "exporters/otlp/otlp_grpc_exporter.h"
#include "exporters/otlp/otlp_http_exporter.h"

namespace hoptrace {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

OtlpResult<OtlpExporterOptions> FromEnv(std::map<std::string, std::string> env) {
  return OtlpOptionsFromEnv([&env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

TEST(OtlpOptionsFromEnvTest, DefaultsToGrpcOnLocalhost4317) {
  auto r = FromEnv({});
  ASSERT_TRUE(r.ok()) << r.error();
  const OtlpExporterOptions& o = r.value();
  EXPECT_EQ(o.protocol, OtlpProtocol::kGrpc);
  EXPECT_EQ(EffectiveOtlpEndpoint(o), "http://localhost:4317");
  EXPECT_EQ(o.timeout, std::chrono::milliseconds(10000));
  EXPECT_EQ(EffectiveMaxExportTime(o), std::chrono::milliseconds(20000));
  EXPECT_EQ(o.compression, OtlpCompression::kNone);
  EXPECT_FALSE(o.insecure);
  EXPECT_TRUE(o.headers.empty());
  EXPECT_TRUE(o.ca_file.empty());
}

TEST(OtlpOptionsFromEnvTest, HttpProtobufDefaultsToLocalhost4318V1Traces) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().protocol, OtlpProtocol::kHttpProtobuf);
  EXPECT_EQ(EffectiveOtlpEndpoint(r.value()), "http://localhost:4318/v1/traces");
}

TEST(OtlpOptionsFromEnvTest, GenericEndpointGetsSignalPathForHttp) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().endpoint, "https://collector:4318/v1/traces");
  // The spec's own example: a base path with a trailing slash keeps one slash.
  r = FromEnv({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
               {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/mycollector/"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().endpoint, "http://collector:4318/mycollector/v1/traces");
}

TEST(OtlpOptionsFromEnvTest, GenericEndpointIsUsedAsIsForGrpc) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().endpoint, "https://collector:4317");
}

TEST(OtlpOptionsFromEnvTest, TracesEndpointOverridesAndIsUsedVerbatim) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"},
                    {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().endpoint, "http://traces:9999/custom");
}

TEST(OtlpOptionsFromEnvTest, EmptyValueCountsAsUnset) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"},
                    {"OTEL_EXPORTER_OTLP_TIMEOUT", ""},
                    {"OTEL_EXPORTER_OTLP_PROTOCOL", ""}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().endpoint, "http://generic:4317");
  EXPECT_EQ(r.value().timeout, std::chrono::milliseconds(10000));
  EXPECT_EQ(r.value().protocol, OtlpProtocol::kGrpc);
}

TEST(OtlpOptionsFromEnvTest, TracesProtocolOverridesGenericProtocol) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
                    {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().protocol, OtlpProtocol::kHttpProtobuf);
  EXPECT_EQ(r.value().endpoint, "http://c:4318/v1/traces");
}

TEST(OtlpOptionsFromEnvTest, HttpJsonIsAClearError) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"));
  EXPECT_THAT(r.error(), HasSubstr("http/json is not supported"));
}

TEST(OtlpOptionsFromEnvTest, UnknownProtocolIsAnError) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("OTEL_EXPORTER_OTLP_PROTOCOL=\"thrift\""));
}

TEST(OtlpOptionsFromEnvTest, HttpEndpointWithoutSchemeIsAnError) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
                    {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318/v1/traces"}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("http://"));
}

TEST(OtlpOptionsFromEnvTest, HeadersAreTrimmedAndPercentDecoded) {
  auto r = FromEnv(
      {{"OTEL_EXPORTER_OTLP_HEADERS", " api-key = Bearer%20abc%3D%3D , X-Tenant=acme,,empty= "}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_THAT(r.value().headers, ElementsAre(Pair("api-key", "Bearer abc=="),
                                             Pair("X-Tenant", "acme"), Pair("empty", "")));
}

TEST(OtlpOptionsFromEnvTest, TracesHeadersReplaceGenericHeaders) {
  auto r = FromEnv(
      {{"OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"}, {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "c=3"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_THAT(r.value().headers, ElementsAre(Pair("c", "3")));
}

TEST(OtlpOptionsFromEnvTest, MalformedHeadersAreErrors) {
  for (const char* bad : {"novalue", "=v", "k y=v", "k=%zz", "k=abc%2"}) {
    auto r = FromEnv({{"OTEL_EXPORTER_OTLP_HEADERS", bad}});
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_THAT(r.error(), HasSubstr("OTEL_EXPORTER_OTLP_HEADERS")) << bad;
    }
  }
}

TEST(OtlpOptionsFromEnvTest, TimeoutIsIntegerMillisecondsTracesOverriding) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().timeout, std::chrono::milliseconds(2500));
  r = FromEnv(
      {{"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"}, {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().timeout, std::chrono::milliseconds(700));
  for (const char* bad : {"abc", "-1", "0", "10s", "1.5"}) {
    r = FromEnv({{"OTEL_EXPORTER_OTLP_TIMEOUT", bad}});
    EXPECT_FALSE(r.ok()) << bad;
  }
}

TEST(OtlpOptionsFromEnvTest, CompressionGzipOrNone) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().compression, OtlpCompression::kGzip);
  r = FromEnv({{"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"},
               {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().compression, OtlpCompression::kNone);
  r = FromEnv({{"OTEL_EXPORTER_OTLP_COMPRESSION", "br"}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error(), HasSubstr("gzip or none"));
}

TEST(OtlpOptionsFromEnvTest, InsecureIsCaseInsensitiveTrueOrFalse) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_INSECURE", "TRUE"}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.value().insecure);
  r = FromEnv(
      {{"OTEL_EXPORTER_OTLP_INSECURE", "true"}, {"OTEL_EXPORTER_OTLP_TRACES_INSECURE", "False"}});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.value().insecure);
  EXPECT_FALSE(FromEnv({{"OTEL_EXPORTER_OTLP_INSECURE", "yes"}}).ok());
}

TEST(OtlpOptionsFromEnvTest, CertificatesAreReadAndClientPairIsRequired) {
  auto r = FromEnv({{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"},
                    {"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "/etc/c.pem"},
                    {"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/k.pem"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value().ca_file, "/etc/ca.pem");
  EXPECT_EQ(r.value().client_cert_file, "/etc/c.pem");
  EXPECT_EQ(r.value().client_key_file, "/etc/k.pem");
  EXPECT_FALSE(FromEnv({{"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/k.pem"}}).ok());
}

TEST(OtlpOptionsValidateTest, RejectsWhatCodeCanGetWrong) {
  OtlpExporterOptions o;
  EXPECT_FALSE(ValidateOtlpOptions(o).has_value());
  o.retry.max_attempts = 0;
  EXPECT_TRUE(ValidateOtlpOptions(o).has_value());
  o = {};
  o.timeout = std::chrono::milliseconds(0);
  EXPECT_TRUE(ValidateOtlpOptions(o).has_value());
  o = {};
  o.headers = {{"x-evil", "a\r\nHost: other"}};
  EXPECT_TRUE(ValidateOtlpOptions(o).has_value());
  o = {};
  o.retry.multiplier = 0.5;
  EXPECT_TRUE(ValidateOtlpOptions(o).has_value());
}

TEST(ResolveGrpcTargetTest, SchemeDecidesTlsAndPathIsDropped) {
  OtlpExporterOptions o;
  GrpcTarget t = ResolveGrpcTarget(o);
  EXPECT_EQ(t.target, "localhost:4317");
  EXPECT_FALSE(t.tls);
  o.endpoint = "https://collector.example.com";
  t = ResolveGrpcTarget(o);
  EXPECT_EQ(t.target, "collector.example.com:443");
  EXPECT_TRUE(t.tls);
  o.endpoint = "HTTP://[::1]:4317/ignored/path";
  t = ResolveGrpcTarget(o);
  EXPECT_EQ(t.target, "[::1]:4317");
  EXPECT_FALSE(t.tls);
  // "insecure" only matters without a scheme; https:// wins over it.
  o.insecure = true;
  o.endpoint = "https://c:4317";
  EXPECT_TRUE(ResolveGrpcTarget(o).tls);
  o.endpoint = "dns:///c:4317";
  t = ResolveGrpcTarget(o);
  EXPECT_EQ(t.target, "dns:///c:4317");
  EXPECT_FALSE(t.tls);
  o.insecure = false;
  EXPECT_TRUE(ResolveGrpcTarget(o).tls);
}

TEST(MakeOtlpExporterTest, BuildsTheConfiguredTransportOrSaysWhatIsWrong) {
  OtlpExporterOptions o;
  auto grpc = MakeOtlpExporter(o);
  EXPECT_NE(dynamic_cast<OtlpGrpcExporter*>(grpc.get()), nullptr);
  o.protocol = OtlpProtocol::kHttpProtobuf;
  auto http = MakeOtlpExporter(o);
  EXPECT_NE(dynamic_cast<OtlpHttpExporter*>(http.get()), nullptr);
  EXPECT_EQ(http->stats().exports, 0u);

  o.retry.max_attempts = 0;
  EXPECT_THROW(MakeOtlpExporter(o), std::invalid_argument);
  o = {};
  o.endpoint = "https://collector:4317";
  o.ca_file = "/nonexistent/ca.pem";
  try {
    MakeOtlpExporter(o);
    ADD_FAILURE() << "an unreadable CA file must fail at start-up";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/ca.pem"));
  }
}

}  // namespace
}  // namespace hoptrace
