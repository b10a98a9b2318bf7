// Deployment files (docs/orchestrator.md#the-deployment-file): parsed with config::Node so every
// problem is reported as `file:line:col: key: message`.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include <fmt/format.h>

#include "base/fs.h"
#include "config/node.h"
#include "spate/orchestrator.h"

namespace spate {

const char* component_type_name(ComponentType t) {
  switch (t) {
    case ComponentType::kLog:
      return "log";
    case ComponentType::kIngestion:
      return "ingestion";
    case ComponentType::kProcessor:
      return "processor";
    case ComponentType::kAnalytics:
      return "analytics";
  }
  return "?";
}

namespace {

using config::Node;

// Kubernetes object names (RFC 1123 labels): the component name becomes a Deployment name.
std::string check_component_name(std::string_view v) {
  if (v.empty() || v.size() > 40) return "must be 1 to 40 characters";
  for (char c : v) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return "may hold only a-z, 0-9 and '-' (it names processes and Kubernetes objects)";
    }
  }
  if (v.front() == '-' || v.back() == '-') return "must not start or end with '-'";
  return {};
}

bool get_double(Node& n, std::string_view key, double* out, double lo, double hi) {
  Node v = n.get(key);
  if (!v.present()) return false;
  std::string text;
  if (!v.scalar("a number", &text)) return false;
  char* end = nullptr;
  const double d = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(d >= lo && d <= hi)) {
    v.error(fmt::format("expected a number in [{}, {}], got {}", lo, hi, v.describe()));
    return false;
  }
  *out = d;
  return true;
}

// "500m" = 0.5 cores, "2" = 2 cores (Kubernetes quantities).
bool get_cpu(Node& n, std::string_view key, double* out) {
  Node v = n.get(key);
  if (!v.present()) return false;
  std::string text;
  if (!v.scalar("a CPU quantity", &text)) return false;
  double scale = 1.0;
  if (!text.empty() && text.back() == 'm') {
    scale = 0.001;
    text.pop_back();
  }
  char* end = nullptr;
  const double d = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(d > 0) || d * scale > 1024) {
    v.error(fmt::format("expected a CPU quantity such as 500m or 2, got {}", v.describe()));
    return false;
  }
  *out = d * scale;
  return true;
}

// Kubernetes memory quantities ("512Mi", "1Gi", "500M") or sizes ("512MiB").
bool get_memory(Node& n, std::string_view key, int64_t* out) {
  Node v = n.get(key);
  if (!v.present()) return false;
  std::string text;
  if (!v.scalar("a memory quantity", &text)) return false;
  std::string t = text;
  if (!t.empty() && (t.back() == 'i' || t.back() == 'K' || t.back() == 'M' || t.back() == 'G' ||
                     t.back() == 'T')) {
    t += 'B';
  }
  int64_t bytes = 0;
  if (!config::parse_size(t, &bytes) || bytes < (1 << 20)) {
    v.error(fmt::format("expected a memory quantity of at least 1Mi such as 512Mi or 2Gi, got {}",
                        v.describe()));
    return false;
  }
  *out = bytes;
  return true;
}

void parse_healing(Node n, HealingPolicy* h) {
  n.get_bool("enabled", &h->enabled);
  n.get_duration_ms("backoff_initial", &h->backoff_initial_ms, 1, 3'600'000);
  n.get_duration_ms("backoff_max", &h->backoff_max_ms, 1, 24 * 3'600'000LL);
  get_double(n, "jitter", &h->jitter, 0, 1);
  n.get_int("crash_loop_restarts", &h->crash_loop_restarts, 1, 1000);
  n.get_duration_ms("crash_loop_window", &h->crash_loop_window_ms, 1000, 24 * 3'600'000LL);
  n.get_duration_ms("ready_timeout", &h->ready_timeout_ms, 100, 3'600'000);
  n.get_int("unresponsive_probes", &h->unresponsive_probes, 1, 1000);
  if (h->backoff_max_ms < h->backoff_initial_ms) {
    n.get("backoff_max").error("must be at least backoff_initial");
  }
  n.finish();
}

void parse_scaling(Node n, ScalingPolicy* s) {
  s->enabled = true;
  n.get_int("min_replicas", &s->min_replicas, 1, 64);
  n.get_int("max_replicas", &s->max_replicas, 1, 64);
  n.get_int("target_consumer_lag", &s->target_consumer_lag, 1);
  get_double(n, "target_cpu_utilization", &s->target_cpu_utilization, 0.01, 100);
  get_double(n, "target_memory_utilization", &s->target_memory_utilization, 0.01, 100);
  get_double(n, "target_queue_size", &s->target_queue_size, 1, 1e12);
  n.get_duration_ms("target_processing_time", &s->target_processing_time_ms, 1, 3'600'000);
  get_double(n, "tolerance", &s->tolerance, 0, 1);
  n.get_duration_ms("scale_up_cooldown", &s->scale_up_cooldown_ms, 0, 24 * 3'600'000LL);
  n.get_duration_ms("scale_down_cooldown", &s->scale_down_cooldown_ms, 0, 24 * 3'600'000LL);
  n.get_duration_ms("scale_down_stabilization", &s->scale_down_stabilization_ms, 0,
                    24 * 3'600'000LL);
  if (s->max_replicas < s->min_replicas) n.get("max_replicas").error("must be at least min_replicas");
  if (s->target_consumer_lag == 0 && s->target_cpu_utilization == 0 &&
      s->target_memory_utilization == 0 && s->target_queue_size == 0 &&
      s->target_processing_time_ms == 0) {
    n.error(
        "names no target: set target_consumer_lag, target_cpu_utilization, "
        "target_memory_utilization, target_queue_size or target_processing_time");
  }
  n.finish();
}

template <typename Config>
void check_names(Node& item, std::string_view key, const std::vector<std::string>& names,
                 const std::vector<Config>& defined, std::string_view what) {
  std::vector<Node> nodes = item.list(key);
  for (size_t i = 0; i < names.size() && i < nodes.size(); ++i) {
    if (std::none_of(defined.begin(), defined.end(),
                     [&](const Config& c) { return c.name == names[i]; })) {
      std::string known;
      for (const Config& c : defined) known += (known.empty() ? "" : ", ") + c.name;
      nodes[i].error(fmt::format("no {} named {} in the pipeline (it has: {})", what,
                                 config::quote(names[i]), known.empty() ? "none" : known));
    }
  }
}

Result<DeploymentConfig> load(std::string_view yaml, std::string source, const EnvLookup& env,
                              const std::string& pipeline_override = {}) {
  DeploymentConfig d;
  d.source_path = source;
  config::Errors errors(source);
  std::string pipeline_error;
  {
    Node root = Node::parse(yaml, &errors, env);
    if (!errors.empty()) return errors.status();
    root.get_string("name", &d.name, check_component_name);
    Node pipeline = root.require("pipeline");
    std::string pipeline_file;
    if (pipeline.as_string(&pipeline_file, config::non_empty) || !pipeline_override.empty()) {
      if (!pipeline_override.empty()) {
        d.pipeline_path = pipeline_override;
      } else if (pipeline_file.front() == '/') {
        d.pipeline_path = pipeline_file;
      } else {
        const size_t slash = source.rfind('/');
        d.pipeline_path = slash == std::string::npos ? pipeline_file
                                                     : path_join(source.substr(0, slash), pipeline_file);
      }
      auto pc = load_pipeline_file(d.pipeline_path, env);
      if (pc.ok()) {
        d.pipeline = std::move(pc).value();
      } else {
        pipeline_error = pc.status().message();
      }
    }
    if (d.name.empty()) d.name = d.pipeline.name.empty() ? "spate" : d.pipeline.name;
    root.get_string("state_dir", &d.state_dir, config::non_empty);
    root.get_string("image", &d.image, config::non_empty);
    root.get_string("namespace", &d.k8s_namespace, check_component_name);
    root.get_string("spate_binary", &d.spate_binary, config::non_empty);
    root.get_enum("backend", &d.backend, {"local", "kubernetes"});
    {
      Node k = root.child("kubernetes");
      k.get_string("api_server", &d.kubernetes.api_server, [](std::string_view v) -> std::string {
        return v.starts_with("https://") ? "" : "must be an https:// URL";
      });
      k.get_string("service_account_dir", &d.kubernetes.service_account_dir, config::non_empty);
      k.get_int("metrics_port", &d.kubernetes.metrics_port, 1, 65535);
      k.get_string("field_manager", &d.kubernetes.field_manager, config::non_empty);
      k.get_duration_ms("request_timeout", &d.kubernetes.request_timeout_ms, 100, 600'000);
      k.get_duration_ms("watch_timeout", &d.kubernetes.watch_timeout_ms, 1000, 3'600'000);
      k.finish();
    }
    {
      Node s = root.child("server");
      s.get_string("host", &d.host, config::non_empty);
      s.get_int("port", &d.port, 0, 65535);
      s.finish();
    }
    {
      Node m = root.child("monitor");
      m.get_duration_ms("interval", &d.monitor_interval_ms, 50, 3'600'000);
      m.get_duration_ms("probe_timeout", &d.probe_timeout_ms, 50, 600'000);
      m.finish();
    }
    HealingPolicy healing_defaults;
    parse_healing(root.child("healing"), &healing_defaults);
    int log_port = 0;
    root.get_int("log_port", &log_port, 0, 65535);
    const bool embedded = d.pipeline.log.kind == "embedded";
    if (pipeline_error.empty() && d.pipeline.log.kind == "remote") {
      root.get("pipeline").error(
          "the pipeline uses log kind remote; a deployment runs its own log owner (use the "
          "embedded log or Kafka)");
    }
    if (embedded) {
      ComponentConfig lc;
      lc.name = "log";
      lc.type = ComponentType::kLog;
      lc.port = log_port;
      lc.healing = healing_defaults;
      d.components.push_back(std::move(lc));
    }
    std::set<std::string> names;
    std::set<std::string> run_processors;
    std::set<std::string> run_analytics;
    bool all_processors = false;
    bool all_analytics = false;
    for (Node item : root.list("components")) {
      ComponentConfig c;
      c.healing = healing_defaults;
      item.require("name").as_string(&c.name, check_component_name);
      if (!c.name.empty() && !names.insert(c.name).second) {
        item.get("name").error(fmt::format("{} is used by another component", config::quote(c.name)));
      }
      if (c.name == "log" && embedded) {
        item.get("name").error("\"log\" is the log owner's name on the embedded log; pick another");
      }
      const bool typed = item.require("type").as_enum(&c.type, {{"ingestion", ComponentType::kIngestion},
                                                                {"processor", ComponentType::kProcessor},
                                                                {"analytics", ComponentType::kAnalytics}});
      item.get_int("replicas", &c.replicas, 1, 64);
      for (Node p : item.list("processors")) {
        std::string s;
        if (p.as_string(&s, config::non_empty)) c.processors.push_back(s);
      }
      for (Node p : item.list("analytics")) {
        std::string s;
        if (p.as_string(&s, config::non_empty)) c.analytics.push_back(s);
      }
      item.get_int("port", &c.port, 1, 65535);
      {
        Node r = item.child("resources");
        get_cpu(r, "cpu", &c.cpu);
        get_memory(r, "memory", &c.memory_bytes);
        r.finish();
      }
      for (Node s : item.list("env_from_secrets")) {
        std::string v;
        if (s.as_string(&v, check_component_name)) c.env_from_secrets.push_back(v);
      }
      {
        Node e = item.child("env");
        for (const std::string& k : e.keys()) {
          std::string v;
          if (e.get_string(k, &v)) c.env.emplace_back(k, v);
        }
      }
      item.get_duration_ms("stop_timeout", &c.stop_timeout_ms, 100, 3'600'000);
      if (item.get("healing").present()) parse_healing(item.child("healing"), &c.healing);
      if (item.get("scaling").present()) {
        c.scaling.min_replicas = 1;
        c.scaling.max_replicas = c.replicas;
        parse_scaling(item.child("scaling"), &c.scaling);
        if (c.replicas < c.scaling.min_replicas || c.replicas > c.scaling.max_replicas) {
          item.get("replicas").error(fmt::format("must be within scaling [min_replicas {}, max_replicas {}]",
                                                 c.scaling.min_replicas, c.scaling.max_replicas));
        }
      } else {
        c.scaling.min_replicas = c.scaling.max_replicas = c.replicas;
      }
      if (!c.processors.empty() && c.type != ComponentType::kProcessor) {
        item.get("processors").error("only processor components name processors");
      }
      if (!c.analytics.empty() && c.type != ComponentType::kAnalytics) {
        item.get("analytics").error("only analytics components name analytics jobs");
      }
      if (c.port != 0 && c.type != ComponentType::kIngestion) {
        item.get("port").error("only ingestion components take a port (the others get a free one)");
      }
      if (pipeline_error.empty() && typed) {
        const int most = std::max(c.replicas, c.scaling.max_replicas);
        if (c.type == ComponentType::kProcessor) {
          check_names(item, "processors", c.processors, d.pipeline.processors, "processor");
          if (c.processors.empty()) all_processors = true;
          for (const auto& p : c.processors) {
            if (!run_processors.insert(p).second) {
              item.get("processors").error(fmt::format("processor {} is run by another component", p));
            }
          }
          if (d.pipeline.processors.empty()) item.get("type").error("the pipeline has no processors");
        } else if (c.type == ComponentType::kAnalytics) {
          check_names(item, "analytics", c.analytics, d.pipeline.analytics, "analytics job");
          if (c.analytics.empty()) all_analytics = true;
          for (const auto& a : c.analytics) {
            if (!run_analytics.insert(a).second) {
              item.get("analytics").error(fmt::format("analytics job {} is run by another component", a));
            }
          }
          if (d.pipeline.analytics.empty()) item.get("type").error("the pipeline has no analytics");
          if (c.scaling.enabled) {
            item.get("scaling").error(
                "analytics components are not auto-scaled: their window state is checkpointed per "
                "replica count, so a new count would restart from the committed offsets without it; "
                "set replicas");
          }
        } else if (c.type == ComponentType::kIngestion && most > 1) {
          for (const SourceConfig& s : d.pipeline.ingestion.sources) {
            if (s.type != "webhook") {
              item.get(c.scaling.enabled ? "scaling" : "replicas")
                  .error(fmt::format("more than one ingestion replica would each read source {} "
                                     "({}): keep ingestion at 1 replica or move the source to its "
                                     "own pipeline",
                                     s.name, s.type));
              break;
            }
          }
          if (!d.pipeline.ingestion.dedup.fields.empty() &&
              d.pipeline.ingestion.dedup.store == "embedded") {
            item.get(c.scaling.enabled ? "scaling" : "replicas")
                .error("the embedded dedup store is per process: with more than one ingestion "
                       "replica use ingestion.dedup.store: redis");
          }
        }
      }
      item.finish();
      d.components.push_back(std::move(c));
    }
    if (pipeline_error.empty()) {
      if (!all_processors) {
        for (const ProcessorConfig& p : d.pipeline.processors) {
          if (!run_processors.contains(p.name)) {
            root.get("components").error(fmt::format(
                "processor {} of the pipeline is run by no component (add it to a processor "
                "component's processors, or leave processors out to run all)",
                p.name));
          }
        }
      }
      if (!all_analytics) {
        for (const AnalyticsConfig& a : d.pipeline.analytics) {
          if (!run_analytics.contains(a.name)) {
            root.get("components").error(fmt::format(
                "analytics job {} of the pipeline is run by no component", a.name));
          }
        }
      }
      if (all_processors && !run_processors.empty()) {
        root.get("components").error("one processor component runs all processors; others name some too");
      }
    }
    if (d.components.size() == (embedded ? 1u : 0u)) {
      root.get("components").error("names no component");
    }
    root.finish();
  }
  if (!pipeline_error.empty()) {
    if (!errors.empty()) return ConfigError(pipeline_error + "\n" + errors.status().message());
    return ConfigError(pipeline_error);
  }
  SPATE_RETURN_IF_ERROR(errors.status());
  if (d.state_dir.empty()) d.state_dir = path_join(d.pipeline.data_dir, "orchestrator");
  // The start order: the log, then processors and analytics, then ingestion (stable otherwise).
  std::stable_sort(d.components.begin(), d.components.end(),
                   [](const ComponentConfig& a, const ComponentConfig& b) {
                     auto phase = [](ComponentType t) {
                       return t == ComponentType::kLog ? 0 : t == ComponentType::kIngestion ? 2 : 1;
                     };
                     return phase(a.type) < phase(b.type);
                   });
  return d;
}

}  // namespace

Result<DeploymentConfig> load_deployment_string(std::string_view yaml, std::string_view source_name,
                                                const EnvLookup& env) {
  return load(yaml, std::string(source_name), env);
}

Result<DeploymentConfig> load_deployment_file(const std::string& path, const std::string& pipeline_override) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return ConfigError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::string text;
  char buf[8192];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return load(text, path, process_env(), pipeline_override);
}

}  // namespace spate
