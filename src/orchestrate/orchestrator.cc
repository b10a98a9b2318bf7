// StreamingOrchestrator with the local backend (docs/orchestrator.md).
//
// One monitor thread owns every component and replica: it alone changes them (under mu_, so
// that /status can read a consistent picture), and reads them without the lock. Admin requests
// (heal, scale, deploy) are queued and run by the monitor between ticks.
#include "spate/orchestrator.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "base/clock.h"
#include "base/json_escape.h"
#include "orchestrate/local_process.h"
#include "orchestrate/policy.h"
#include "orchestrate/prom_text.h"
#include "server/admin.h"
#include "server/http_client.h"
#include "server/http_server.h"
#include "spate/metrics.h"
#include "spate/version.h"

namespace spate {

using orchestrate::Autoscaler;
using orchestrate::ProcessId;
using orchestrate::PromText;
using orchestrate::RestartBackoff;
using orchestrate::ScalingSample;

namespace {

constexpr size_t kMaxOperations = 100;

struct Replica {
  int index = 0;
  int of = 0;  // the replica count it was started with (explicit partition split); 0 = dynamic
  ProcessId proc;
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

std::string host_for_probes(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host.empty() ? "127.0.0.1" : host;
}

}  // namespace

struct StreamingOrchestrator::Impl {
  DeploymentConfig cfg;
  MetricsRegistry* metrics;
  Clock* clock = system_clock();
  std::mt19937_64 rng{std::random_device{}()};
  std::string binary;
  std::string probe_host;

  mutable std::mutex mu_;  // guards the fields below for readers on other threads
  std::vector<Component> components;
  std::deque<Operation> operations;
  uint64_t next_op = 1;
  std::deque<Request> requests;
  bool all_deployed = false;
  double total_throughput = 0;

  std::condition_variable cv_;
  std::atomic<bool> stopping{false};
  std::thread monitor;
  std::unique_ptr<HttpServer> server;
  bool started = false;
  bool stopped = false;

  Counter& op_counter(const std::string& op, const std::string& status) {
    return metrics->counter("orchestration_operations_total",
                            "Orchestration operations by kind and outcome",
                            {{"operation", op}, {"status", status}});
  }

  // --- operations -------------------------------------------------------------------------
  // Callers hold mu_.
  Operation& new_op_locked(std::string operation, std::string component, std::string status,
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
  void finish_op_locked(const std::string& id, const std::string& status, std::string detail) {
    for (Operation& op : operations) {
      if (op.id != id) continue;
      op.status = status;
      if (!detail.empty()) op.detail = std::move(detail);
      op.finished_ms = clock->now_ms();
      op_counter(op.operation, status).inc();
      return;
    }
  }
  // A finished operation in one step (monitor thread).
  std::string record(const std::string& operation, const std::string& component,
                     const std::string& status, std::string detail) {
    std::lock_guard lock(mu_);
    Operation& op = new_op_locked(operation, component, status, std::move(detail));
    op.finished_ms = op.at_ms;
    op_counter(operation, status).inc();
    return op.id;
  }

  // --- state file ---------------------------------------------------------------------------
  std::string state_path() const { return cfg.state_dir + "/state.json"; }

  void save_state() {
    std::string out = fmt::format("{{\"deployment\":\"{}\",\"next_op\":{},\"components\":[",
                                  json_escape(cfg.name), next_op);
    {
      std::lock_guard lock(mu_);
      for (size_t i = 0; i < components.size(); ++i) {
        const Component& c = components[i];
        out += fmt::format("{}{{\"name\":\"{}\",\"desired\":{},\"last_scale_ms\":{},\"deployment_id\":\"{}\","
                           "\"replicas\":[",
                           i ? "," : "", json_escape(c.cfg.name), c.desired, c.last_scale_ms,
                           json_escape(c.deployment_id));
        bool first = true;
        for (const Replica& r : c.replicas) {
          out += fmt::format("{}{{\"index\":{},\"of\":{},\"pid\":{},\"start_ticks\":{},\"port\":{},"
                             "\"started_ms\":{},\"restarts\":{}}}",
                             first ? "" : ",", r.index, r.of, r.proc.pid, r.proc.start_ticks, r.port,
                             r.started_ms, r.restarts);
          first = false;
        }
        out += "]}";
      }
    }
    out += "]}\n";
    const std::string tmp = state_path() + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << out;
      f.flush();
      if (!f) {
        spdlog::warn("orchestrator: cannot write {}", tmp);
        return;
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, state_path(), ec);
    if (ec) spdlog::warn("orchestrator: cannot replace {}: {}", state_path(), ec.message());
  }

  // Adopt the replicas of the state file that still run; keep their ports.
  void load_state() {
    std::ifstream f(state_path());
    if (!f) return;
    std::stringstream ss;
    ss << f.rdbuf();
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(simdjson::padded_string(ss.str())).get(root)) {
      spdlog::warn("orchestrator: {} is not valid JSON; starting afresh", state_path());
      return;
    }
    int64_t n = 0;
    if (!root["next_op"].get(n)) next_op = static_cast<uint64_t>(std::max<int64_t>(n, 1));
    simdjson::dom::array comps;
    if (root["components"].get(comps)) return;
    for (simdjson::dom::element ce : comps) {
      std::string_view name;
      if (ce["name"].get(name)) continue;
      auto it = std::find_if(components.begin(), components.end(),
                             [&](const Component& c) { return c.cfg.name == name; });
      if (it == components.end()) continue;
      Component& c = *it;
      int64_t desired = 0;
      if (!ce["desired"].get(desired) && desired >= 1 && desired <= 64) {
        c.desired = static_cast<int>(std::clamp<int64_t>(desired, c.cfg.scaling.min_replicas,
                                                         std::max(c.cfg.scaling.max_replicas, 1)));
        if (!c.cfg.scaling.enabled) c.desired = static_cast<int>(desired);
      }
      int64_t last_scale = 0;
      if (!ce["last_scale_ms"].get(last_scale) && last_scale > 0) {
        c.last_scale_ms = last_scale;
        if (c.scaler) c.scaler->restore_last_scale(last_scale);
      }
      std::string_view dep;
      if (!ce["deployment_id"].get(dep)) c.deployment_id = std::string(dep);
      simdjson::dom::array reps;
      if (ce["replicas"].get(reps)) continue;
      for (simdjson::dom::element re : reps) {
        int64_t index = 0, of = 0, pid = 0, port = 0, started = 0, restarts = 0;
        uint64_t ticks = 0;
        if (re["index"].get(index) || re["pid"].get(pid) || re["port"].get(port)) continue;
        if (re["of"].get(of)) of = 0;
        if (re["start_ticks"].get(ticks)) ticks = 0;
        if (re["started_ms"].get(started)) started = 0;
        if (re["restarts"].get(restarts)) restarts = 0;
        if (index < 0 || index >= 64) continue;
        Replica& r = slot(c, static_cast<int>(index));
        r.port = static_cast<uint16_t>(port);
        r.restarts = static_cast<int>(restarts);
        ProcessId p{static_cast<int>(pid), ticks};
        if (pid > 0 && orchestrate::process_alive(p)) {
          r.proc = p;
          r.of = static_cast<int>(of);
          r.adopted = true;
          r.answered = true;
          r.started_ms = started;
          r.state = "starting";
          record("adopt", c.cfg.name, "success",
                 fmt::format("replica {} (pid {}, port {}) still runs", index, pid, port));
          spdlog::info("orchestrator: adopted {} replica {} (pid {}, port {})", c.cfg.name, index,
                       pid, port);
        }
      }
    }
  }

  Replica& slot(Component& c, int index) {
    std::lock_guard lock(mu_);
    while (static_cast<int>(c.replicas.size()) <= index) {
      Replica r;
      r.index = static_cast<int>(c.replicas.size());
      r.backoff = std::make_unique<RestartBackoff>(c.cfg.healing);
      c.replicas.push_back(std::move(r));
    }
    return c.replicas[static_cast<size_t>(index)];
  }

  // --- launching ----------------------------------------------------------------------------
  const Component* log_component() const {
    for (const Component& c : components) {
      if (c.cfg.type == ComponentType::kLog) return &c;
    }
    return nullptr;
  }

  std::vector<std::string> argv_for(const Component& c, const Replica& r) const {
    std::vector<std::string> a = {binary, "run", cfg.pipeline_path};
    auto add = [&](std::string k, std::string v) {
      a.push_back(std::move(k));
      a.push_back(std::move(v));
    };
    switch (c.cfg.type) {
      case ComponentType::kLog:
        add("--role", "log");
        break;
      case ComponentType::kIngestion:
        add("--role", "ingestion");
        break;
      case ComponentType::kProcessor:
        add("--role", "processors");
        for (const std::string& p : c.cfg.processors) add("--processor", p);
        break;
      case ComponentType::kAnalytics:
        add("--role", "analytics");
        for (const std::string& j : c.cfg.analytics) add("--analytics", j);
        break;
    }
    if (c.cfg.type == ComponentType::kIngestion) {
      add("--port", std::to_string(ingest_port(c)));
      add("--metrics-port", std::to_string(r.port));
      if (std::max(c.desired, c.cfg.scaling.max_replicas) > 1) a.push_back("--reuse-port");
    } else {
      add("--port", std::to_string(r.port));
    }
    if (const Component* lc = log_component(); lc != nullptr && c.cfg.type != ComponentType::kLog) {
      add("--log-url", fmt::format("http://{}:{}", probe_host, lc->replicas.empty() ? 0 : lc->replicas[0].port));
    }
    if (c.explicit_split) add("--replica", fmt::format("{}/{}", r.index, c.desired));
    return a;
  }

  int ingest_port(const Component& c) const {
    return c.cfg.port != 0 ? c.cfg.port : cfg.pipeline.server.port;
  }

  bool launch(Component& c, Replica& r) {
    if (r.port == 0) {
      auto port = orchestrate::pick_free_port(probe_host);
      if (!port.ok()) {
        spdlog::error("orchestrator: {}: no free port: {}", c.cfg.name, port.status().to_string());
        return false;
      }
      r.port = *port;
    }
    orchestrate::SpawnSpec spec;
    spec.argv = argv_for(c, r);
    spec.env = c.cfg.env;
    spec.env.emplace_back("SPATE_COMPONENT", c.cfg.name);
    spec.env.emplace_back("SPATE_REPLICA", std::to_string(r.index));
    spec.log_path = fmt::format("{}/logs/{}-{}.log", cfg.state_dir, c.cfg.name, r.index);
    auto p = orchestrate::spawn_process(spec);
    std::lock_guard lock(mu_);
    if (!p.ok()) {
      r.state = "backoff";
      r.last_exit = p.status().message();
      return false;
    }
    r.proc = *p;
    r.of = c.explicit_split ? c.desired : 0;
    r.started_ms = clock->now_ms();
    r.adopted = false;
    r.state = "starting";
    r.healthy = r.ready = r.answered = r.was_ready = false;
    r.failed_probes = 0;
    r.restart_at_ms = 0;
    r.prev_ms = 0;
    r.cpu_util = r.mem_util = r.lag = r.queue = r.ptime_ms = -1;
    spdlog::info("orchestrator: started {} replica {} (pid {}, port {})", c.cfg.name, r.index,
                 r.proc.pid, r.port);
    return true;
  }

  // SIGTERM, wait up to the stop timeout, then SIGKILL. Returns how it ended.
  std::string stop_replica(const Component& c, Replica& r) {
    if (r.proc.pid <= 0) return "not running";
    std::string how = "stopped";
    if (orchestrate::signal_process(r.proc, SIGTERM)) {
      const int64_t deadline = clock->now_ms() + c.cfg.stop_timeout_ms;
      while (orchestrate::process_alive(r.proc) && clock->now_ms() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (orchestrate::process_alive(r.proc)) {
        orchestrate::signal_process(r.proc, SIGKILL);
        how = "killed after the stop timeout";
        for (int i = 0; i < 250 && orchestrate::process_alive(r.proc); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
    }
    std::lock_guard lock(mu_);
    r.proc = {};
    r.state = "stopped";
    r.healthy = r.ready = false;
    return how;
  }

  // --- probing ------------------------------------------------------------------------------
  void probe(Component& c, Replica& r, int64_t now) {
    std::string exit_status;
    if (!orchestrate::process_alive(r.proc, &exit_status)) {
      failed(c, r, now, "exited (" + exit_status + ")");
      return;
    }
    const int64_t to = cfg.probe_timeout_ms;
    auto h = http_request(probe_host, r.port, "GET", "/health", {}, {}, to);
    const bool healthy = h.ok() && h->status == 200;
    bool ready = false;
    PromText m;
    bool have_metrics = false;
    if (healthy) {
      auto rd = http_request(probe_host, r.port, "GET", "/ready", {}, {}, to);
      ready = rd.ok() && rd->status == 200;
      auto mt = http_request(probe_host, r.port, "GET", "/metrics", {}, {}, to);
      if (mt.ok() && mt->status == 200) {
        m = orchestrate::parse_prometheus_text(mt->body);
        have_metrics = true;
      }
    }
    {
      std::lock_guard lock(mu_);
      r.healthy = healthy;
      r.ready = ready;
      r.failed_probes = healthy || !r.answered ? 0 : r.failed_probes + 1;
      if (have_metrics) update_metrics(c, r, m, now);
      if (healthy) r.answered = true;
      if (ready) {
        r.state = "ready";
        r.was_ready = true;
      } else if (healthy) {
        r.state = r.was_ready ? "not_ready" : "starting";
      } else {
        r.state = r.answered ? "unresponsive" : "starting";
      }
      const double lag_target = static_cast<double>(c.cfg.scaling.target_consumer_lag);
      r.health = orchestrate::replica_health(true, healthy, ready, r.error_rate,
                                             r.lag < 0 ? 0 : r.lag, lag_target);
    }
    if (!c.cfg.healing.enabled) return;
    if (r.failed_probes >= c.cfg.healing.unresponsive_probes) {
      orchestrate::signal_process(r.proc, SIGKILL);
      failed(c, r, now, fmt::format("stopped answering ({} failed probes); killed", r.failed_probes));
    } else if (!ready && !r.was_ready && !r.adopted &&
               now - r.started_ms > c.cfg.healing.ready_timeout_ms) {
      orchestrate::signal_process(r.proc, SIGKILL);
      failed(c, r, now, fmt::format("not ready {} ms after start; killed", now - r.started_ms));
    }
  }

  void update_metrics(const Component& c, Replica& r, const PromText& m, int64_t now) {
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

  // A replica exited or was killed: schedule its restart with backoff.
  void failed(Component& c, Replica& r, int64_t now, const std::string& why) {
    // Reap what is left (a killed child).
    for (int i = 0; i < 100 && orchestrate::process_alive(r.proc); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const int64_t delay =
        r.backoff->next_delay_ms(now, std::uniform_real_distribution<double>(0, 1)(rng));
    const bool loop = r.backoff->crash_loop(now);
    {
      std::lock_guard lock(mu_);
      r.proc = {};
      r.healthy = r.ready = false;
      r.last_exit = why;
      r.restarts++;
      r.state = loop ? "crash_loop" : "backoff";
      r.restart_at_ms = now + std::max<int64_t>(delay, 1);
    }
    if (!c.cfg.healing.enabled) {
      std::lock_guard lock(mu_);
      r.state = "failed";
      r.restart_at_ms = 0;
    }
    if (loop) {
      spdlog::error("orchestrator: {} replica {} is crash-looping ({} restarts within {} s): {}; next "
                    "try in {} ms (log: {}/logs/{}-{}.log)",
                    c.cfg.name, r.index, r.backoff->restarts_in_window(now),
                    c.cfg.healing.crash_loop_window_ms / 1000, why, delay, cfg.state_dir, c.cfg.name,
                    r.index);
    } else {
      spdlog::warn("orchestrator: {} replica {} {}; restarting in {} ms", c.cfg.name, r.index, why, delay);
    }
    record("heal", c.cfg.name, loop ? "crash_loop" : "scheduled",
           fmt::format("replica {} {}; restart in {} ms", r.index, why, delay));
  }

  // --- the monitor --------------------------------------------------------------------------
  static int phase(ComponentType t) {
    return t == ComponentType::kLog ? 0 : t == ComponentType::kIngestion ? 2 : 1;
  }

  bool component_ready(const Component& c) const {
    if (static_cast<int>(c.replicas.size()) < c.desired) return false;
    for (int i = 0; i < c.desired; ++i) {
      if (!c.replicas[static_cast<size_t>(i)].ready) return false;
    }
    return true;
  }

  void tick() {
    const int64_t now = clock->now_ms();
    run_requests();
    bool earlier_ready = true;
    int current_phase = 0;
    bool phase_ready = true;
    bool changed = false;
    for (Component& c : components) {
      if (phase(c.cfg.type) != current_phase) {
        earlier_ready = earlier_ready && phase_ready;
        current_phase = phase(c.cfg.type);
        phase_ready = true;
      }
      // Replicas beyond the desired count (after a scale-down that was interrupted) go away.
      for (size_t i = static_cast<size_t>(c.desired); i < c.replicas.size(); ++i) {
        if (c.replicas[i].proc.pid > 0) {
          stop_replica(c, c.replicas[i]);
          changed = true;
        }
      }
      // An explicit split started with another count must be restarted as a whole.
      if (c.explicit_split) {
        bool mismatch = false;
        for (int i = 0; i < c.desired && i < static_cast<int>(c.replicas.size()); ++i) {
          const Replica& r = c.replicas[static_cast<size_t>(i)];
          mismatch = mismatch || (r.proc.pid > 0 && r.of != c.desired);
        }
        if (mismatch) {
          spdlog::info("orchestrator: {} runs replicas of another count; restarting them as {}",
                       c.cfg.name, c.desired);
          for (Replica& r : c.replicas) stop_replica(c, r);
          changed = true;
        }
      }
      if (!c.deployed && !earlier_ready) {
        phase_ready = false;
        continue;  // waits for the phase before it
      }
      for (int i = 0; i < c.desired; ++i) {
        Replica& r = slot(c, i);
        if (r.proc.pid > 0) {
          probe(c, r, now);
          if (r.proc.pid <= 0) changed = true;
        } else if (r.state == "failed") {
          // healing disabled: stays down
        } else if (r.restart_at_ms == 0 || r.restart_at_ms <= now) {
          const bool restart = r.restart_at_ms != 0;
          if (launch(c, r)) {
            changed = true;
            if (restart) {
              record("heal", c.cfg.name, "success",
                     fmt::format("replica {} restarted (restart {})", i, r.restarts));
            }
          } else {
            failed(c, r, now, "could not be started: " + r.last_exit);
          }
        }
      }
      const bool ready = component_ready(c);
      if (!ready) phase_ready = false;
      double h = 0;
      for (int i = 0; i < c.desired && i < static_cast<int>(c.replicas.size()); ++i) {
        const Replica& r = c.replicas[static_cast<size_t>(i)];
        h += r.proc.pid > 0 ? r.health : 0.0;
      }
      {
        std::lock_guard lock(mu_);
        c.health = c.desired > 0 ? h / c.desired : 0;
        if (ready && !c.deployed) {
          c.deployed = true;
          spdlog::info("orchestrator: {} is ready ({} replica{})", c.cfg.name, c.desired,
                       c.desired == 1 ? "" : "s");
          finish_op_locked(c.deployment_id, "success", fmt::format("{} replicas ready", c.desired));
        }
      }
      if (c.deployed && ready) autoscale(c, now);
    }
    {
      std::lock_guard lock(mu_);
      bool all = true;
      double throughput = 0;
      for (const Component& c : components) {
        all = all && c.deployed;
        for (const Replica& r : c.replicas) {
          if (r.proc.pid > 0 && c.cfg.type == ComponentType::kIngestion) throughput += r.accepted_rate;
        }
      }
      if (all && !all_deployed) spdlog::info("orchestrator: deployment {} is up", cfg.name);
      all_deployed = all_deployed || all;
      total_throughput = throughput;
    }
    if (changed) save_state();
  }

  ScalingSample sample(const Component& c) const {
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

  void autoscale(Component& c, int64_t now) {
    if (!c.cfg.scaling.enabled || !c.scaler) return;
    const ScalingSample s = sample(c);
    const orchestrate::ScalingDecision d = c.scaler->decide(s, now);
    {
      std::lock_guard lock(mu_);
      c.scaling_reason = d.reason;
    }
    if (d.replicas == c.desired) return;
    spdlog::info("orchestrator: scaling {} from {} to {}: {}", c.cfg.name, c.desired, d.replicas, d.reason);
    std::string id;
    {
      std::lock_guard lock(mu_);
      id = new_op_locked("scale", c.cfg.name, "running",
                         fmt::format("auto: {} -> {}: {}", c.desired, d.replicas, d.reason))
               .id;
    }
    rescale(c, d.replicas, id);
  }

  // Change the replica count. Replicas with an explicit partition split are all stopped
  // (draining, committing) before the new set starts, so no partition has two owners.
  void rescale(Component& c, int replicas, const std::string& op_id) {
    const int from = c.desired;
    if (c.explicit_split) {
      for (auto it = c.replicas.rbegin(); it != c.replicas.rend(); ++it) stop_replica(c, *it);
    } else {
      for (size_t i = static_cast<size_t>(replicas); i < c.replicas.size(); ++i) stop_replica(c, c.replicas[i]);
    }
    {
      std::lock_guard lock(mu_);
      c.desired = replicas;
      if (static_cast<int>(c.replicas.size()) > replicas) c.replicas.resize(static_cast<size_t>(replicas));
      for (Replica& r : c.replicas) r.restart_at_ms = 0;
      c.last_scale_ms = clock->now_ms();
    }
    if (c.scaler) c.scaler->scaled(clock->now_ms());
    const int64_t now = clock->now_ms();
    for (int i = 0; i < replicas; ++i) {
      Replica& r = slot(c, i);
      if (r.proc.pid <= 0 && !launch(c, r)) failed(c, r, now, "could not be started: " + r.last_exit);
    }
    {
      std::lock_guard lock(mu_);
      finish_op_locked(op_id, "success", fmt::format("{} -> {} replicas", from, replicas));
    }
    save_state();
  }

  void run_requests() {
    for (;;) {
      Request req;
      {
        std::lock_guard lock(mu_);
        if (requests.empty()) return;
        req = std::move(requests.front());
        requests.pop_front();
      }
      auto it = std::find_if(components.begin(), components.end(),
                             [&](const Component& c) { return c.cfg.name == req.component; });
      if (it == components.end()) continue;
      Component& c = *it;
      if (req.kind == "scale") {
        if (req.replicas == c.desired) {
          std::lock_guard lock(mu_);
          finish_op_locked(req.op_id, "success", fmt::format("already {} replicas", c.desired));
          continue;
        }
        rescale(c, req.replicas, req.op_id);
      } else if (req.kind == "heal") {
        std::vector<std::string> healed;
        const int64_t now = clock->now_ms();
        for (int i = 0; i < c.desired && i < static_cast<int>(c.replicas.size()); ++i) {
          Replica& r = c.replicas[static_cast<size_t>(i)];
          if (r.proc.pid > 0 && r.ready) continue;
          if (r.proc.pid > 0) {
            orchestrate::signal_process(r.proc, SIGKILL);
            for (int k = 0; k < 250 && orchestrate::process_alive(r.proc); ++k) {
              std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
          }
          {
            std::lock_guard lock(mu_);
            r.proc = {};
            r.restarts++;
            r.state = "pending";
          }
          if (launch(c, r)) {
            healed.push_back(std::to_string(i));
          } else {
            failed(c, r, now, "could not be started: " + r.last_exit);
          }
        }
        std::lock_guard lock(mu_);
        std::string list;
        for (const auto& h : healed) list += (list.empty() ? "" : ", ") + h;
        finish_op_locked(req.op_id, "success",
                         healed.empty() ? "every replica was healthy" : "restarted replicas " + list);
      } else if (req.kind == "deploy") {
        {
          std::lock_guard lock(mu_);
          for (Replica& r : c.replicas) {
            if (r.proc.pid <= 0) r.restart_at_ms = 0;
            if (r.state == "failed") r.state = "pending";
          }
          finish_op_locked(req.op_id, "success", "missing replicas started");
        }
      }
      save_state();
    }
  }

  void monitor_loop() {
    while (!stopping.load()) {
      tick();
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(cfg.monitor_interval_ms),
                   [&] { return stopping.load() || !requests.empty(); });
    }
  }

  Result<std::string> enqueue(std::string kind, const std::string& component, int replicas) {
    std::lock_guard lock(mu_);
    auto it = std::find_if(components.begin(), components.end(),
                           [&](const Component& c) { return c.cfg.name == component; });
    if (it == components.end()) return NotFound("no component named " + component);
    if (kind == "scale") {
      if (it->cfg.type == ComponentType::kLog) {
        return InvalidArgument("the log owner is one process; it cannot be scaled");
      }
      if (replicas < 1 || replicas > 64) return InvalidArgument("replicas must be 1..64");
      if (it->cfg.type == ComponentType::kIngestion && replicas > 1 &&
          std::max(it->cfg.replicas, it->cfg.scaling.max_replicas) == 1) {
        return InvalidArgument(
            "ingestion was deployed for one replica (no shared port); set scaling.max_replicas "
            "in the deployment file");
      }
    }
    Operation& op = new_op_locked(kind, component, "pending",
                                  kind == "scale" ? fmt::format("to {} replicas", replicas) : "");
    requests.push_back({std::move(kind), component, replicas, op.id});
    cv_.notify_all();
    return op.id;
  }

  // --- /status and /metrics -----------------------------------------------------------------
  std::string status_json() const {
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
            "{}{{\"index\":{},\"pid\":{},\"port\":{},\"state\":\"{}\",\"ready\":{},\"health\":{},"
            "\"restarts\":{},\"last_exit\":\"{}\",\"adopted\":{},\"uptime_ms\":{},"
            "\"restart_in_ms\":{},\"lag\":{},\"cpu_utilization\":{},\"error_rate\":{},"
            "\"processed_per_second\":{},\"accepted_per_second\":{}}}",
            k ? "," : "", r.index, r.proc.pid, r.port, r.state, r.ready ? "true" : "false",
            format_metric_value(std::round(r.health * 1000) / 1000), r.restarts,
            json_escape(r.last_exit), r.adopted ? "true" : "false",
            r.proc.pid > 0 ? now - r.started_ms : 0,
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
    out += "]}";
    return out;
  }

  std::vector<ScopedMetricCallback> metric_callbacks;

  void register_metrics() {
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
};

StreamingOrchestrator::StreamingOrchestrator(DeploymentConfig cfg, MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
  impl_->metrics = metrics != nullptr ? metrics : &global_metrics();
}

StreamingOrchestrator::~StreamingOrchestrator() { stop(false); }

Status StreamingOrchestrator::start() {
  Impl& m = *impl_;
  if (m.started) return Internal("orchestrator already started");
  const DeploymentConfig& cfg = m.cfg;
  std::error_code ec;
  std::filesystem::create_directories(cfg.state_dir + "/logs", ec);
  if (ec) return Unavailable("cannot create " + cfg.state_dir + "/logs: " + ec.message());
  m.binary = cfg.spate_binary;
  if (m.binary.empty()) {
    m.binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) return Unavailable("cannot find this executable: " + ec.message());
  }
  m.probe_host = host_for_probes(cfg.pipeline.server.host);
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
    m.components.push_back(std::move(c));
  }
  m.load_state();
  for (Component& c : m.components) {
    if (c.scaler) c.scaler->seed(m.clock->now_ms(), c.desired);
  }
  // The log owner keeps its port across restarts (the others were started with its URL).
  for (Component& c : m.components) {
    if (c.cfg.type == ComponentType::kLog && c.cfg.port != 0) m.slot(c, 0).port = static_cast<uint16_t>(c.cfg.port);
  }
  for (Component& c : m.components) {
    std::lock_guard lock(m.mu_);
    const bool adopted_all =
        static_cast<int>(c.replicas.size()) >= c.desired &&
        std::all_of(c.replicas.begin(), c.replicas.begin() + c.desired,
                    [](const Replica& r) { return r.proc.pid > 0; });
    Operation& op = m.new_op_locked("deploy", c.cfg.name, "running",
                                    fmt::format("{} replica{}{}", c.desired, c.desired == 1 ? "" : "s",
                                                adopted_all ? " (adopted)" : ""));
    c.deployment_id = op.id;
  }
  m.register_metrics();
  HttpServerConfig hc;
  hc.host = cfg.host;
  hc.port = static_cast<uint16_t>(cfg.port);
  hc.io_threads = 1;
  m.server = std::make_unique<HttpServer>(hc);
  AdminHooks hooks;
  hooks.ready = [&m] {
    std::lock_guard lock(m.mu_);
    return m.all_deployed;
  };
  hooks.status_json = [&m] { return m.status_json(); };
  hooks.metrics = m.metrics;
  install_admin_routes(*m.server, hooks);
  auto answer = [](const Result<std::string>& r, const std::string& what) {
    if (!r.ok()) {
      return HttpResponse::error(r.status().code() == Errc::kNotFound ? 404 : 400, r.status().message());
    }
    return HttpResponse::json(202, fmt::format("{{\"operation\":\"{}\",\"status\":\"pending\",{}}}", *r, what));
  };
  m.server->route_prefix("POST", "/heal/", [this, answer](const HttpRequest& req) {
    const std::string name = url_decode(req.path.substr(6), false);
    return answer(heal(name), fmt::format("\"component\":\"{}\"", json_escape(name)));
  });
  m.server->route_prefix("POST", "/deploy/", [this, answer](const HttpRequest& req) {
    const std::string name = url_decode(req.path.substr(8), false);
    return answer(deploy_component(name), fmt::format("\"component\":\"{}\"", json_escape(name)));
  });
  m.server->route_prefix("POST", "/scale/", [this, answer](const HttpRequest& req) {
    const std::string name = url_decode(req.path.substr(7), false);
    const auto n = req.query_param("replicas");
    int replicas = 0;
    if (!n || std::sscanf(n->c_str(), "%d", &replicas) != 1) {
      return HttpResponse::error(400, "POST /scale/{component}?replicas=N: N missing or not a number");
    }
    return answer(scale(name, replicas),
                  fmt::format("\"component\":\"{}\",\"replicas\":{}", json_escape(name), replicas));
  });
  SPATE_RETURN_IF_ERROR(m.server->start());
  m.started = true;
  m.save_state();
  m.monitor = std::thread([&m] { m.monitor_loop(); });
  spdlog::info("orchestrator: deployment {} ({} components) from {}; admin API on http://{}:{}; state in {}",
               cfg.name, m.components.size(), cfg.pipeline_path, cfg.host, m.server->port(), cfg.state_dir);
  return Status();
}

void StreamingOrchestrator::stop(bool stop_components) {
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  m.stopping.store(true);
  m.cv_.notify_all();
  if (m.monitor.joinable()) m.monitor.join();
  if (stop_components) {
    // Reverse start order: ingestion first (stop taking events), the log last.
    for (auto it = m.components.rbegin(); it != m.components.rend(); ++it) {
      for (auto r = it->replicas.rbegin(); r != it->replicas.rend(); ++r) {
        if (r->proc.pid <= 0) continue;
        const std::string how = m.stop_replica(*it, *r);
        spdlog::info("orchestrator: {} replica {} {}", it->cfg.name, r->index, how);
      }
      m.record("stop", it->cfg.name, "success", "every replica stopped");
    }
    m.save_state();
  }
  if (m.server) m.server->stop();
  m.metric_callbacks.clear();
}

Result<std::string> StreamingOrchestrator::deploy_component(const std::string& component) {
  return impl_->enqueue("deploy", component, 0);
}

Result<std::string> StreamingOrchestrator::heal(const std::string& component) {
  return impl_->enqueue("heal", component, 0);
}

Result<std::string> StreamingOrchestrator::scale(const std::string& component, int replicas) {
  return impl_->enqueue("scale", component, replicas);
}

uint16_t StreamingOrchestrator::port() const { return impl_->server ? impl_->server->port() : 0; }

std::string StreamingOrchestrator::status_json() const { return impl_->status_json(); }

bool StreamingOrchestrator::deployed() const {
  std::lock_guard lock(impl_->mu_);
  return impl_->all_deployed;
}

}  // namespace spate
