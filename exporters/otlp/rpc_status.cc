#include "exporters/otlp/rpc_status.h"

#include <google/protobuf/unknown_field_set.h>

namespace hoptrace {
namespace {

using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

constexpr std::string_view kRetryInfoType = "google.rpc.RetryInfo";

bool Parse(std::string_view bytes, UnknownFieldSet* out) {
  return out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

std::optional<std::chrono::nanoseconds> DecodeRetryInfo(std::string_view bytes) {
  UnknownFieldSet info;
  if (!Parse(bytes, &info)) return std::nullopt;
  for (int i = 0; i < info.field_count(); ++i) {
    const UnknownField& f = info.field(i);
    if (f.number() != 1 || f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    UnknownFieldSet duration;
    if (!Parse(f.length_delimited(), &duration)) return std::nullopt;
    int64_t seconds = 0;
    int64_t nanos = 0;
    for (int j = 0; j < duration.field_count(); ++j) {
      const UnknownField& d = duration.field(j);
      if (d.type() != UnknownField::TYPE_VARINT) continue;
      if (d.number() == 1) seconds = static_cast<int64_t>(d.varint());
      if (d.number() == 2) nanos = static_cast<int32_t>(d.varint());
    }
    // A negative or absurd delay is the server's bug; clamp instead of overflowing.
    if (seconds < 0 || nanos < 0) return std::chrono::nanoseconds(0);
    if (seconds > 86400) seconds = 86400;
    return std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos);
  }
  return std::nullopt;
}

}  // namespace

std::optional<RpcStatus> DecodeRpcStatus(std::string_view bytes) {
  UnknownFieldSet fields;
  if (!Parse(bytes, &fields)) return std::nullopt;
  RpcStatus status;
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    if (f.number() == 1 && f.type() == UnknownField::TYPE_VARINT) {
      status.code = static_cast<int>(static_cast<int32_t>(f.varint()));
    } else if (f.number() == 2 && f.type() == UnknownField::TYPE_LENGTH_DELIMITED) {
      status.message = f.length_delimited();
    } else if (f.number() == 3 && f.type() == UnknownField::TYPE_LENGTH_DELIMITED &&
               !status.retry_delay) {
      UnknownFieldSet any;
      if (!Parse(f.length_delimited(), &any)) continue;
      std::string_view type_url;
      std::string_view value;
      for (int j = 0; j < any.field_count(); ++j) {
        const UnknownField& a = any.field(j);
        if (a.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
        if (a.number() == 1) type_url = a.length_delimited();
        if (a.number() == 2) value = a.length_delimited();
      }
      // type_url is "<host>/google.rpc.RetryInfo"; the host part is not fixed.
      const size_t slash = type_url.rfind('/');
      const std::string_view type =
          slash == std::string_view::npos ? type_url : type_url.substr(slash + 1);
      if (type == kRetryInfoType) status.retry_delay = DecodeRetryInfo(value);
    }
  }
  return status;
}

std::string EncodeRpcStatus(const RpcStatus& status) {
  UnknownFieldSet fields;
  if (status.code != 0) {
    fields.AddVarint(1, static_cast<uint64_t>(static_cast<int64_t>(status.code)));
  }
  if (!status.message.empty()) fields.AddLengthDelimited(2, status.message);
  if (status.retry_delay) {
    const auto ns = status.retry_delay->count();
    UnknownFieldSet duration;
    if (ns / 1000000000 != 0) duration.AddVarint(1, static_cast<uint64_t>(ns / 1000000000));
    if (ns % 1000000000 != 0) duration.AddVarint(2, static_cast<uint64_t>(ns % 1000000000));
    UnknownFieldSet retry_info;
    duration.SerializeToString(retry_info.AddLengthDelimited(1));
    UnknownFieldSet any;
    any.AddLengthDelimited(1, "type.googleapis.com/google.rpc.RetryInfo");
    retry_info.SerializeToString(any.AddLengthDelimited(2));
    any.SerializeToString(fields.AddLengthDelimited(3));
  }
  std::string out;
  fields.SerializeToString(&out);
  return out;
}

}  // namespace hoptrace
