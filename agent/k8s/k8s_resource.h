// A pod's resource attributes, by the OpenTelemetry semantic conventions for
// Kubernetes (k8s.* and container.*), and the service.name a pod suggests.
#pragma once

#include <string>

#include "agent/k8s/pod_cache.h"
#include "agent/trace/span.h"

namespace hoptrace {

// k8s.namespace.name, k8s.pod.name, k8s.pod.uid, k8s.container.name (when
// the container is known), k8s.node.name, the owner's name attribute
// (k8s.deployment.name, k8s.statefulset.name, ...), and the pod's
// resource.opentelemetry.io/<key> annotations as <key>. Keys the process
// already has are kept as they are.
void AddKubernetesAttributes(const PodMatch& match, Attributes& attrs);

// The name the OpenTelemetry conventions derive from a pod when the process
// did not name itself ("Service name" in the k8s attributes spec), first
// present of: the resource.opentelemetry.io/service.name annotation, the
// app.kubernetes.io/name label, the owning workload's name, the container's
// name, the pod's name.
std::string KubernetesServiceName(const PodMatch& match);

}  // namespace hoptrace
