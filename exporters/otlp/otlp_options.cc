#include "exporters/otlp/otlp_options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

namespace hoptrace {
namespace {

constexpr std::string_view kPrefix = "OTEL_EXPORTER_OTLP_";
constexpr std::string_view kTracesPrefix = "OTEL_EXPORTER_OTLP_TRACES_";

std::string_view TrimWs(std::string_view s) {
  constexpr std::string_view kWs = " \t";
  const size_t b = s.find_first_not_of(kWs);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kWs) - b + 1);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// RFC 9110 token characters: what a baggage key and an HTTP field name may hold.
bool IsTokenChar(unsigned char c) {
  return std::isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;  // "%" or "%4" at the end
    const int hi = HexValue(s[i + 1]);
    const int lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// The traces-specific variable if set, else the generic one; `name` is the suffix after the
// prefixes ("ENDPOINT"). Returns the value and the variable it came from.
struct EnvValue {
  std::string value;
  std::string variable;
};

std::optional<EnvValue> Lookup(const OtlpGetenv& getenv, std::string_view name,
                               bool traces_only = false) {
  for (std::string_view prefix : {kTracesPrefix, kPrefix}) {
    if (traces_only && prefix == kPrefix) break;
    std::string var = std::string(prefix) + std::string(name);
    if (auto v = getenv(var); v && !v->empty()) return EnvValue{std::move(*v), std::move(var)};
  }
  return std::nullopt;
}

std::string Invalid(const EnvValue& v, std::string_view why) {
  return v.variable + "=\"" + v.value + "\": " + std::string(why);
}

bool HasHttpScheme(std::string_view url) {
  const std::string lower = Lower(url.substr(0, 8));
  return StartsWith(lower, "http://") || StartsWith(lower, "https://");
}

}  // namespace

std::string_view OtlpProtocolName(OtlpProtocol protocol) {
  return protocol == OtlpProtocol::kGrpc ? "grpc" : "http/protobuf";
}

std::string_view DefaultOtlpEndpoint(OtlpProtocol protocol) {
  return protocol == OtlpProtocol::kGrpc ? "http://localhost:4317"
                                         : "http://localhost:4318/v1/traces";
}

std::string EffectiveOtlpEndpoint(const OtlpExporterOptions& options) {
  if (!options.endpoint.empty()) return options.endpoint;
  return std::string(DefaultOtlpEndpoint(options.protocol));
}

std::chrono::milliseconds EffectiveMaxExportTime(const OtlpExporterOptions& options) {
  if (options.max_export_time.count() > 0) return options.max_export_time;
  return 2 * options.timeout;
}

std::optional<std::string> ValidateOtlpOptions(const OtlpExporterOptions& options) {
  if (options.timeout.count() <= 0) return "OTLP timeout must be > 0 ms";
  if (options.max_export_time.count() < 0) return "OTLP max export time must be >= 0 ms";
  const OtlpRetryOptions& r = options.retry;
  if (r.max_attempts < 1) return "OTLP retry max_attempts must be >= 1";
  if (r.initial_backoff.count() < 0 || r.max_backoff < r.initial_backoff) {
    return "OTLP retry back-off must satisfy 0 <= initial <= max";
  }
  if (!(r.multiplier >= 1.0)) return "OTLP retry multiplier must be >= 1";
  const std::string endpoint = EffectiveOtlpEndpoint(options);
  if (options.protocol == OtlpProtocol::kHttpProtobuf && !HasHttpScheme(endpoint)) {
    return "OTLP http/protobuf endpoint \"" + endpoint + "\" must start with http:// or https://";
  }
  for (const auto& [key, value] : options.headers) {
    if (key.empty() ||
        !std::all_of(key.begin(), key.end(), [](unsigned char c) { return IsTokenChar(c); })) {
      return "OTLP header name \"" + key + "\" is not a valid HTTP field name";
    }
    // CR/LF would split the header (request smuggling); NUL truncates it in libcurl.
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return "OTLP header \"" + key + "\" has a value with CR, LF or NUL";
    }
  }
  return std::nullopt;
}

OtlpResult<OtlpHeaders> ParseOtlpHeaders(std::string_view text) {
  OtlpHeaders headers;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view member = TrimWs(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (member.empty()) continue;  // "a=1,,b=2" or a trailing comma: nothing to send
    const size_t eq = member.find('=');
    if (eq == std::string_view::npos) {
      return OtlpResult<OtlpHeaders>::Error("header \"" + std::string(member) +
                                            "\" has no '=' (expected key=value)");
    }
    const std::string_view key = TrimWs(member.substr(0, eq));
    if (key.empty() ||
        !std::all_of(key.begin(), key.end(), [](unsigned char c) { return IsTokenChar(c); })) {
      return OtlpResult<OtlpHeaders>::Error("header key \"" + std::string(key) +
                                            "\" is not a valid token");
    }
    // W3C Baggage: "the value ... MUST be percent-decoded" by the receiver of the list; OTLP
    // reuses that syntax, so "Bearer%20abc" means "Bearer abc".
    auto value = PercentDecode(TrimWs(member.substr(eq + 1)));
    if (!value) {
      return OtlpResult<OtlpHeaders>::Error("header \"" + std::string(key) +
                                            "\" has an invalid percent-encoding");
    }
    headers.emplace_back(std::string(key), std::move(*value));
  }
  return OtlpResult<OtlpHeaders>::Ok(std::move(headers));
}

OtlpResult<OtlpExporterOptions> OtlpOptionsFromEnv(const OtlpGetenv& getenv) {
  using R = OtlpResult<OtlpExporterOptions>;
  OtlpExporterOptions o;

  if (auto v = Lookup(getenv, "PROTOCOL")) {
    const std::string_view p = TrimWs(v->value);
    if (p == "grpc") {
      o.protocol = OtlpProtocol::kGrpc;
    } else if (p == "http/protobuf") {
      o.protocol = OtlpProtocol::kHttpProtobuf;
    } else if (p == "http/json") {
      return R::Error(Invalid(*v,
                              "http/json is not supported by hoptrace; use grpc or "
                              "http/protobuf"));
    } else {
      return R::Error(Invalid(*v, "unknown protocol; use grpc or http/protobuf"));
    }
  }

  // "The per-signal endpoint configuration options take precedence ... (the URL is used as-is
  // for them, without any modifications)". From OTEL_EXPORTER_OTLP_ENDPOINT, OTLP/HTTP builds
  // "the base URL + /v1/traces"; OTLP/gRPC uses it as it is.
  if (auto v = Lookup(getenv, "ENDPOINT", /*traces_only=*/true)) {
    o.endpoint = std::string(TrimWs(v->value));
  } else if (auto base = Lookup(getenv, "ENDPOINT")) {
    o.endpoint = std::string(TrimWs(base->value));
    if (o.protocol == OtlpProtocol::kHttpProtobuf) {
      // "http://collector:4318/mycollector/" -> ".../mycollector/v1/traces": one slash.
      if (o.endpoint.empty() || o.endpoint.back() != '/') o.endpoint += '/';
      o.endpoint += "v1/traces";
    }
  }
  if (!o.endpoint.empty()) {
    const bool scheme = HasHttpScheme(o.endpoint);
    if (o.protocol == OtlpProtocol::kHttpProtobuf && !scheme) {
      return R::Error("OTLP endpoint \"" + o.endpoint +
                      "\" for http/protobuf must start with http:// or https://");
    }
    if (scheme && o.endpoint.find("://") + 3 >= o.endpoint.size()) {
      return R::Error("OTLP endpoint \"" + o.endpoint + "\" has no host");
    }
  }

  if (auto v = Lookup(getenv, "HEADERS")) {
    auto headers = ParseOtlpHeaders(v->value);
    if (!headers.ok()) return R::Error(Invalid(*v, headers.error()));
    o.headers = std::move(headers).value();
  }

  // "OTEL_EXPORTER_OTLP_TIMEOUT: Maximum time the OTLP exporter will wait for each batch
  // export", an integer number of milliseconds, default 10000.
  if (auto v = Lookup(getenv, "TIMEOUT")) {
    const std::string_view t = TrimWs(v->value);
    int64_t ms = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), ms);
    if (ec != std::errc() || end != t.data() + t.size() || ms <= 0) {
      return R::Error(Invalid(*v, "expected a positive integer number of milliseconds"));
    }
    o.timeout = std::chrono::milliseconds(ms);
  }

  if (auto v = Lookup(getenv, "COMPRESSION")) {
    const std::string c = Lower(TrimWs(v->value));
    if (c == "gzip") {
      o.compression = OtlpCompression::kGzip;
    } else if (c == "none") {
      o.compression = OtlpCompression::kNone;
    } else {
      return R::Error(Invalid(*v, "expected gzip or none"));
    }
  }

  // Booleans: "true" is true; "false" is false (case-insensitive). The spec would treat any
  // other value as false with a warning; a typo here would silently switch TLS, so it errors.
  if (auto v = Lookup(getenv, "INSECURE")) {
    const std::string b = Lower(TrimWs(v->value));
    if (b != "true" && b != "false") return R::Error(Invalid(*v, "expected true or false"));
    o.insecure = b == "true";
  }

  if (auto v = Lookup(getenv, "CERTIFICATE")) o.ca_file = std::string(TrimWs(v->value));
  if (auto v = Lookup(getenv, "CLIENT_CERTIFICATE")) {
    o.client_cert_file = std::string(TrimWs(v->value));
  }
  if (auto v = Lookup(getenv, "CLIENT_KEY")) o.client_key_file = std::string(TrimWs(v->value));
  if (o.client_cert_file.empty() != o.client_key_file.empty()) {
    return R::Error(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY must be set "
        "together");
  }

  if (auto error = ValidateOtlpOptions(o)) return R::Error(*error);
  return R::Ok(std::move(o));
}

OtlpResult<OtlpExporterOptions> OtlpOptionsFromProcessEnv() {
  return OtlpOptionsFromEnv([](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace hoptrace
