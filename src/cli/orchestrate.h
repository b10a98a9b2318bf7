// `spate orchestrate DEPLOYMENT.yaml`: run a deployment with the local backend
// (docs/orchestrator.md) or, with `backend: kubernetes`, against the Kubernetes API
// (docs/kubernetes.md). Exit codes: 0 stopped cleanly, 1 runtime error, 2 configuration error.
#pragma once

#include <optional>
#include <string>

namespace spate::cli {

struct OrchestrateOptions {
  std::string path;
  std::optional<int> port;  // overrides server.port of the deployment
  std::string state_dir;    // overrides state_dir
  std::string backend;      // overrides backend (local | kubernetes) when non-empty
  std::string pipeline;     // overrides the deployment's pipeline file when non-empty
  std::string host;         // overrides server.host of the admin API when non-empty
  std::string k8s_namespace;  // overrides namespace (Kubernetes backend) when non-empty
  std::string image;          // overrides image (Kubernetes backend) when non-empty
  bool check = false;       // validate the deployment (and its pipeline) and exit
  bool leave_running = false;  // on SIGINT/SIGTERM stop the orchestrator only
};

int orchestrate(const OrchestrateOptions& opts);

}  // namespace spate::cli
