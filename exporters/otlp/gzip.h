// gzip (RFC 1952) in memory with zlib, for OTLP/HTTP's "Content-Encoding: gzip". The gRPC
// exporter does not need it: gRPC compresses messages itself.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hoptrace {

// Replaces `out` with the gzip stream of `in`. False only if zlib fails (out of memory).
bool GzipCompress(std::string_view in, std::string* out);

// Replaces `out` with the data of the gzip stream `in`. False on a corrupt or truncated stream
// or when the data would exceed `max_out` bytes (a bound against decompression bombs).
bool GzipDecompress(std::string_view in, std::string* out, size_t max_out);

}  // namespace hoptrace
