// StreamingOrchestrator: deploys the components of a pipeline as processes, watches their
// health and metrics, heals and scales them (the reference design's StreamingOrchestrator,
// ComponentConfig, ComponentType).
//
// What it does: a deployment file (load_deployment_file) names one pipeline file and the
// components that run it: ingestion, processor and analytics components, each a role of that
// pipeline with a replica count, resources, a healing and a scaling policy. On the embedded log
// the orchestrator adds a `log` component (the process that owns the log and serves it to the
// others). The local backend runs every replica as a child `spate run` process (docs/orchestrator.md):
//  - start(): brings the deployment up in pipeline order (log → processors and analytics →
//    ingestion), each phase once the previous one is ready (`/ready` 200), and starts the
//    monitor thread. Replicas recorded in the state file that still run are adopted, not
//    started again (a restarted orchestrator takes over what its predecessor started).
//  - the monitor polls every replica's /health, /ready and /metrics each `monitor.interval`,
//    scores each component's health (0..1), restarts replicas that exit or stop answering
//    (exponential backoff with jitter; a crash loop is reported and backs off to the maximum),
//    and applies each component's scaling policy (scaling.h).
//  - stop(): stops the components in reverse order (ingestion first), each replica with
//    SIGTERM (drain) and SIGKILL after `stop_timeout`.
//
// Thread safety: every public method may be called from any thread. Operations (deploy, heal,
// scale) run on the monitor thread one at a time; heal() and scale() queue a request and return.
//
// Errors: start() fails with kConfig for an unusable deployment and kUnavailable when the state
// directory or the admin port cannot be used; a replica that fails is healed, not an error.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spate/config.h"
#include "spate/status.h"

namespace spate {

class MetricsRegistry;

enum class ComponentType { kLog, kIngestion, kProcessor, kAnalytics };

/// "log", "ingestion", "processor", "analytics".
const char* component_type_name(ComponentType t);

/// When a component's replica count changes on its own. Every target is optional (0 = not
/// used); the desired count is the highest any used target asks for, clamped to
/// [min_replicas, max_replicas] (docs/orchestrator.md#scaling).
struct ScalingPolicy {
  bool enabled = false;  // a `scaling:` section is present
  int min_replicas = 1;
  int max_replicas = 1;
  // ceil(total_lag / target_consumer_lag), capped at the input partitions (processor, analytics).
  int64_t target_consumer_lag = 0;
  double target_cpu_utilization = 0;     // of resources.cpu per replica, 0..1+
  double target_memory_utilization = 0;  // of resources.memory per replica
  double target_queue_size = 0;          // ingestion_queue_size per replica
  int64_t target_processing_time_ms = 0; // mean stream_processing_seconds per batch
  double tolerance = 0.1;                // no action while |metric/target - 1| <= tolerance
  int64_t scale_up_cooldown_ms = 300'000;
  int64_t scale_down_cooldown_ms = 600'000;
  int64_t scale_down_stabilization_ms = 300'000;  // highest recommendation seen in it wins
};

/// How failed replicas are restarted.
struct HealingPolicy {
  bool enabled = true;
  int64_t backoff_initial_ms = 1000;
  int64_t backoff_max_ms = 60'000;
  double jitter = 0.2;               // each delay × a random factor in [1 - jitter, 1 + jitter]
  int crash_loop_restarts = 5;       // this many restarts within the window = a crash loop
  int64_t crash_loop_window_ms = 300'000;
  int64_t ready_timeout_ms = 60'000;  // a replica not ready this long after start is restarted
  int unresponsive_probes = 3;        // consecutive failed /health probes = not answering
};

/// One component of a deployment (the reference design's ComponentConfig).
struct ComponentConfig {
  std::string name;
  ComponentType type = ComponentType::kProcessor;
  int replicas = 1;
  std::vector<std::string> processors;  // processor components: which ones (empty = all)
  std::vector<std::string> analytics;   // analytics components: which jobs (empty = all)
  // ingestion: the port every replica serves HTTP ingest on (SO_REUSEPORT when replicas > 1);
  // 0 = the pipeline's server.port. Other components get a free port each.
  int port = 0;
  double cpu = 1.0;           // resources.cpu in cores (for utilisation and Kubernetes)
  int64_t memory_bytes = 0;   // resources.memory (0 = unset)
  std::vector<std::string> env_from_secrets;  // Kubernetes: Secret names for envFrom
  std::vector<std::pair<std::string, std::string>> env;  // extra environment of the replicas
  ScalingPolicy scaling;
  HealingPolicy healing;
  int64_t stop_timeout_ms = 30'000;
};

/// `kubernetes:` of a deployment file: where the in-cluster orchestrator finds the API server
/// (docs/kubernetes.md). Every field has an in-cluster default.
struct KubernetesBackendConfig {
  std::string api_server;  // "" = https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  int metrics_port = 8000;  // where pods serve /metrics (and /health, /ready)
  std::string field_manager = "spate-orchestrator";  // server-side apply's field manager
  int64_t request_timeout_ms = 10000;
  int64_t watch_timeout_ms = 300'000;  // a pod watch is renewed after this (timeoutSeconds)
};

struct DeploymentConfig {
  std::string source_path;    // the deployment file
  std::string name;
  std::string pipeline_path;  // resolved against the deployment file's directory
  PipelineConfig pipeline;    // loaded from pipeline_path
  std::string state_dir;      // default: <pipeline data_dir>/orchestrator
  std::string host = "127.0.0.1";
  int port = 9090;                  // the orchestrator's admin API (0 = any free port)
  int64_t monitor_interval_ms = 1000;
  int64_t probe_timeout_ms = 2000;
  std::string spate_binary;         // default: this executable
  std::string image = "spate:latest";  // Kubernetes
  std::string k8s_namespace = "spate";
  std::string backend = "local";  // local | kubernetes (the orchestrator acts on the API server)
  KubernetesBackendConfig kubernetes;
  std::vector<ComponentConfig> components;  // in start order (the log first, if any)
};

/// Parse a deployment file and the pipeline it names. Errors are kConfig with one
/// `file:line:col: key: message` line per problem (the pipeline's own errors as
/// load_pipeline_file reports them).
/// `pipeline_override`, when non-empty, is used instead of the file's `pipeline` key (the
/// in-cluster orchestrator reads the pipeline from where the ConfigMap is mounted).
Result<DeploymentConfig> load_deployment_file(const std::string& path,
                                              const std::string& pipeline_override = {});
Result<DeploymentConfig> load_deployment_string(std::string_view yaml, std::string_view source_name,
                                                const EnvLookup& env);

class StreamingOrchestrator {
 public:
  /// `metrics` receives the orchestration metrics (global_metrics() if null); it must outlive
  /// the orchestrator.
  explicit StreamingOrchestrator(DeploymentConfig cfg, MetricsRegistry* metrics = nullptr);
  ~StreamingOrchestrator();  // stop(false)
  StreamingOrchestrator(const StreamingOrchestrator&) = delete;
  StreamingOrchestrator& operator=(const StreamingOrchestrator&) = delete;

  /// Open the state directory, adopt recorded replicas that still run, start the admin API and
  /// the monitor thread, which brings every component up in order.
  Status start();
  /// Stop the monitor and the admin API; with stop_components, also every replica in reverse
  /// start order. Idempotent.
  void stop(bool stop_components = true);

  /// Queue a deployment of `component` (start its missing replicas); returns the operation id.
  Result<std::string> deploy_component(const std::string& component);
  /// Queue a forced restart of the unhealthy replicas of `component`; returns the operation id.
  Result<std::string> heal(const std::string& component);
  /// Queue a change of `component`'s replica count (within [1, 64]); returns the operation id.
  Result<std::string> scale(const std::string& component, int replicas);

  /// The admin API's port (0 before start()).
  uint16_t port() const;
  /// The /status document: components, replicas, health, last operations.
  std::string status_json() const;
  /// True once every component had all its replicas ready at least once.
  bool deployed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spate
