// Where Go's crypto/tls probes go in one executable (issue 12): the entry
// and every return instruction of crypto/tls.(*Conn).Write and
// (*Conn).Read (Go moves goroutine stacks: no uretprobes), and what the
// kernel side needs to follow a tls.Conn to its socket's fd.
//
// The fd: tls.Conn.conn is a net.Conn interface (itab, data). Only a
// *net.TCPConn is followed: its itab's address (symbol
// go:itab.*net.TCPConn,net.Conn) is compared at each call, and then
// TCPConn.conn.fd (*netFD, offset 0) -> netFD.pfd (poll.FD, offset 0) ->
// FD.Sysfd (offset 16, after the 16-byte fdMutex). These offsets have not
// changed since poll.FD appeared (Go 1.9), and the probes need Go 1.17+
// (ABIInternal, checked by the R14 stack check at both functions' start);
// checked against the pinned toolchain by tests/integration/test_tls_go.py.
//
// Stripped binaries (no .symtab) are refused with a reason: the functions
// are also named in .gopclntab, which this does not read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hoptrace::uprobes {

struct GoTlsSites {
  uint64_t write_entry = 0;  // file offsets, where uprobes attach
  std::vector<uint64_t> write_returns;
  uint64_t read_entry = 0;
  std::vector<uint64_t> read_returns;
  uint64_t write_vaddr = 0;  // Write's address in the file's layout (load bias)
  uint64_t tcpconn_itab_vaddr = 0;  // go:itab.*net.TCPConn,net.Conn; 0: absent
  // tls.Conn.conn, net.TCPConn -> *netFD, netFD -> poll.FD.Sysfd.
  uint32_t conn_off = 0, netfd_off = 0, sysfd_off = 16;
};

inline constexpr const char* kGoTlsWrite = "crypto/tls.(*Conn).Write";
inline constexpr const char* kGoTlsRead = "crypto/tls.(*Conn).Read";
inline constexpr const char* kGoTcpConnItab = "go:itab.*net.TCPConn,net.Conn";

enum class GoTls {
  kProbeable,  // sites found
  kNotGo,      // not a Go executable
  kNoTls,      // Go, without crypto/tls's Conn methods
  kRefused,    // Go with (perhaps) crypto/tls that the probes cannot take: *why
};

// Cached by device, inode and mtime (a hundred processes of one binary cost
// one read). sites is filled when kProbeable.
GoTls FindGoTlsSites(const std::string& path, GoTlsSites* sites, std::string* why);

}  // namespace hoptrace::uprobes
