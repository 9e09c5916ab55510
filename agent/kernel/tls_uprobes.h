// The uprobes of OpenSSL's probe set (uprobes/openssl/openssl_probes.h) on
// one library file at a time: the capture object's ht_ssl_* programs,
// attached by symbol name (libbpf resolves it in the file) for every process
// that maps the file; the programs filter by the selected pids. Destroying
// this detaches everything; it must go before the BpfLoader it borrows.
#pragma once

#include <cstdint>
#include <map>
#include <string>
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

  bool Attach(const tls::TlsLibrary& lib, std::string* error) override;
  void Detach(const tls::TlsLibrary& lib) override;
  size_t links() const;

 private:
  const BpfLoader& loader_;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<bpf_link*>> links_;  // (dev, inode)
};

}  // namespace hoptrace
