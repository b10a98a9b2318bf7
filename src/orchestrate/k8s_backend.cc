// The orchestrator's Kubernetes backend (docs/kubernetes.md#in-cluster-orchestrator).
//
// The cluster is the state: each component is the Deployment or StatefulSet that
// `spate k8s render` produces, its replicas are its pods. The backend
//  - at start, reads each workload's current scale (adopting what a previous orchestrator or a
//    user set) and applies the rendered ConfigMap and workloads with server-side apply, phase by
//    phase (the log, then processors and analytics, then ingestion), each once the previous
//    phase's pods are ready;
//  - keeps a cache of the deployment's pods with list + watch on a thread of its own (a 410
//    Gone or a 404 starts a fresh list; every restart is counted in /status);
//  - each monitor interval scrapes every pod's /metrics at podIP:metrics_port, scores health as
//    the local backend does, and heals: a pod that stays unready (after having been ready, for
//    `unresponsive_probes` intervals; or since its start, for `ready_timeout`) or has failed is
//    deleted, so its controller replaces it, with the component's exponential backoff between
//    deletions; a crash-looping container (the kubelet's CrashLoopBackOff, or
//    `crash_loop_restarts` restarts within the window) is reported, not deleted — the kubelet
//    already backs off;
//  - scales with the same Autoscaler: the `scale` subresource for Deployments; StatefulSets with
//    an explicit partition split (their pods run `--replica I/N`) are scaled to 0, and once
//    their pods are gone applied again with the new N, so no partition ever has two owners.
// stop() never stops components: an orchestrator pod that is rescheduled or updated must not
// take the pipeline down with it.
#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include "base/json_escape.h"
#include "orchestrate/core.h"
#include "orchestrate/k8s_client.h"
#include "orchestrate/k8s_render.h"
#include "server/auth.h"
#include "server/http_client.h"

namespace spate::orchestrate {
namespace {

struct Workload {
  std::string kind;  // Deployment | StatefulSet
  std::string path;  // its API path
  bool applied = false;
  // Healing: one backoff per component, between pod deletions.
  std::unique_ptr<RestartBackoff> backoff;
  int64_t next_delete_ms = 0;
  bool crash_loop_reported = false;
};

class K8sBackend final : public OrchestratorCore {
 public:
  using OrchestratorCore::OrchestratorCore;
  ~K8sBackend() override { stop(false); }

  Status start() override;
  void stop(bool stop_components) override;

 private:
  std::unique_ptr<KubeClient> client;
  std::string ns;
  std::string selector;  // the deployment's pods
  std::string pipeline_text;
  std::string deployment_text;
  std::map<std::string, Workload> workloads;  // by component name
  bool started = false;
  bool stopped = false;

  // The pod cache, written by the watch thread.
  mutable std::mutex pods_mu;
  std::map<std::string, PodInfo> pods;
  bool synced = false;
  int64_t relists = 0, expired = 0, not_found = 0, watch_errors = 0, watch_events = 0;
  std::string last_watch_error;
  std::thread watcher;

  std::string scale_refusal(const Component& c, int) const override {
    if (c.cfg.type == ComponentType::kLog) return "the log owner is one pod; it cannot be scaled";
    return {};
  }

  std::string extra_status_json() const override {
    std::lock_guard lock(pods_mu);
    return fmt::format(
        "\"kubernetes\":{{\"api_server\":\"{}\",\"namespace\":\"{}\",\"pods\":{},\"synced\":{},"
        "\"watch\":{{\"lists\":{},\"expired\":{},\"not_found\":{},\"errors\":{},\"events\":{},"
        "\"last_error\":\"{}\"}}}}",
        json_escape(client ? client->server_url() : ""), json_escape(ns), pods.size(),
        synced ? "true" : "false", relists, expired, not_found, watch_errors, watch_events,
        json_escape(last_watch_error));
  }

  // --- rendering and applying ---------------------------------------------------------------
  // The rendered objects with `c` at `replicas` (the others at their desired counts).
  Result<std::vector<K8sObject>> objects(const Component* c = nullptr, int replicas = 0) const {
    DeploymentConfig d = cfg;
    for (ComponentConfig& cc : d.components) {
      for (const Component& k : components) {
        if (k.cfg.name == cc.name) cc.replicas = k.desired;
      }
      if (c != nullptr && cc.name == c->cfg.name) cc.replicas = replicas;
    }
    return render_k8s_objects(d, pipeline_text, deployment_text);
  }

  Status apply_component(const Component& c, int replicas) {
    auto objs = objects(&c, replicas);
    if (!objs.ok()) return objs.status();
    for (const K8sObject& o : *objs) {
      if (o.component != c.cfg.name || (o.kind != "Deployment" && o.kind != "StatefulSet"))
        continue;
      SPATE_RETURN_IF_ERROR(
          client->apply(k8s_object_path(o.api_version, o.kind, ns, o.name), o.json));
    }
    return Status::Ok();
  }

  Status apply_config_map() {
    auto objs = objects();
    if (!objs.ok()) return objs.status();
    for (const K8sObject& o : *objs) {
      if (o.kind != "ConfigMap") continue;
      SPATE_RETURN_IF_ERROR(
          client->apply(k8s_object_path(o.api_version, o.kind, ns, o.name), o.json));
    }
    return Status::Ok();
  }

  // --- the pod cache (watch thread) ---------------------------------------------------------
  std::string pods_path() const { return fmt::format("/api/v1/namespaces/{}/pods", ns); }

  // A fresh list; returns its resourceVersion ("" on failure).
  std::string relist() {
    auto r = client->request(
        "GET", fmt::format("{}?labelSelector={}", pods_path(), k8s_query_escape(selector)));
    std::lock_guard lock(pods_mu);
    ++relists;
    if (!r.ok() || r->status != 200) {
      ++watch_errors;
      last_watch_error =
          r.ok() ? fmt::format("list pods: HTTP {}", r->status) : r.status().message();
      return {};
    }
    simdjson::dom::parser p;
    simdjson::dom::element e;
    std::string_view rv;
    simdjson::dom::array items;
    if (p.parse(simdjson::padded_string(r->body)).get(e) ||
        e["metadata"]["resourceVersion"].get(rv) || e["items"].get(items)) {
      ++watch_errors;
      last_watch_error = "list pods: not a PodList";
      return {};
    }
    pods.clear();
    for (simdjson::dom::element item : items) {
      auto pod = parse_pod(simdjson::minify(item));
      if (pod.ok()) pods[pod->name] = std::move(*pod);
    }
    synced = true;
    return std::string(rv);
  }

  void watch_loop() {
    std::string rv;
    int64_t delay_ms = 0;
    while (!stopping.load()) {
      if (delay_ms > 0) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(delay_ms), [&] { return stopping.load(); });
        if (stopping.load()) return;
      }
      if (rv.empty()) {
        rv = relist();
        if (rv.empty()) {
          delay_ms = std::min<int64_t>(std::max<int64_t>(delay_ms * 2, 500), 10'000);
          continue;
        }
      }
      bool relist_now = false;
      const std::string path = fmt::format(
          "{}?watch=true&allowWatchBookmarks=true&timeoutSeconds={}&resourceVersion={}&"
          "labelSelector={}",
          pods_path(), std::max<int64_t>(cfg.kubernetes.watch_timeout_ms / 1000, 1),
          k8s_query_escape(rv), k8s_query_escape(selector));
      auto r = client->watch(
          path,
          [&](std::string_view line) {
            auto ev = parse_watch_event(line);
            std::lock_guard lock(pods_mu);
            if (!ev.ok()) {
              ++watch_errors;
              last_watch_error = ev.status().message();
              return true;
            }
            ++watch_events;
            if (ev->type == "ERROR") {
              if (ev->error_code == 410)
                ++expired;
              else
                ++watch_errors;
              last_watch_error = fmt::format("watch: {} {}", ev->error_code, ev->error_message);
              relist_now = true;  // the resourceVersion is too old: start from a fresh list
              return false;
            }
            if (!ev->pod.resource_version.empty()) rv = ev->pod.resource_version;
            if (ev->type == "DELETED") {
              pods.erase(ev->pod.name);
            } else if (ev->type != "BOOKMARK") {
              pods[ev->pod.name] = ev->pod;
            }
            return true;
          },
          // Silence longer than the watch's own timeout (plus a margin) means a dead connection.
          stopping, cfg.kubernetes.watch_timeout_ms + 30'000);
      if (stopping.load()) return;
      delay_ms = 0;
      if (!r.ok()) {
        std::lock_guard lock(pods_mu);
        ++watch_errors;
        last_watch_error = r.status().message();
        delay_ms = 1000;  // the API server is away: try the same resourceVersion again
        continue;
      }
      if (r->status == 410) {
        std::lock_guard lock(pods_mu);
        ++expired;
        last_watch_error = "watch: HTTP 410 Gone";
        relist_now = true;
      } else if (r->status == 404) {
        std::lock_guard lock(pods_mu);
        ++not_found;
        last_watch_error = "watch: HTTP 404 Not Found";
        relist_now = true;
        delay_ms = 1000;
      } else if (r->status != 200) {
        std::lock_guard lock(pods_mu);
        ++watch_errors;
        last_watch_error = fmt::format("watch: HTTP {}", r->status);
        relist_now = true;
        delay_ms = 1000;
      }
      if (relist_now) rv.clear();
    }
  }

  std::vector<PodInfo> pods_of(const Component& c) const {
    std::vector<PodInfo> out;
    std::lock_guard lock(pods_mu);
    for (const auto& [name, p] : pods) {
      if (p.component == c.cfg.name) out.push_back(p);
    }
    return out;  // sorted by name (map order)
  }

  // --- the monitor --------------------------------------------------------------------------
  // Make c.replicas the pods of c (keeping each pod's metrics history).
  void reconcile(Component& c, const std::vector<PodInfo>& ps, int64_t now) {
    std::lock_guard lock(mu_);
    std::vector<Replica> next;
    for (const PodInfo& p : ps) {
      // By uid: a StatefulSet's replacement pod has its predecessor's name but none of its history.
      auto it = std::find_if(c.replicas.begin(), c.replicas.end(), [&](const Replica& r) {
        return r.pod == p.name && r.pod_uid == p.uid;
      });
      Replica r;
      if (it != c.replicas.end()) {
        r = std::move(*it);
      } else {
        r.pod = p.name;
        r.pod_uid = p.uid;
        r.started_ms = now;
        r.backoff = std::make_unique<RestartBackoff>(c.cfg.healing);
        r.container_restarts = p.restarts;  // restarts before we saw it do not count
      }
      r.index = static_cast<int>(next.size());
      r.pod_ip = p.pod_ip;
      // Each container restart the kubelet made counts towards the crash-loop window.
      for (int k = r.container_restarts; k < p.restarts; ++k)
        (void)r.backoff->next_delay_ms(now, 0.5);
      if (p.restarts > r.container_restarts) {
        r.last_exit = fmt::format("container restarted (restart {})", p.restarts);
      }
      r.container_restarts = p.restarts;
      r.restarts = p.restarts;
      r.ready = p.ready && !p.deleting;
      r.healthy = p.phase == "Running" && p.waiting_reason.empty() && !p.deleting;
      if (r.ready) r.was_ready = true;
      if (r.ready)
        r.not_ready_since_ms = 0;
      else if (r.not_ready_since_ms == 0)
        r.not_ready_since_ms = now;
      if (p.deleting)
        r.state = "terminating";
      else if (!p.waiting_reason.empty())
        r.state = p.waiting_reason == "CrashLoopBackOff" ? "crash_loop" : "waiting";
      else if (r.ready)
        r.state = "ready";
      else if (p.phase == "Running")
        r.state = r.was_ready ? "not_ready" : "starting";
      else
        r.state = p.phase.empty() ? "pending"
                                  : (p.phase == "Pending"  ? "pending"
                                     : p.phase == "Failed" ? "failed"
                                                           : p.phase);
      next.push_back(std::move(r));
    }
    c.replicas = std::move(next);
  }

  void scrape(Component& c, Replica& r, int64_t now) {
    if (r.pod_ip.empty() || !r.healthy) {
      std::lock_guard lock(mu_);
      r.health = 0;
      return;
    }
    auto mt = http_request(r.pod_ip, static_cast<uint16_t>(cfg.kubernetes.metrics_port), "GET",
                           "/metrics", {}, client_auth_headers(), cfg.probe_timeout_ms,
                           client_tls_from_env(cfg.pipeline.server.tls.enabled));
    std::lock_guard lock(mu_);
    if (mt.ok() && mt->status == 200) update_metrics(c, r, parse_prometheus_text(mt->body), now);
    const double lag_target = static_cast<double>(c.cfg.scaling.target_consumer_lag);
    r.health =
        replica_health(true, r.healthy, r.ready, r.error_rate, r.lag < 0 ? 0 : r.lag, lag_target);
  }

  // Delete unhealthy pods (the controller replaces them); report crash loops.
  void heal(Component& c, Workload& w, int64_t now) {
    if (!c.cfg.healing.enabled) return;
    bool looping = false;
    for (Replica& r : c.replicas) {
      if (r.state == "terminating") continue;
      if (r.state == "crash_loop" || r.backoff->crash_loop(now)) {
        looping = true;
        if (!w.crash_loop_reported) {
          w.crash_loop_reported = true;
          spdlog::error("orchestrator: {} pod {} is crash-looping ({} container restarts): {}",
                        c.cfg.name, r.pod, r.restarts, r.last_exit.empty() ? r.state : r.last_exit);
          record("heal", c.cfg.name, "crash_loop",
                 fmt::format(
                     "pod {} is crash-looping ({} restarts); the kubelet backs off, not deleted",
                     r.pod, r.restarts));
        }
        continue;
      }
      std::string why;
      const int64_t unready_ms = r.not_ready_since_ms > 0 ? now - r.not_ready_since_ms : 0;
      if (r.state == "failed") {
        why = "failed";
      } else if (r.was_ready && !r.ready &&
                 unready_ms >= c.cfg.healing.unresponsive_probes * cfg.monitor_interval_ms) {
        why = fmt::format("not ready for {} ms", unready_ms);
      } else if (!r.was_ready && now - r.started_ms > c.cfg.healing.ready_timeout_ms) {
        why = fmt::format("not ready {} ms after it appeared", now - r.started_ms);
      }
      if (why.empty() || now < w.next_delete_ms) continue;
      delete_pod(c, w, r, now, why);
    }
    if (!looping) w.crash_loop_reported = false;
  }

  bool delete_pod(Component& c, Workload& w, Replica& r, int64_t now, const std::string& why) {
    Status s = client->delete_pod(ns, r.pod);
    if (!s.ok()) {
      record("heal", c.cfg.name, "failure", fmt::format("delete pod {}: {}", r.pod, s.message()));
      return false;
    }
    const int64_t delay =
        w.backoff->next_delay_ms(now, std::uniform_real_distribution<double>(0, 1)(rng));
    w.next_delete_ms = now + delay;
    {
      std::lock_guard lock(mu_);
      r.state = "terminating";
      r.last_exit = why + "; deleted";
    }
    spdlog::warn("orchestrator: {} pod {} {}; deleted it (next deletion not before {} ms)",
                 c.cfg.name, r.pod, why, delay);
    record("heal", c.cfg.name, "success", fmt::format("pod {} {}; deleted", r.pod, why));
    return true;
  }

  bool explicit_split(const Component& c) const {
    return w_kind(c) == "StatefulSet" && c.cfg.type != ComponentType::kLog;
  }
  std::string w_kind(const Component& c) const {
    auto it = workloads.find(c.cfg.name);
    return it == workloads.end() ? "" : it->second.kind;
  }

  // Change the replica count (see the file comment for StatefulSets with a split).
  void rescale(Component& c, int replicas, const std::string& op_id) {
    Workload& w = workloads[c.cfg.name];
    const int from = c.desired;
    Status s;
    int conflicts = 0;
    if (explicit_split(c)) {
      auto r = client->set_scale(w.path, 0);
      s = r.ok() ? Status::Ok() : r.status();
      if (r.ok()) conflicts += *r;
      const int64_t deadline = clock->now_ms() + c.cfg.stop_timeout_ms + 60'000;
      while (s.ok() && !pods_of(c).empty() && clock->now_ms() < deadline && !stopping.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (s.ok() && !pods_of(c).empty()) s = Timeout(fmt::format("pods of {} still run", w.path));
      if (s.ok()) s = apply_component(c, replicas);
    } else {
      auto r = client->set_scale(w.path, replicas);
      s = r.ok() ? Status::Ok() : r.status();
      if (r.ok()) conflicts += *r;
    }
    {
      std::lock_guard lock(mu_);
      if (s.ok()) {
        c.desired = replicas;
        c.last_scale_ms = clock->now_ms();
      }
      finish_op_locked(
          op_id, s.ok() ? "success" : "failure",
          s.ok() ? fmt::format("{} -> {} replicas{}", from, replicas,
                               conflicts ? fmt::format(" ({} conflicts retried)", conflicts) : "")
                 : s.message());
    }
    if (s.ok() && c.scaler) c.scaler->scaled(clock->now_ms());
    if (!s.ok()) spdlog::error("orchestrator: scaling {} failed: {}", c.cfg.name, s.message());
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
      Workload& w = workloads[c.cfg.name];
      if (req.kind == "scale") {
        if (req.replicas == c.desired) {
          std::lock_guard lock(mu_);
          finish_op_locked(req.op_id, "success", fmt::format("already {} replicas", c.desired));
          continue;
        }
        rescale(c, req.replicas, req.op_id);
      } else if (req.kind == "heal") {
        reconcile(c, pods_of(c), clock->now_ms());
        std::vector<std::string> deleted;
        for (Replica& r : c.replicas) {
          if (r.ready || r.state == "terminating") continue;
          if (delete_pod(c, w, r, clock->now_ms(), "forced by POST /heal"))
            deleted.push_back(r.pod);
        }
        std::string list;
        for (const auto& d : deleted) list += (list.empty() ? "" : ", ") + d;
        std::lock_guard lock(mu_);
        finish_op_locked(req.op_id, "success",
                         deleted.empty() ? "every pod was ready" : "deleted pods " + list);
      } else if (req.kind == "deploy") {
        Status s = apply_component(c, c.desired);
        std::lock_guard lock(mu_);
        finish_op_locked(
            req.op_id, s.ok() ? "success" : "failure",
            s.ok() ? fmt::format("applied {} ({} replicas)", w.path, c.desired) : s.message());
      }
    }
  }

  void tick() override {
    const int64_t now = clock->now_ms();
    run_requests();
    bool synced_now;
    {
      std::lock_guard lock(pods_mu);
      synced_now = synced;
    }
    if (!synced_now) return;  // no picture of the pods yet
    bool earlier_ready = true;
    int current_phase = 0;
    bool phase_ready = true;
    for (Component& c : components) {
      if (start_phase(c.cfg.type) != current_phase) {
        earlier_ready = earlier_ready && phase_ready;
        current_phase = start_phase(c.cfg.type);
        phase_ready = true;
      }
      Workload& w = workloads[c.cfg.name];
      if (!w.applied) {
        if (!earlier_ready) {
          phase_ready = false;
          continue;  // waits for the phase before it
        }
        Status s = apply_component(c, c.desired);
        if (!s.ok()) {
          spdlog::error("orchestrator: applying {} failed: {}", w.path, s.message());
          record("deploy", c.cfg.name, "failure", s.message());
          phase_ready = false;
          continue;
        }
        w.applied = true;
        spdlog::info("orchestrator: applied {} ({} replicas)", w.path, c.desired);
      }
      reconcile(c, pods_of(c), now);
      for (Replica& r : c.replicas) scrape(c, r, now);
      heal(c, w, now);
      const bool ready = settle_component(c);
      if (!ready) phase_ready = false;
      if (c.deployed && ready) {
        std::string id;
        if (auto n = autoscale_decision(c, now, &id)) rescale(c, *n, id);
      }
    }
    update_totals();
  }
};

Status K8sBackend::start() {
  if (started) return Internal("orchestrator already started");
  KubeClientConfig kc;
  kc.api_server = cfg.kubernetes.api_server;
  kc.service_account_dir = cfg.kubernetes.service_account_dir;
  kc.field_manager = cfg.kubernetes.field_manager;
  kc.timeout_ms = cfg.kubernetes.request_timeout_ms;
  auto c = KubeClient::create(kc);
  if (!c.ok()) return c.status();
  client = std::move(*c);
  ns = cfg.k8s_namespace;
  selector = fmt::format("app.kubernetes.io/name=spate,app.kubernetes.io/instance={}", cfg.name);
  // The texts the ConfigMap holds, as `spate k8s render` put them there.
  for (auto [path, out] : {std::pair{&cfg.pipeline_path, &pipeline_text},
                           std::pair{&cfg.source_path, &deployment_text}}) {
    std::ifstream f(*path, std::ios::binary);
    if (!f) return ConfigError("cannot read " + *path);
    std::stringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
  }
  build_components();
  auto objs = objects();
  if (!objs.ok()) return objs.status();
  for (Component& comp : components) {
    for (const K8sObject& o : *objs) {
      if (o.component != comp.cfg.name || (o.kind != "Deployment" && o.kind != "StatefulSet"))
        continue;
      Workload& w = workloads[comp.cfg.name];
      w.kind = o.kind;
      w.path = k8s_object_path(o.api_version, o.kind, ns, o.name);
      w.backoff = std::make_unique<RestartBackoff>(comp.cfg.healing);
    }
    if (workloads[comp.cfg.name].path.empty()) {
      return Internal("no rendered workload for component " + comp.cfg.name);
    }
    // Adopt the replica count the cluster has (a previous orchestrator's scaling, or a user's).
    auto n = client->get_scale(workloads[comp.cfg.name].path);
    if (n.ok()) {
      comp.desired = comp.cfg.scaling.enabled
                         ? std::clamp(*n, comp.cfg.scaling.min_replicas,
                                      std::max(comp.cfg.scaling.max_replicas, 1))
                         : std::max(*n, 1);
      if (comp.cfg.type == ComponentType::kLog) comp.desired = 1;
      record("adopt", comp.cfg.name, "success",
             fmt::format("{} has {} replicas", workloads[comp.cfg.name].path, *n));
    } else if (n.status().code() != Errc::kNotFound) {
      return Unavailable("kubernetes: " + n.status().message());
    }
    if (comp.scaler) comp.scaler->seed(clock->now_ms(), comp.desired);
    std::lock_guard lock(mu_);
    comp.deployment_id =
        new_op_locked("deploy", comp.cfg.name, "running",
                      fmt::format("{} replica{} ({})", comp.desired, comp.desired == 1 ? "" : "s",
                                  workloads[comp.cfg.name].path))
            .id;
  }
  if (Status s = apply_config_map(); !s.ok()) return Unavailable("kubernetes: " + s.message());
  register_metrics();
  started = true;
  watcher = std::thread([this] { watch_loop(); });
  monitor = std::thread([this] { monitor_loop(); });
  spdlog::info("orchestrator: Kubernetes API {} namespace {}", client->server_url(), ns);
  return Status::Ok();
}

void K8sBackend::stop(bool) {
  if (!started || stopped) return;
  stopped = true;
  stopping.store(true);
  cv_.notify_all();
  if (monitor.joinable()) monitor.join();
  if (watcher.joinable()) watcher.join();
  metric_callbacks.clear();
}

}  // namespace

std::unique_ptr<OrchestratorCore> make_k8s_backend(DeploymentConfig cfg, MetricsRegistry* metrics) {
  return std::make_unique<K8sBackend>(std::move(cfg), metrics);
}

}  // namespace spate::orchestrate
