// Node.js runtime context in the kernel (bpf/runtime_node.bpf.h): loads its
// object on the capture's maps and tells it which processes carry the
// JavaScript agent (uprobes/node/node_inspector.h) and on which fd they
// announce. The object is loaded only when some process is opted in.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>

struct runtime_node_bpf;

namespace hoptrace {

class BpfLoader;

struct NodeRuntimeCounters {
  uint64_t announces = 0;
  uint64_t bound = 0;          // to a server span open on the incoming socket
  uint64_t bound_none = 0;     // to no request (made outside any)
  uint64_t out_unknown = 0;    // on a connection the capture does not follow
  uint64_t unbound_writes = 0; // client writes never announced: no parent
};

class NodeRuntimeLoader {
 public:
  // capture must have kernel contexts (LoaderOptions::kernel_context) and
  // outlive this loader. Throws StartupError.
  static std::unique_ptr<NodeRuntimeLoader> Start(const BpfLoader& capture);
  ~NodeRuntimeLoader();
  NodeRuntimeLoader(const NodeRuntimeLoader&) = delete;
  NodeRuntimeLoader& operator=(const NodeRuntimeLoader&) = delete;

  bool AddProcess(pid_t pid, int announce_fd);
  void RemoveProcess(pid_t pid);
  NodeRuntimeCounters ReadCounters() const;

 private:
  NodeRuntimeLoader() = default;
  runtime_node_bpf* skel_ = nullptr;
};

}  // namespace hoptrace
