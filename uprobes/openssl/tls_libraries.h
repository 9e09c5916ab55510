// Where a running process has a TLS library we can probe: a libssl it maps
// (Debian's libssl.so.3, libssl.so.1.1), or its executable when OpenSSL is
// linked into it (Node.js with its bundled OpenSSL). Files are named by
// (device, inode), as uprobes are: one attachment serves every process that
// maps the file.
// The maps and the symbols are read with uprobes/process_maps.h and
// uprobes/elf_file.h (.dynsym only).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hoptrace::tls {

struct TlsLibrary {
  std::string path;       // as the process sees it ("/usr/lib/x86_64-linux-gnu/libssl.so.3")
  std::string open_path;  // where the agent opens it (/proc/PID/root/...)
  uint64_t dev = 0, inode = 0;
  std::string kind;       // "libssl.so.3", "libssl.so.1.1", "executable", kGoTlsKind
  // Functions of the probe set (openssl_probes.h) the file defines.
  std::vector<std::string> symbols;
  std::string error;      // why the file could not be read, if it could not

  bool probeable() const;  // defines every required function
  bool operator==(const TlsLibrary& o) const { return dev == o.dev && inode == o.inode; }
};

// A Go executable's own crypto/tls (uprobes/go/go_tls_sites.h): symbols are
// its (*Conn).Write and (*Conn).Read when they can be probed, error says why
// not (a stripped binary) otherwise.
inline constexpr const char* kGoTlsKind = "Go crypto/tls";

// Whether lib (an executable without OpenSSL) is Go with crypto/tls; fills
// kind, symbols and error if so.
bool GoTlsOf(TlsLibrary* lib);

// "libssl.so.3" for ".../libssl.so.3"; empty when the file is no libssl.
std::string LibsslKind(const std::string& path);

// The probe set's functions that an ELF file exports (.dynsym);
// *error when it is not a readable ELF file. Cached by device, inode and
// mtime: a hundred processes of one binary cost one read.
std::vector<std::string> DefinedTlsFunctions(const std::string& open_path, std::string* error);

// The TLS libraries process pid maps now (empty if it has none or is gone):
// every libssl, and its executable if OpenSSL is linked in.
std::vector<TlsLibrary> FindTlsLibraries(pid_t pid);

}  // namespace hoptrace::tls
