// The uprobes of OpenSSL's probe set (uprobes/openssl/openssl_probes.h) on
// one library file in one process at a time: the capture object's ht_ssl_*
// programs, attached by symbol name (libbpf resolves it in the file) with
// the process as the uprobe's filter, so that the kernel puts breakpoints in
// selected processes only. Destroying this detaches everything; it must go
// before the BpfLoader it borrows.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "agent/kernel/bpf_loader.h"
#include "uprobes/openssl/tls_attacher.h"

struct bpf_link;

namespace hoptrace {

class TlsUprobes : public tls::UprobeTarget {
 public:
  explicit TlsUprobes(const BpfLoader& loader);
  ~TlsUprobes() override;
  TlsUprobes(const TlsUprobes&) = delete;
  TlsUprobes& operator=(const TlsUprobes&) = delete;

  bool Attach(const tls::TlsLibrary& lib, pid_t pid, std::string* error) override;
  void Detach(const tls::TlsLibrary& lib, pid_t pid) override;
  size_t links() const;

 private:
  // Go crypto/tls (bpf/tls_go.bpf.h): entry and return-instruction probes
  // at offsets, and the process's entry in ht_gotls_procs.
  bool AttachGo(const tls::TlsLibrary& lib, pid_t pid, std::string* error);
  void ForgetGo(pid_t pid);

  const BpfLoader& loader_;
  std::map<std::tuple<uint64_t, uint64_t, pid_t>, std::vector<bpf_link*>> links_;  // dev, inode, pid
};

}  // namespace hoptrace
