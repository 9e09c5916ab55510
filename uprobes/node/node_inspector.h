// Loads hoptrace's JavaScript agent (node_agent.js) into a running Node.js
// process, only one the user opted in: SIGUSR1 makes Node open its
// inspector on 127.0.0.1 (in the process's own network namespace); we speak
// to it over its WebSocket (Chrome DevTools Protocol, Runtime.evaluate)
// from a thread that joined that namespace, then the script closes the
// inspector again. Node itself prints its "Debugger listening/attached/
// ending" lines on the process's stderr; nothing else of the process
// changes.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

namespace hoptrace::node {

// Whether the agent may be loaded into pid; why not, in one line.
struct Eligibility {
  bool ok = false;
  std::string why;
};
Eligibility CheckProcess(pid_t pid);

struct InjectResult {
  bool ok = false;
  int announce_fd = -1;  // the script's /dev/null, for bpf/runtime_node.bpf.h
  std::string error;     // one line when !ok
};

// Loads the script (installed, off), calls on_loaded(announce fd) so the
// kernel knows the process before its first announce, then turns it on and
// closes the inspector: one SIGUSR1, one session. Blocking, a few hundred
// milliseconds; timeout for the inspector to appear and answer.
InjectResult Inject(pid_t pid, const std::function<bool(int)>& on_loaded, int timeout_ms = 5000);
// Uninstalls the script (every hook removed, its fd closed), through the
// inspector once more. False + error.
bool Uninstall(pid_t pid, std::string* error, int timeout_ms = 5000);

// Frames and handshake pieces, exposed for the unit test.
std::string Base64(const std::string& bytes);
std::string WsTextFrame(const std::string& payload, const unsigned char mask[4]);

}  // namespace hoptrace::node
