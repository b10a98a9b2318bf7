// Shared model and arithmetic of the orchestrator's backends (core.h).
#include "orchestrate/core.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/json_escape.h"
#include "spate/version.h"

namespace spate::orchestrate {

OrchestratorCore::OrchestratorCore(DeploymentConfig c, MetricsRegistry* m)
    : cfg(std::move(c)), metrics(m != nullptr ? m : &global_metrics()) {}

OrchestratorCore::~OrchestratorCore() = default;

std::string OrchestratorCore::scale_refusal(const Component&, int) const { return {}; }

void OrchestratorCore::monitor_loop() {
  while (!stopping.load()) {
    tick();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(cfg.monitor_interval_ms),
                 [&] { return stopping.load() || !requests.empty(); });
  }
}

bool OrchestratorCore::deployed() const {
  std::lock_guard lock(mu_);
  return all_deployed;
}

void OrchestratorCore::build_components() {
  for (const ComponentConfig& cc : cfg.components) {
    Component c;
    c.cfg = cc;
    c.desired = cc.replicas;
    if (cc.scaling.enabled) c.scaler = std::make_unique<Autoscaler>(cc.scaling);
    const bool kafka = cfg.pipeline.log.kind == "kafka";
    if (cc.type == ComponentType::kAnalytics) {
      c.explicit_split = true;
    } else if (cc.type == ComponentType::kProcessor) {
      bool eos = false;
      for (const ProcessorConfig& p : cfg.pipeline.processors) {
        const bool mine = cc.processors.empty() ||
                          std::find(cc.processors.begin(), cc.processors.end(), p.name) != cc.processors.end();
        if (!mine) continue;
        eos = eos || p.exactly_once;
        for (const std::string& in : p.inputs) {
          uint32_t parts = cfg.pipeline.log.default_partitions;
          for (const TopicSpec& t : cfg.pipeline.topics) {
            if (t.name == in) parts = t.partitions;
          }
          c.partitions = std::max(c.partitions, static_cast<int>(parts));
        }
      }
      c.explicit_split = !kafka || eos;
    }
    if (cc.type == ComponentType::kAnalytics) {
      for (const AnalyticsConfig& a : cfg.pipeline.analytics) {
        const bool mine = cc.analytics.empty() ||
                          std::find(cc.analytics.begin(), cc.analytics.end(), a.name) != cc.analytics.end();
        if (!mine) continue;
        for (const std::string& in : a.inputs) {
          uint32_t parts = cfg.pipeline.log.default_partitions;
          for (const TopicSpec& t : cfg.pipeline.topics) {
            if (t.name == in) parts = t.partitions;
          }
          c.partitions = std::max(c.partitions, static_cast<int>(parts));
        }
      }
    }
    components.push_back(std::move(c));
  }
}

Counter& OrchestratorCore::op_counter(const std::string& op, const std::string& status) {
  return metrics->counter("orchestration_operations_total",
                          "Orchestration operations by kind and outcome",
                          {{"operation", op}, {"status", status}});
}

// --- operations -------------------------------------------------------------------------
// Callers hold mu_.
Operation& OrchestratorCore::new_op_locked(std::string operation, std::string component, std::string status,
                         std::string detail) {
  Operation op;
  op.id = fmt::format("op-{}", next_op++);
  op.operation = std::move(operation);
  op.component = std::move(component);
  op.status = std::move(status);
  op.detail = std::move(detail);
  op.at_ms = clock->now_ms();
  operations.push_back(std::move(op));
  while (operations.size() > kMaxOperations) operations.pop_front();
  return operations.back();
}
void OrchestratorCore::finish_op_locked(const std::string& id, const std::string& status, std::string detail) {
  for (Operation& op : operations) {
    if (op.id != id) continue;
    op.status = status;
    // Keep what the operation was for (e.g. an automatic scaling's reason) and add the result.
    if (!detail.empty()) op.detail = op.detail.empty() ? std::move(detail) : op.detail + "; " + detail;
    op.finished_ms = clock->now_ms();
    op_counter(op.operation, status).inc();
    return;
  }
}
// A finished operation in one step (monitor thread).
std::string OrchestratorCore::record(const std::string& operation, const std::string& component,
                   const std::string& status, std::string detail) {
  std::lock_guard lock(mu_);
  Operation& op = new_op_locked(operation, component, status, std::move(detail));
  op.finished_ms = op.at_ms;
  op_counter(operation, status).inc();
  return op.id;
}

bool OrchestratorCore::component_ready(const Component& c) const {
  if (static_cast<int>(c.replicas.size()) < c.desired) return false;
  for (int i = 0; i < c.desired; ++i) {
    if (!c.replicas[static_cast<size_t>(i)].ready) return false;
  }
  return true;
}

void OrchestratorCore::update_metrics(const Component& c, Replica& r, const PromText& m, int64_t now) {
  bool found = false;
  const double cpu = m.sum("process_cpu_seconds_total", &found);
  const double rss = m.sum("process_resident_memory_bytes");
  double processed = m.sum("stream_messages_processed_total");
  const double errors = m.sum("stream_processing_errors_total");
  double accepted = 0;
  for (const auto& s : m.samples) {
    if (s.name == "ingestion_messages_total" && s.label("status") == "accepted") accepted += s.value;
  }
  const double ptime_sum = m.sum("stream_processing_seconds_sum");
  const double ptime_count = m.sum("stream_processing_seconds_count");
  bool has_lag = false;
  const double lag = m.sum("stream_consumer_lag", &has_lag);
  bool has_queue = false;
  const double queue = m.sum("ingestion_queue_size", &has_queue);
  if (c.cfg.type == ComponentType::kAnalytics) processed = m.sum("analytics_events_processed_total");
  r.lag = has_lag ? lag : -1;
  r.queue = has_queue ? queue : -1;
  r.mem_util = c.cfg.memory_bytes > 0 ? rss / static_cast<double>(c.cfg.memory_bytes) : -1;
  if (r.prev_ms > 0 && now > r.prev_ms) {
    const double dt = static_cast<double>(now - r.prev_ms) / 1000.0;
    if (found && r.prev_cpu >= 0) r.cpu_util = std::max(0.0, (cpu - r.prev_cpu) / dt / c.cfg.cpu);
    const double dp = std::max(0.0, processed - r.prev_processed);
    const double de = std::max(0.0, errors - r.prev_errors);
    r.error_rate = dp + de > 0 ? de / (dp + de) : 0;
    r.processed_rate = dp / dt;
    r.accepted_rate = std::max(0.0, accepted - r.prev_accepted) / dt;
    const double dc = ptime_count - r.prev_ptime_count;
    r.ptime_ms = dc > 0 ? (ptime_sum - r.prev_ptime_sum) / dc * 1000.0 : (r.ptime_ms < 0 ? -1 : 0);
  }
  r.prev_ms = now;
  r.prev_cpu = found ? cpu : -1;
  r.prev_processed = processed;
  r.prev_errors = errors;
  r.prev_accepted = accepted;
  r.prev_ptime_sum = ptime_sum;
  r.prev_ptime_count = ptime_count;
}

ScalingSample OrchestratorCore::sample(const Component& c) const {
  ScalingSample s;
  s.current = c.desired;
  s.partitions = c.partitions;
  double lag = 0, cpu = 0, mem = 0, queue = 0, ptime = 0;
  int n_lag = 0, n_cpu = 0, n_mem = 0, n_queue = 0, n_ptime = 0;
  for (int i = 0; i < c.desired && i < static_cast<int>(c.replicas.size()); ++i) {
    const Replica& r = c.replicas[static_cast<size_t>(i)];
    if (r.lag >= 0) lag += r.lag, ++n_lag;
    if (r.cpu_util >= 0) cpu += r.cpu_util, ++n_cpu;
    if (r.mem_util >= 0) mem += r.mem_util, ++n_mem;
    if (r.queue >= 0) queue += r.queue, ++n_queue;
    if (r.ptime_ms >= 0) ptime += r.ptime_ms, ++n_ptime;
  }
  // Dynamic group members report only their assigned partitions, so the sum is the total.
  if (n_lag > 0) s.total_lag = lag;
  if (n_cpu == c.desired) s.cpu_utilization = cpu / n_cpu;
  if (n_mem == c.desired) s.memory_utilization = mem / n_mem;
  if (n_queue > 0) s.queue_size = queue / n_queue;
  if (n_ptime > 0) s.processing_time_ms = ptime / n_ptime;
  return s;
}

Result<std::string> OrchestratorCore::enqueue(std::string kind, const std::string& component, int replicas) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(components.begin(), components.end(),
                         [&](const Component& c) { return c.cfg.name == component; });
  if (it == components.end()) return NotFound("no component named " + component);
  if (kind == "scale") {
    if (it->cfg.type == ComponentType::kLog) {
      return InvalidArgument("the log owner is one process; it cannot be scaled");
    }
    if (replicas < 1 || replicas > 64) return InvalidArgument("replicas must be 1..64");
    if (std::string why = scale_refusal(*it, replicas); !why.empty()) return InvalidArgument(why);
  }
  Operation& op = new_op_locked(kind, component, "pending",
                                kind == "scale" ? fmt::format("to {} replicas", replicas) : "");
  requests.push_back({std::move(kind), component, replicas, op.id});
  cv_.notify_all();
  return op.id;
}

std::string OrchestratorCore::status_json() const {
  std::lock_guard lock(mu_);
  const int64_t now = clock->now_ms();
  std::string out = fmt::format(
      "{{\"deployment\":\"{}\",\"version\":\"{}\",\"pipeline\":\"{}\",\"state_dir\":\"{}\","
      "\"deployed\":{},\"total_throughput\":{},\"components\":[",
      json_escape(cfg.name), SPATE_VERSION, json_escape(cfg.pipeline_path),
      json_escape(cfg.state_dir), all_deployed ? "true" : "false",
      format_metric_value(total_throughput));
  for (size_t i = 0; i < components.size(); ++i) {
    const Component& c = components[i];
    int ready = 0;
    for (int k = 0; k < c.desired && k < static_cast<int>(c.replicas.size()); ++k) {
      ready += c.replicas[static_cast<size_t>(k)].ready ? 1 : 0;
    }
    out += fmt::format(
        "{}{{\"name\":\"{}\",\"type\":\"{}\",\"replicas\":{},\"ready_replicas\":{},\"health\":{},"
        "\"deployed\":{},\"deployment_id\":\"{}\",\"partition_split\":{},\"partitions\":{},"
        "\"scaling\":{{\"enabled\":{},\"min_replicas\":{},\"max_replicas\":{},\"reason\":\"{}\"}},"
        "\"instances\":[",
        i ? "," : "", json_escape(c.cfg.name), component_type_name(c.cfg.type), c.desired, ready,
        format_metric_value(std::round(c.health * 1000) / 1000), c.deployed ? "true" : "false",
        json_escape(c.deployment_id), c.explicit_split ? "true" : "false", c.partitions,
        c.cfg.scaling.enabled ? "true" : "false", c.cfg.scaling.min_replicas,
        c.cfg.scaling.max_replicas, json_escape(c.scaling_reason));
    for (size_t k = 0; k < c.replicas.size(); ++k) {
      const Replica& r = c.replicas[k];
      auto num = [](double v) { return v < 0 ? std::string("null") : format_metric_value(std::round(v * 1000) / 1000); };
      out += fmt::format(
          "{}{{\"index\":{},\"pid\":{},\"pod\":\"{}\",\"port\":{},\"state\":\"{}\",\"ready\":{},\"health\":{},"
          "\"restarts\":{},\"last_exit\":\"{}\",\"adopted\":{},\"uptime_ms\":{},"
          "\"restart_in_ms\":{},\"lag\":{},\"cpu_utilization\":{},\"error_rate\":{},"
          "\"processed_per_second\":{},\"accepted_per_second\":{}}}",
          k ? "," : "", r.index, r.proc.pid, json_escape(r.pod), r.port, r.state, r.ready ? "true" : "false",
          format_metric_value(std::round(r.health * 1000) / 1000), r.restarts,
          json_escape(r.last_exit), r.adopted ? "true" : "false",
          r.running() ? now - r.started_ms : 0,
          r.restart_at_ms > now ? r.restart_at_ms - now : 0, num(r.lag), num(r.cpu_util),
          num(r.error_rate), num(r.processed_rate), num(r.accepted_rate));
    }
    out += "]}";
  }
  out += "],\"operations\":[";
  bool first = true;
  for (auto it = operations.rbegin(); it != operations.rend(); ++it) {
    const Operation& op = *it;
    out += fmt::format("{}{{\"id\":\"{}\",\"operation\":\"{}\",\"component\":\"{}\",\"status\":\"{}\","
                       "\"detail\":\"{}\",\"at_ms\":{},\"finished_ms\":{}}}",
                       first ? "" : ",", op.id, op.operation, json_escape(op.component), op.status,
                       json_escape(op.detail), op.at_ms, op.finished_ms);
    first = false;
  }
  out += "]";
  if (std::string extra = extra_status_json(); !extra.empty()) out += "," + extra;
  out += "}";
  return out;
}

void OrchestratorCore::register_metrics() {
  for (const Component& c : components) {
    const std::string name = c.cfg.name;
    metric_callbacks.emplace_back(
        metrics, metrics->gauge_fn("streaming_component_health",
                                   "Health of a component, 0 (down) to 1 (every replica live, "
                                   "ready, without errors or excess lag)",
                                   {{"component", name}}, [this, name] {
                                     std::lock_guard lock(mu_);
                                     for (const Component& k : components) {
                                       if (k.cfg.name == name) return k.health;
                                     }
                                     return 0.0;
                                   }));
    metric_callbacks.emplace_back(
        metrics, metrics->gauge_fn("orchestration_replicas", "Desired replicas of a component",
                                   {{"component", name}}, [this, name] {
                                     std::lock_guard lock(mu_);
                                     for (const Component& k : components) {
                                       if (k.cfg.name == name) return static_cast<double>(k.desired);
                                     }
                                     return 0.0;
                                   }));
    metric_callbacks.emplace_back(
        metrics, metrics->counter_fn("orchestration_restarts_total",
                                     "Replica restarts by the orchestrator (healing)",
                                     {{"component", name}}, [this, name] {
                                       std::lock_guard lock(mu_);
                                       double n = 0;
                                       for (const Component& k : components) {
                                         if (k.cfg.name != name) continue;
                                         for (const Replica& r : k.replicas) n += r.restarts;
                                       }
                                       return n;
                                     }));
  }
  for (ComponentType t : {ComponentType::kLog, ComponentType::kIngestion, ComponentType::kProcessor,
                          ComponentType::kAnalytics}) {
    metric_callbacks.emplace_back(
        metrics, metrics->gauge_fn("streaming_active_components",
                                   "Components of a type with at least one ready replica",
                                   {{"type", component_type_name(t)}}, [this, t] {
                                     std::lock_guard lock(mu_);
                                     double n = 0;
                                     for (const Component& k : components) {
                                       if (k.cfg.type != t) continue;
                                       n += std::any_of(k.replicas.begin(), k.replicas.end(),
                                                        [](const Replica& r) { return r.ready; })
                                                ? 1
                                                : 0;
                                     }
                                     return n;
                                   }));
  }
  metric_callbacks.emplace_back(
      metrics, metrics->gauge_fn("streaming_total_throughput",
                                 "Events per second accepted by the deployment's ingestion", {},
                                 [this] {
                                   std::lock_guard lock(mu_);
                                   return total_throughput;
                                 }));
  for (const char* op : {"deploy", "heal", "scale", "adopt", "stop"}) {
    (void)op_counter(op, "success");
  }
}

bool OrchestratorCore::settle_component(Component& c) {
  const bool ready = component_ready(c);
  double h = 0;
  for (int i = 0; i < c.desired && i < static_cast<int>(c.replicas.size()); ++i) {
    const Replica& r = c.replicas[static_cast<size_t>(i)];
    h += r.running() ? r.health : 0.0;
  }
  std::lock_guard lock(mu_);
  c.health = c.desired > 0 ? h / c.desired : 0;
  if (ready && !c.deployed) {
    c.deployed = true;
    spdlog::info("orchestrator: {} is ready ({} replica{})", c.cfg.name, c.desired,
                 c.desired == 1 ? "" : "s");
    finish_op_locked(c.deployment_id, "success", fmt::format("{} replicas ready", c.desired));
  }
  return ready;
}

void OrchestratorCore::update_totals() {
  std::lock_guard lock(mu_);
  bool all = true;
  double throughput = 0;
  for (const Component& c : components) {
    all = all && c.deployed;
    for (const Replica& r : c.replicas) {
      if (r.running() && c.cfg.type == ComponentType::kIngestion) throughput += r.accepted_rate;
    }
  }
  if (all && !all_deployed) spdlog::info("orchestrator: deployment {} is up", cfg.name);
  all_deployed = all_deployed || all;
  total_throughput = throughput;
}

std::optional<int> OrchestratorCore::autoscale_decision(Component& c, int64_t now, std::string* op_id) {
  if (!c.cfg.scaling.enabled || !c.scaler) return std::nullopt;
  const ScalingSample s = sample(c);
  const ScalingDecision d = c.scaler->decide(s, now);
  std::lock_guard lock(mu_);
  c.scaling_reason = d.reason;
  if (d.replicas == c.desired) return std::nullopt;
  spdlog::info("orchestrator: scaling {} from {} to {}: {}", c.cfg.name, c.desired, d.replicas, d.reason);
  *op_id = new_op_locked("scale", c.cfg.name, "running",
                         fmt::format("auto: {} -> {}: {}", c.desired, d.replicas, d.reason))
               .id;
  return d.replicas;
}

}  // namespace spate::orchestrate
