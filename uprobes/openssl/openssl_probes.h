// OpenSSL's probe set: the functions whose arguments and return value carry
// TLS plaintext, and the BPF programs (bpf/socket_trace.bpf.c) that read
// them. The same set serves libssl (Debian's libssl3, libssl1.1) and an
// executable with OpenSSL linked in (Node.js built with its bundled copy):
// the symbols are the same, only the file differs.
//
// The signatures are stable from OpenSSL 1.1.1 to 3.x; SSL_read_ex and
// SSL_write_ex are 1.1.1's (absent from 1.1.0, which needs only the other two).
#pragma once

#include <array>
#include <string_view>

namespace hoptrace::tls {

struct TlsProbe {
  std::string_view symbol;         // function in the library
  std::string_view entry_program;  // uprobe at its entry
};

inline constexpr std::array<TlsProbe, 4> kOpenSslProbes = {{
    {"SSL_write", "ht_ssl_write"},
    {"SSL_write_ex", "ht_ssl_write_ex"},
    {"SSL_read", "ht_ssl_read"},
    {"SSL_read_ex", "ht_ssl_read_ex"},
}};

// The uretprobe on every function of the set (the entry saved which it was).
inline constexpr std::string_view kOpenSslReturnProgram = "ht_ssl_return";

// Without these a file cannot be traced; the _ex variants are optional.
inline constexpr std::array<std::string_view, 2> kOpenSslRequired = {"SSL_read", "SSL_write"};

}  // namespace hoptrace::tls
