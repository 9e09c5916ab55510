// The service.name of a process that did not say it itself.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace hoptrace {

// The service name of a process, in order of preference:
//   1. OTEL_SERVICE_NAME from its environment;
//   2. service.name inside OTEL_RESOURCE_ATTRIBUTES from its environment;
//   3. for interpreters (python*, node, nodejs, ruby*, perl*, php*, java, bash,
//      sh, deno, bun) the script or module argument: "python3 backend.py" ->
//      "backend", "python3 -m http.server" -> "http.server",
//      "java -jar app.jar" -> "app", "node server.js" -> "server";
//   4. the executable's base name ("nginx").
// environ holds "KEY=VALUE" entries.
std::string DeriveServiceName(const std::string& executable_name,
                              const std::vector<std::string>& argv,
                              const std::vector<std::string>& environ);

// Steps 1 and 2 alone: the name the process gave itself, if any. In a pod
// it outranks every name Kubernetes metadata suggests.
std::optional<std::string> OwnServiceName(const std::vector<std::string>& environ);

}  // namespace hoptrace
