// What the agent keeps of one Pod of its node: only what becomes a resource
// attribute or a selection criterion, not the whole object.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace hoptrace {

struct PodInfo {
  std::string uid;
  std::string name;
  std::string namespace_name;
  std::string node_name;
  std::string resource_version;
  std::map<std::string, std::string> labels;
  // Annotation resource.opentelemetry.io/service.name; empty if absent.
  std::string service_name_annotation;
  // Other resource.opentelemetry.io/<key> annotations: key -> value.
  std::map<std::string, std::string> resource_annotations;
  // The controller that owns the pod (ownerReferences with controller:
  // true), resolved up to the workload a person deploys: a ReplicaSet's
  // Deployment, a Job's CronJob. kind "" when the pod has no owner.
  // Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet (without a Deployment), ...
  std::string owner_kind;
  std::string owner_name;
  // The direct owner as the pod names it, before resolution.
  std::string controller_kind;
  std::string controller_name;
  // Container id (the runtime's 64 hex, without "containerd://") -> name,
  // init and ephemeral containers included.
  std::map<std::string, std::string> containers;
};

// The attribute of the OpenTelemetry k8s conventions that names an owner
// kind (k8s.deployment.name, ...); empty for kinds without one.
const char* OwnerNameAttribute(const std::string& kind);

}  // namespace hoptrace
