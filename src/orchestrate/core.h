// The part of the orchestrator that both backends share (docs/orchestrator.md): the model of
// components, replicas and operations, the metrics each replica reports and the arithmetic on
// them, /status, the orchestration metrics and the admin requests' queue. A backend (the local
// process backend in orchestrator.cc, the Kubernetes backend in k8s_backend.cc) derives from
// OrchestratorCore and supplies start(), stop() and the monitor that acts on the replicas.
//
// Thread safety: the backend's monitor thread alone changes components and replicas, under mu_
// so that /status and the metrics callbacks (other threads) read a consistent picture; the
// monitor reads them without the lock. enqueue() may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "orchestrate/local_process.h"
#include "orchestrate/policy.h"
#include "orchestrate/prom_text.h"
#include "spate/metrics.h"
#include "spate/orchestrator.h"

namespace spate::orchestrate {

inline constexpr size_t kMaxOperations = 100;

struct Replica {
  int index = 0;
  int of = 0;  // the replica count it was started with (explicit partition split); 0 = dynamic
  ProcessId proc;     // local backend
  std::string pod;    // Kubernetes backend: the pod's name
  std::string pod_uid;
  std::string pod_ip;
  int64_t not_ready_since_ms = 0;  // Kubernetes: unready since (0 = ready or never ready)
  int container_restarts = 0;      // Kubernetes: restartCount last seen
  bool running() const { return proc.pid > 0 || !pod.empty(); }
  uint16_t port = 0;  // the admin port the monitor probes
  int64_t started_ms = 0;
  bool adopted = false;
  std::string state = "pending";  // pending starting ready unhealthy backoff crash_loop stopped
  bool healthy = false;
  bool ready = false;
  bool answered = false;   // /health answered since the start
  bool was_ready = false;  // /ready answered 200 since the start
  int failed_probes = 0;
  int64_t restart_at_ms = 0;  // > 0: restart due then
  int restarts = 0;
  std::string last_exit;
  double health = 0;
  // Metrics: the latest values and the counters of the previous scrape (for rates).
  int64_t prev_ms = 0;
  double prev_cpu = -1, prev_processed = 0, prev_errors = 0, prev_accepted = 0;
  double prev_ptime_sum = 0, prev_ptime_count = 0;
  double cpu_util = -1, mem_util = -1, lag = -1, queue = -1, ptime_ms = -1;
  double error_rate = 0, accepted_rate = 0, processed_rate = 0;
  std::unique_ptr<RestartBackoff> backoff;
};

struct Component {
  ComponentConfig cfg;
  int desired = 1;
  bool explicit_split = false;  // replicas split the input partitions as I/N
  int partitions = 0;           // input partitions (the cap on useful replicas)
  std::vector<Replica> replicas;
  std::unique_ptr<Autoscaler> scaler;
  double health = 0;
  bool deployed = false;  // all replicas were ready at least once
  std::string deployment_id;
  std::string scaling_reason;
  int64_t last_scale_ms = 0;
};

struct Operation {
  std::string id;
  std::string operation;  // deploy heal scale adopt stop
  std::string component;
  std::string status;  // pending running success failure crash_loop
  std::string detail;
  int64_t at_ms = 0;
  int64_t finished_ms = 0;
};

struct Request {
  std::string kind;  // heal scale deploy
  std::string component;
  int replicas = 0;
  std::string op_id;
};

class OrchestratorCore {
 public:
  OrchestratorCore(DeploymentConfig cfg, MetricsRegistry* metrics);
  virtual ~OrchestratorCore();
  OrchestratorCore(const OrchestratorCore&) = delete;
  OrchestratorCore& operator=(const OrchestratorCore&) = delete;

  /// Build the components, restore what the backend remembers, start the monitor thread.
  virtual Status start() = 0;
  /// Stop the monitor; with stop_components, also the replicas (reverse start order).
  virtual void stop(bool stop_components) = 0;

  /// One round of the monitor: admin requests, probes, healing, scaling (monitor thread).
  virtual void tick() = 0;
  /// tick() every monitor.interval (sooner when a request is queued) until stopping.
  void monitor_loop();

  /// Queue an admin request (heal, scale, deploy); returns the operation id.
  Result<std::string> enqueue(std::string kind, const std::string& component, int replicas);
  std::string status_json() const;
  bool deployed() const;

 protected:
  /// Why this backend refuses to scale `c` to `replicas` ("" = it does not).
  virtual std::string scale_refusal(const Component& c, int replicas) const;
  /// More members of the /status object (`"key":value,...` without braces; "" = none).
  virtual std::string extra_status_json() const { return {}; }

  /// components from cfg.components: desired counts, scalers, the explicit split and the
  /// input partitions of each.
  void build_components();
  void register_metrics();

  Counter& op_counter(const std::string& op, const std::string& status);
  Operation& new_op_locked(std::string operation, std::string component, std::string status,
                           std::string detail);
  void finish_op_locked(const std::string& id, const std::string& status, std::string detail);
  /// A finished operation in one step; returns its id.
  std::string record(const std::string& operation, const std::string& component,
                     const std::string& status, std::string detail);

  bool component_ready(const Component& c) const;
  /// Fold one scrape of a replica's /metrics into its utilisation, lag, rates (caller holds mu_).
  void update_metrics(const Component& c, Replica& r, const PromText& m, int64_t now);
  ScalingSample sample(const Component& c) const;
  /// After a tick's probes of `c`: its health and, the first time all its replicas are ready,
  /// its deployed flag (finishing its deploy operation). Returns whether all are ready now.
  bool settle_component(Component& c);
  /// The deployment's throughput and deployed flag, at the end of a tick.
  void update_totals();
  /// Run the component's autoscaler; returns the decision when it differs from c.desired
  /// (an operation is recorded and its id stored in *op_id).
  std::optional<int> autoscale_decision(Component& c, int64_t now, std::string* op_id);

  DeploymentConfig cfg;
  MetricsRegistry* metrics;
  Clock* clock = system_clock();
  std::mt19937_64 rng{std::random_device{}()};

  mutable std::mutex mu_;
  std::vector<Component> components;
  std::deque<Operation> operations;
  uint64_t next_op = 1;
  std::deque<Request> requests;
  bool all_deployed = false;
  double total_throughput = 0;

  std::condition_variable cv_;
  std::atomic<bool> stopping{false};
  std::thread monitor;
  std::vector<ScopedMetricCallback> metric_callbacks;
};

/// The start phase of a component type: the log (0), processors and analytics (1), ingestion (2).
inline int start_phase(ComponentType t) {
  return t == ComponentType::kLog ? 0 : t == ComponentType::kIngestion ? 2 : 1;
}

/// The Kubernetes backend (k8s_backend.cc).
std::unique_ptr<OrchestratorCore> make_k8s_backend(DeploymentConfig cfg, MetricsRegistry* metrics);

}  // namespace spate::orchestrate
