// `spate k8s render DEPLOYMENT.yaml`: print the Kubernetes manifests of a deployment on stdout
// (docs/kubernetes.md). Warnings (e.g. a pipeline listening on a loopback address) go to
// stderr. Exit codes: 0 rendered, 2 configuration error (the deployment's errors as
// `spate orchestrate --check` reports them, or a name Kubernetes would refuse).
#pragma once

#include <string>

namespace spate::cli {

struct K8sRenderOptions {
  std::string path;
  std::string k8s_namespace;  // overrides the deployment's namespace
  std::string image;          // overrides the deployment's image
};

int k8s_render(const K8sRenderOptions& opts);

}  // namespace spate::cli
