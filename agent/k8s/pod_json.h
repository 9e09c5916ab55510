// Reading the Kubernetes API's Pod JSON (core/v1 Pod) into a PodInfo.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "agent/k8s/pod_info.h"

namespace hoptrace {

// Nullopt when the object is not a Pod with a uid. Owner fields are the
// direct controller; resolving a ReplicaSet to its Deployment is the
// OwnerResolver's job.
std::optional<PodInfo> PodFromJson(const nlohmann::json& pod);

// The controlling owner (ownerReferences[].controller == true) of any object:
// {kind, name}, or empty strings.
std::pair<std::string, std::string> ControllerOf(const nlohmann::json& object);

// "containerd://<id>", "cri-o://<id>", "docker://<id>" -> "<id>".
std::string ContainerIdFromStatus(const std::string& container_id);

}  // namespace hoptrace
