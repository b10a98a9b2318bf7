// StreamingOrchestrator with the local backend (docs/orchestrator.md).
//
// One monitor thread owns every component and replica: it alone changes them (under mu_, so
// that /status can read a consistent picture), and reads them without the lock. Admin requests
// (heal, scale, deploy) are queued and run by the monitor between ticks.
#include "spate/orchestrator.h"

#include <fmt/format.h>
#include <signal.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
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

#include "base/clock.h"
#include "base/json_escape.h"
#include "orchestrate/core.h"
#include "orchestrate/local_process.h"
#include "orchestrate/policy.h"
#include "orchestrate/prom_text.h"
#include "server/admin.h"
#include "server/auth.h"
#include "server/http_client.h"
#include "server/http_server.h"
#include "server/web.h"
#include "spate/metrics.h"
#include "spate/version.h"

namespace spate {

using orchestrate::Autoscaler;
using orchestrate::ProcessId;
using orchestrate::PromText;
using orchestrate::RestartBackoff;
using orchestrate::ScalingSample;

namespace {

std::string host_for_probes(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host.empty() ? "127.0.0.1" : host;
}

using orchestrate::Component;
using orchestrate::Operation;
using orchestrate::OrchestratorCore;
using orchestrate::Replica;
using orchestrate::Request;
using orchestrate::start_phase;

class LocalBackend final : public OrchestratorCore {
 public:
  using OrchestratorCore::OrchestratorCore;
  ~LocalBackend() override { stop(false); }
  Status start() override;
  void stop(bool stop_components) override;

 private:
  std::string binary;
  std::string probe_host;
  bool started = false;
  bool stopped = false;

  std::string scale_refusal(const Component& c, int replicas) const override {
    if (c.cfg.type == ComponentType::kIngestion && replicas > 1 &&
        std::max(c.cfg.replicas, c.cfg.scaling.max_replicas) == 1) {
      return "ingestion was deployed for one replica (no shared port); set scaling.max_replicas "
             "in the deployment file";
    }
    return {};
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
        out += fmt::format(
            "{}{{\"name\":\"{}\",\"desired\":{},\"last_scale_ms\":{},\"deployment_id\":\"{}\","
            "\"replicas\":[",
            i ? "," : "", json_escape(c.cfg.name), c.desired, c.last_scale_ms,
            json_escape(c.deployment_id));
        bool first = true;
        for (const Replica& r : c.replicas) {
          out += fmt::format(
              "{}{{\"index\":{},\"of\":{},\"pid\":{},\"start_ticks\":{},\"port\":{},"
              "\"started_ms\":{},\"restarts\":{}}}",
              first ? "" : ",", r.index, r.of, r.proc.pid, r.proc.start_ticks, r.port, r.started_ms,
              r.restarts);
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
      add("--log-url", fmt::format("{}://{}:{}", scheme(), probe_host,
                                   lc->replicas.empty() ? 0 : lc->replicas[0].port));
    }
    if (c.explicit_split) add("--replica", fmt::format("{}/{}", r.index, c.desired));
    return a;
  }

  // The replicas' servers speak what the pipeline's server.tls says.
  const char* scheme() const { return cfg.pipeline.server.tls.enabled ? "https" : "http"; }

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
    // One keep-alive connection for the three requests: one TCP connect and, with TLS, one
    // handshake per probe.
    HttpClient client(probe_host, r.port, to, client_tls_from_env(cfg.pipeline.server.tls.enabled));
    auto h = client.request("GET", "/health");
    const bool healthy = h.ok() && h->status == 200;
    bool ready = false;
    PromText m;
    bool have_metrics = false;
    if (healthy) {
      auto rd = client.request("GET", "/ready");
      ready = rd.ok() && rd->status == 200;
      auto mt = client.request("GET", "/metrics", {}, client_auth_headers());
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
      failed(c, r, now,
             fmt::format("stopped answering ({} failed probes); killed", r.failed_probes));
    } else if (!ready && !r.was_ready && !r.adopted &&
               now - r.started_ms > c.cfg.healing.ready_timeout_ms) {
      orchestrate::signal_process(r.proc, SIGKILL);
      failed(c, r, now, fmt::format("not ready {} ms after start; killed", now - r.started_ms));
    }
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
      spdlog::error(
          "orchestrator: {} replica {} is crash-looping ({} restarts within {} s): {}; next "
          "try in {} ms (log: {}/logs/{}-{}.log)",
          c.cfg.name, r.index, r.backoff->restarts_in_window(now),
          c.cfg.healing.crash_loop_window_ms / 1000, why, delay, cfg.state_dir, c.cfg.name,
          r.index);
    } else {
      spdlog::warn("orchestrator: {} replica {} {}; restarting in {} ms", c.cfg.name, r.index, why,
                   delay);
    }
    record("heal", c.cfg.name, loop ? "crash_loop" : "scheduled",
           fmt::format("replica {} {}; restart in {} ms", r.index, why, delay));
  }

  // --- the monitor --------------------------------------------------------------------------

  void tick() override {
    const int64_t now = clock->now_ms();
    run_requests();
    bool earlier_ready = true;
    int current_phase = 0;
    bool phase_ready = true;
    bool changed = false;
    for (Component& c : components) {
      if (start_phase(c.cfg.type) != current_phase) {
        earlier_ready = earlier_ready && phase_ready;
        current_phase = start_phase(c.cfg.type);
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
      const bool ready = settle_component(c);
      if (!ready) phase_ready = false;
      if (c.deployed && ready) autoscale(c, now);
    }
    update_totals();
    if (changed) save_state();
  }

  void autoscale(Component& c, int64_t now) {
    std::string id;
    if (auto n = autoscale_decision(c, now, &id)) rescale(c, *n, id);
  }

  // Change the replica count. Replicas with an explicit partition split are all stopped
  // (draining, committing) before the new set starts, so no partition has two owners.
  void rescale(Component& c, int replicas, const std::string& op_id) {
    const int from = c.desired;
    if (c.explicit_split) {
      for (auto it = c.replicas.rbegin(); it != c.replicas.rend(); ++it) stop_replica(c, *it);
    } else {
      for (size_t i = static_cast<size_t>(replicas); i < c.replicas.size(); ++i)
        stop_replica(c, c.replicas[i]);
    }
    {
      std::lock_guard lock(mu_);
      c.desired = replicas;
      if (static_cast<int>(c.replicas.size()) > replicas)
        c.replicas.resize(static_cast<size_t>(replicas));
      for (Replica& r : c.replicas) r.restart_at_ms = 0;
      c.last_scale_ms = clock->now_ms();
    }
    if (c.scaler) c.scaler->scaled(clock->now_ms());
    const int64_t now = clock->now_ms();
    for (int i = 0; i < replicas; ++i) {
      Replica& r = slot(c, i);
      if (r.proc.pid <= 0 && !launch(c, r))
        failed(c, r, now, "could not be started: " + r.last_exit);
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
        finish_op_locked(
            req.op_id, "success",
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
};

Status LocalBackend::start() {
  if (started) return Internal("orchestrator already started");
  std::error_code ec;
  std::filesystem::create_directories(cfg.state_dir + "/logs", ec);
  if (ec) return Unavailable("cannot create " + cfg.state_dir + "/logs: " + ec.message());
  binary = cfg.spate_binary;
  if (binary.empty()) {
    binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) return Unavailable("cannot find this executable: " + ec.message());
  }
  probe_host = host_for_probes(cfg.pipeline.server.host);
  build_components();
  load_state();
  for (Component& c : components) {
    if (c.scaler) c.scaler->seed(clock->now_ms(), c.desired);
  }
  // The log owner keeps its port across restarts (the others were started with its URL).
  for (Component& c : components) {
    if (c.cfg.type == ComponentType::kLog && c.cfg.port != 0)
      slot(c, 0).port = static_cast<uint16_t>(c.cfg.port);
  }
  for (Component& c : components) {
    std::lock_guard lock(mu_);
    const bool adopted_all = static_cast<int>(c.replicas.size()) >= c.desired &&
                             std::all_of(c.replicas.begin(), c.replicas.begin() + c.desired,
                                         [](const Replica& r) { return r.proc.pid > 0; });
    Operation& op =
        new_op_locked("deploy", c.cfg.name, "running",
                      fmt::format("{} replica{}{}", c.desired, c.desired == 1 ? "" : "s",
                                  adopted_all ? " (adopted)" : ""));
    c.deployment_id = op.id;
  }
  register_metrics();
  started = true;
  save_state();
  monitor = std::thread([this] { monitor_loop(); });
  return Status();
}

void LocalBackend::stop(bool stop_components) {
  if (!started || stopped) return;
  stopped = true;
  stopping.store(true);
  cv_.notify_all();
  if (monitor.joinable()) monitor.join();
  if (stop_components) {
    // Reverse start order: ingestion first (stop taking events), the log last.
    for (auto it = components.rbegin(); it != components.rend(); ++it) {
      for (auto r = it->replicas.rbegin(); r != it->replicas.rend(); ++r) {
        if (r->proc.pid <= 0) continue;
        const std::string how = stop_replica(*it, *r);
        spdlog::info("orchestrator: {} replica {} {}", it->cfg.name, r->index, how);
      }
      record("stop", it->cfg.name, "success", "every replica stopped");
    }
    save_state();
  }
  metric_callbacks.clear();
}

}  // namespace

struct StreamingOrchestrator::Impl {
  DeploymentConfig cfg;
  MetricsRegistry* metrics = nullptr;
  std::unique_ptr<orchestrate::OrchestratorCore> backend;
  std::unique_ptr<Authenticator> auth;  // before the server: its handlers use it
  std::unique_ptr<HttpServer> server;
  bool started = false;
  bool stopped = false;
};

StreamingOrchestrator::StreamingOrchestrator(DeploymentConfig cfg, MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
  impl_->metrics = metrics != nullptr ? metrics : &global_metrics();
}

StreamingOrchestrator::~StreamingOrchestrator() {
  stop(false);
}

Status StreamingOrchestrator::start() {
  Impl& m = *impl_;
  if (m.started) return Internal("orchestrator already started");
  const DeploymentConfig& cfg = m.cfg;
  if (cfg.backend == "kubernetes") {
    m.backend = orchestrate::make_k8s_backend(cfg, m.metrics);
  } else {
    m.backend = std::make_unique<LocalBackend>(cfg, m.metrics);
  }
  HttpServerConfig hc;
  hc.host = cfg.host;
  hc.port = static_cast<uint16_t>(cfg.port);
  hc.io_threads = 1;
  // The pipeline's server.auth protects the orchestrator's API too (its operations need admin).
  if (cfg.pipeline.server.auth.enabled) {
    m.auth = std::make_unique<Authenticator>(cfg.pipeline.server.auth, m.metrics);
    hc.authorize = m.auth->authorizer();
  }
  hc.tls = http_tls_config(cfg.pipeline.server.tls, m.metrics);
  m.server = std::make_unique<HttpServer>(hc);
  AdminHooks hooks;
  orchestrate::OrchestratorCore* b = m.backend.get();
  hooks.ready = [b] { return b->deployed(); };
  hooks.status_json = [b] { return b->status_json(); };
  hooks.metrics = m.metrics;
  install_admin_routes(*m.server, hooks);
  auto answer = [](const Result<std::string>& r, const std::string& what) {
    if (!r.ok()) {
      return HttpResponse::error(r.status().code() == Errc::kNotFound ? 404 : 400,
                                 r.status().message());
    }
    return HttpResponse::json(
        202, fmt::format("{{\"operation\":\"{}\",\"status\":\"pending\",{}}}", *r, what));
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
      return HttpResponse::error(400,
                                 "POST /scale/{component}?replicas=N: N missing or not a number");
    }
    return answer(scale(name, replicas),
                  fmt::format("\"component\":\"{}\",\"replicas\":{}", json_escape(name), replicas));
  });
  WebHooks web;
  web.ui = false;  // the web UI is spate run's; the API docs are here too
  install_web_routes(*m.server, web);
  // The admin port first: when it is taken, nothing has been started or adopted yet.
  SPATE_RETURN_IF_ERROR(m.server->start());
  if (Status s = m.backend->start(); !s.ok()) {
    m.server->stop();
    return s;
  }
  m.started = true;
  spdlog::info(
      "orchestrator: deployment {} ({} backend, {} components) from {}; admin API on {}://{}:{}; "
      "state in {}",
      cfg.name, cfg.backend, cfg.components.size(), cfg.pipeline_path,
      cfg.pipeline.server.tls.enabled ? "https" : "http", cfg.host, m.server->port(),
      cfg.state_dir);
  return Status();
}

void StreamingOrchestrator::stop(bool stop_components) {
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  m.backend->stop(stop_components);
  if (m.server) m.server->stop();
}

Result<std::string> StreamingOrchestrator::deploy_component(const std::string& component) {
  if (!impl_->backend) return Unavailable("the orchestrator is not started");
  return impl_->backend->enqueue("deploy", component, 0);
}

Result<std::string> StreamingOrchestrator::heal(const std::string& component) {
  if (!impl_->backend) return Unavailable("the orchestrator is not started");
  return impl_->backend->enqueue("heal", component, 0);
}

Result<std::string> StreamingOrchestrator::scale(const std::string& component, int replicas) {
  if (!impl_->backend) return Unavailable("the orchestrator is not started");
  return impl_->backend->enqueue("scale", component, replicas);
}

uint16_t StreamingOrchestrator::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

std::string StreamingOrchestrator::status_json() const {
  return impl_->backend ? impl_->backend->status_json() : std::string("{}");
}

bool StreamingOrchestrator::deployed() const {
  return impl_->backend && impl_->backend->deployed();
}

}  // namespace spate
