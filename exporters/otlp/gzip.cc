#include "exporters/otlp/gzip.h"

#include <zlib.h>

#include <algorithm>

namespace hoptrace {
namespace {

// windowBits 15 (32 KiB, zlib's maximum) + 16 selects the gzip wrapper instead of zlib's.
constexpr int kGzipWindowBits = 15 + 16;

}  // namespace

bool GzipCompress(std::string_view in, std::string* out) {
  z_stream zs{};
  // Level 6 (zlib's default): for span batches within a few percent of level 9's size at
  // about half its CPU cost.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  out->resize(deflateBound(&zs, static_cast<uLong>(in.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out->data());
  zs.avail_out = static_cast<uInt>(out->size());
  // deflateBound() guarantees one Z_FINISH call completes.
  const int rc = deflate(&zs, Z_FINISH);
  const size_t written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return false;
  out->resize(written);
  return true;
}

bool GzipDecompress(std::string_view in, std::string* out, size_t max_out) {
  z_stream zs{};
  if (inflateInit2(&zs, kGzipWindowBits) != Z_OK) return false;
  out->clear();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char chunk[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    const size_t n = sizeof(chunk) - zs.avail_out;
    if (out->size() + n > max_out) {
      rc = Z_BUF_ERROR;
      break;
    }
    out->append(chunk, n);
    if (rc == Z_OK && n == 0 && zs.avail_in == 0) {
      rc = Z_BUF_ERROR;  // truncated: input used up before the end of the stream
      break;
    }
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END;
}

}  // namespace hoptrace
