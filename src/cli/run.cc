#include "cli/run.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <limits>
#include <memory>
#include <thread>

#include "analytics/notify.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/json_escape.h"
#include "cli/common.h"
#include "cli/live.h"
#include "cli/progress.h"
#include "cli/web_ui.h"
#include "event/json.h"
#include "ingest/source.h"
#include "ingest/sources/http_source.h"
#include "orchestrate/prom_text.h"
#include "process/health.h"
#include "server/admin.h"
#include "server/auth.h"
#include "server/http_server.h"
#include "server/log_api.h"
#include "server/web.h"
#include "spate/analytics.h"
#include "spate/config.h"
#include "spate/ingestion.h"
#include "spate/log.h"
#include "spate/metrics.h"
#include "spate/processor.h"
#include "spate/version.h"

namespace spate::cli {
namespace {

// %j: the message as a JSON string body (quotes, backslashes and control characters escaped),
// so that every `--log-format json` line parses whatever the message holds.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string out;
    append_json_escaped(out, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

void setup_logging(const LoggingConfig& cfg) {
  auto logger = spdlog::stderr_color_mt("spate");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(cfg.level));
  if (cfg.format == "json") {
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":"%j"})");
    spdlog::set_formatter(std::move(f));
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
}

std::string status_json(const PipelineConfig& pc, Log& log, int64_t started_ms, bool ready,
                        uint16_t port,
                        const std::vector<std::unique_ptr<KafkaStreamProcessor>>& processors,
                        const std::vector<std::unique_ptr<RealTimeAnalyticsEngine>>& analytics) {
  std::string out = "{\"name\":";
  append_json_quoted(out, pc.name);
  out += fmt::format(",\"version\":\"{}\",\"uptime_seconds\":{:.3f},\"ready\":{},\"port\":{}",
                     SPATE_VERSION, (system_clock()->now_ms() - started_ms) / 1000.0,
                     ready ? "true" : "false", port);
  out += fmt::format(
      ",\"components\":[{{\"name\":\"log\",\"kind\":\"{}\",\"state\":\"running\","
      "\"fsync\":\"{}\"",
      pc.log.kind, fsync_policy_name(pc.log.fsync));
  if (pc.log.kind == "remote") {
    out += ",\"url\":";
    append_json_quoted(out, pc.log.url);
  } else if (pc.log.kind == "kafka") {  // no credentials: only where the cluster is
    out += ",\"bootstrap_servers\":";
    append_json_quoted(out, kafka_bootstrap_servers(pc.log.kafka));
    const Status h = log.health();
    out += ",\"reachable\":";
    out += h.ok() ? "true" : "false";
  }
  out += "},{\"name\":\"admin\",\"kind\":\"http\",\"state\":\"running\"}]";
  out += ",\"topics\":[";
  bool first = true;
  for (const auto& name : log.list_topics()) {
    auto info = log.describe_topic(name);
    if (!info.ok()) continue;
    if (!first) out += ",";
    first = false;
    out += "{\"name\":";
    append_json_quoted(out, name);
    out += fmt::format(",\"partitions\":{},\"partition_info\":[", info->partitions);
    for (size_t i = 0; i < info->partition_info.size(); ++i) {
      const auto& p = info->partition_info[i];
      out += fmt::format(
          "{}{{\"partition\":{},\"start_offset\":{},\"end_offset\":{},"
          "\"size_bytes\":{}}}",
          i ? "," : "", p.partition, p.start_offset, p.end_offset, p.size_bytes);
    }
    out += "]}";
  }
  out += "],\"processors\":[";
  for (size_t i = 0; i < processors.size(); ++i) {
    const ProcessorConfig& c = processors[i]->config();
    const ProcessorStats st = processors[i]->stats();
    out += i ? ",{\"name\":" : "{\"name\":";
    append_json_quoted(out, c.name);
    out += ",\"inputs\":[";
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      if (k) out += ",";
      append_json_quoted(out, c.inputs[k]);
    }
    out += "],\"output\":";
    append_json_quoted(out, c.output);
    out += fmt::format(
        ",\"replica\":{},\"replicas\":{},\"workers\":{},\"exactly_once\":{},"
        "\"consumed\":{},\"produced\":{},\"filtered\":{},\"failed\":{},"
        "\"dead_lettered\":{},\"retries\":{},\"batches\":{},\"pauses\":{},"
        "\"aborts\":{},\"paused\":{},\"lag\":{},\"partitions\":{}",
        c.replica, c.replicas, c.workers, c.exactly_once, st.consumed, st.produced, st.filtered,
        st.failed, st.dead_lettered, st.retries, st.batches, st.pauses, st.aborts, st.paused,
        processors[i]->total_lag(), processors[i]->assigned_partitions());
    out += ",\"downstreams\":[";
    const auto ds = processors[i]->downstreams();
    for (size_t k = 0; k < ds.size(); ++k) {
      out += k ? ",{\"step\":" : "{\"step\":";
      append_json_quoted(out, ds[k].step);
      out += ",\"downstream\":";
      append_json_quoted(out, ds[k].downstream);
      out += fmt::format(",\"breaker\":\"{}\",\"transitions\":{},\"retry_in_ms\":{}}}", ds[k].state,
                         ds[k].transitions, ds[k].retry_in_ms);
    }
    out += "],\"steps\":{" + processors[i]->steps_status_json() + "}}";
  }
  out += "],\"analytics\":[";
  for (size_t i = 0; i < analytics.size(); ++i) {
    const AnalyticsConfig& c = analytics[i]->config();
    const AnalyticsStats st = analytics[i]->stats();
    out += i ? ",{\"name\":" : "{\"name\":";
    append_json_quoted(out, c.name);
    out += ",\"output\":";
    append_json_quoted(out, c.output);
    out += fmt::format(
        ",\"window\":\"{}\",\"replica\":{},\"replicas\":{},\"events\":{},"
        "\"late\":{},\"invalid\":{},\"results\":{},\"active_windows\":{},"
        "\"watermark\":{},\"keys\":{},\"overflow\":{},\"checkpoints\":{},"
        "\"state_bytes\":{},\"restored\":{},\"patterns\":{},\"anomalies\":{},"
        "\"alerts\":{}}}",
        window_type_name(c.window.type), c.replica, c.replicas, st.events, st.late, st.invalid,
        st.results, st.active_windows,
        st.watermark_ms == std::numeric_limits<int64_t>::min() ? std::string("null")
                                                               : std::to_string(st.watermark_ms),
        st.keys, st.overflow, st.checkpoints, st.state_bytes, st.restored ? "true" : "false",
        st.patterns, st.anomalies, st.alerts);
  }
  out += "]}";
  return out;
}

}  // namespace

int run_pipeline(const RunOptions& opts) {
  // Block the stop signals before any thread starts so only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto pc_r = load_pipeline_file(opts.config_path);
  if (!pc_r.ok()) {
    std::fprintf(stderr, "%s\n", pc_r.status().message().c_str());
    return 2;
  }
  PipelineConfig pc = std::move(pc_r).value();
  for (const std::string& lib : pc.plugins) {
    if (Status ps = load_processor_plugin(lib); !ps.ok()) {
      std::fprintf(stderr, "%s: %s\n", pc.source_path.c_str(), ps.message().c_str());
      return 2;
    }
  }
  if (Status vs = ingest::validate_sources(pc.ingestion); !vs.ok()) {
    std::fprintf(stderr, "%s\n", vs.message().c_str());
    return 2;
  }
  if (!opts.data_dir.empty()) {
    pc.data_dir = opts.data_dir;
    pc.log.data_dir = opts.data_dir + "/log";
  }
  if (!opts.host.empty()) pc.server.host = opts.host;
  if (opts.port) {
    if (*opts.port < 0 || *opts.port > 65535) {
      std::fprintf(stderr, "spate: --port must be 0..65535\n");
      return 2;
    }
    pc.server.port = static_cast<uint16_t>(*opts.port);
  }
  if (opts.metrics_port) {
    if (*opts.metrics_port < 0 || *opts.metrics_port > 65535) {
      std::fprintf(stderr, "spate: --metrics-port must be 0..65535\n");
      return 2;
    }
    pc.server.metrics_port = static_cast<uint16_t>(*opts.metrics_port);
  }
  if (!opts.log_url.empty()) {
    pc.log.kind = "remote";
    pc.log.url = opts.log_url;
  }
  bool run_ingestion = opts.role == "all";
  bool run_processors = opts.role == "all";
  bool run_analytics = opts.role == "all";
  if (opts.role != "all") {
    for (std::string_view rest = opts.role; !rest.empty();) {
      const size_t comma = rest.find(',');
      const std::string_view r = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (r == "ingestion") {
        run_ingestion = true;
      } else if (r == "processors" || r == "processor") {
        run_processors = true;
      } else if (r == "analytics") {
        run_analytics = true;
      } else if (r != "log") {
        std::fprintf(
            stderr,
            "spate: --role: unknown role \"%.*s\" (all, log, ingestion, processors, analytics)\n",
            static_cast<int>(r.size()), r.data());
        return 2;
      }
    }
  }
  if (opts.role.find("log") != std::string::npos && pc.log.kind == "remote") {
    std::fprintf(stderr, "spate: --role log owns the log; it cannot use a remote one (%s)\n",
                 pc.log.url.c_str());
    return 2;
  }
  for (const std::string& name : opts.processors) {
    if (std::none_of(pc.processors.begin(), pc.processors.end(),
                     [&](const ProcessorConfig& p) { return p.name == name; })) {
      std::fprintf(stderr, "spate: --processor %s: no such processor in %s\n", name.c_str(),
                   pc.source_path.c_str());
      return 2;
    }
  }
  for (const std::string& name : opts.analytics) {
    if (std::none_of(pc.analytics.begin(), pc.analytics.end(),
                     [&](const AnalyticsConfig& a) { return a.name == name; })) {
      std::fprintf(stderr, "spate: --analytics %s: no such analytics job in %s\n", name.c_str(),
                   pc.source_path.c_str());
      return 2;
    }
  }
  if (!opts.analytics.empty()) {
    std::erase_if(pc.analytics, [&](const AnalyticsConfig& a) {
      return std::find(opts.analytics.begin(), opts.analytics.end(), a.name) ==
             opts.analytics.end();
    });
  }
  if (!opts.processors.empty()) {
    std::erase_if(pc.processors, [&](const ProcessorConfig& p) {
      return std::find(opts.processors.begin(), opts.processors.end(), p.name) ==
             opts.processors.end();
    });
  }
  if (!run_processors) pc.processors.clear();
  if (!run_analytics) pc.analytics.clear();
  if (!opts.replica.empty()) {
    unsigned i = 0;
    unsigned n = 0;
    char extra = 0;
    if (std::sscanf(opts.replica.c_str(), "%u/%u%c", &i, &n, &extra) != 2 || n == 0 || i >= n) {
      std::fprintf(stderr, "spate: --replica must be I/N with 0 <= I < N, got \"%s\"\n",
                   opts.replica.c_str());
      return 2;
    }
    for (ProcessorConfig& p : pc.processors) {
      p.replica = i;
      p.replicas = n;
    }
    for (AnalyticsConfig& a : pc.analytics) {
      a.replica = i;
      a.replicas = n;
    }
  }
  if (!run_ingestion) pc.ingestion.enabled = false;
  if (!opts.log_format.empty()) pc.logging.format = opts.log_format;
  setup_logging(pc.logging);
  int64_t started_ms = system_clock()->now_ms();
  std::atomic<bool> ready{false};
  MetricsRegistry& metrics = global_metrics();
  register_process_metrics(metrics);

  HttpServerConfig hc;
  hc.host = pc.server.host;
  hc.port = pc.server.port;
  hc.io_threads = pc.server.io_threads > 0
                      ? pc.server.io_threads
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  hc.max_body_bytes = std::max<size_t>(hc.max_body_bytes, pc.ingestion.max_body_bytes + 1);
  hc.reuse_port = opts.reuse_port;
  hc.max_connections = pc.server.max_connections;
  hc.max_header_count = pc.server.max_header_count;
  hc.idle_timeout_ms = pc.server.request_timeout_ms;
  std::unique_ptr<Authenticator> auth;
  if (pc.server.auth.enabled) {
    auth = std::make_unique<Authenticator>(pc.server.auth, &metrics);
    hc.authorize = auth->authorizer();
    spdlog::info("authentication on: {} token(s); open without a token: {}",
                 pc.server.auth.tokens.size(), fmt::join(pc.server.auth.open_paths, ", "));
  }
  hc.tls = http_tls_config(pc.server.tls, &metrics);
  if (hc.tls) {
    spdlog::info("TLS on: certificate {}{}", pc.server.tls.cert_file,
                 pc.server.tls.client_ca_file.empty()
                     ? std::string()
                     : fmt::format(", client certificates from {} {}", pc.server.tls.client_ca_file,
                                   pc.server.tls.require_client_cert ? "required" : "optional"));
  }
  HttpServer server(hc);
  std::unique_ptr<Log> log;
  std::atomic<Log*> log_ptr{nullptr};
  // Filled before the server starts and not changed while it runs (read by /status).
  std::vector<std::unique_ptr<KafkaStreamProcessor>> processors;
  std::vector<std::unique_ptr<RealTimeAnalyticsEngine>> analytics;
  AdminHooks hooks;
  hooks.ready = [&] { return ready.load(); };
  hooks.unready_reason = [&]() -> std::string {
    Log* l = log_ptr.load();
    if (l == nullptr) return {};
    Status h = l->health();
    return h.ok() ? std::string() : "log: " + h.message();
  };
  hooks.status_json = [&]() -> std::string {
    Log* l = log_ptr.load();
    if (l == nullptr) {
      return fmt::format("{{\"name\":\"{}\",\"version\":\"{}\",\"ready\":false,\"topics\":[]}}",
                         json_escape(pc.name), SPATE_VERSION);
    }
    return status_json(pc, *l, started_ms, ready.load(), server.port(), processors, analytics);
  };
  hooks.metrics = &metrics;
  install_admin_routes(server, hooks);
  std::unique_ptr<HttpServer> metrics_server;
  if (pc.server.metrics_port != 0 && pc.server.metrics_port != pc.server.port) {
    HttpServerConfig mc = hc;
    mc.port = pc.server.metrics_port;
    mc.reuse_port = false;  // the metrics port is this process's own
    metrics_server = std::make_unique<HttpServer>(mc);
    install_admin_routes(*metrics_server, hooks);
    WebHooks metrics_web;
    metrics_web.ui = false;
    install_web_routes(*metrics_server, metrics_web);
  }
  Status s;
  const bool remote_log = pc.log.kind == "remote";
  if (remote_log) spdlog::info("using the log of {}", pc.log.url);
  // Opening a large log recovers its segments: say how far it has got every 2 s, and how long
  // it took once open.
  LogOpenProgress opened;
  auto last_progress = std::chrono::steady_clock::now();
  if (pc.log.kind == "embedded") {
    pc.log.on_open_progress = [&](const LogOpenProgress& p) {
      opened = p;
      if (std::chrono::steady_clock::now() - last_progress < std::chrono::seconds(2)) return;
      last_progress = std::chrono::steady_clock::now();
      spdlog::info("opening the log: topic {} of {}, {} partitions, {} read ({:.1f} s)",
                   p.topics_done, p.topics_total, p.partitions_done, human_bytes(p.bytes_done),
                   static_cast<double>(p.elapsed_ms) / 1000);
    };
  }
  auto log_r = open_configured_log(pc.log);
  pc.log.on_open_progress = nullptr;
  if (log_r.ok() && pc.log.kind == "embedded") {
    spdlog::info("log opened: {} topics, {} partitions, {} in {:.1f} s", opened.topics_total,
                 opened.partitions_done, human_bytes(opened.bytes_done),
                 static_cast<double>(opened.elapsed_ms) / 1000);
  }
  if (!log_r.ok()) {
    spdlog::error(
        "cannot open the log {}: {}",
        remote_log               ? pc.log.url
        : pc.log.kind == "kafka" ? "on Kafka at " + kafka_bootstrap_servers(pc.log.kafka)
                                 : pc.log.data_dir,
        log_r.status().to_string() +
            (log_r.status().message().find("in use by another spate process") != std::string::npos
                 ? " — stop that process, or give this one another data_dir "
                   "(--data-dir DIR); to share its log, run this one with --log-url "
                   "http://HOST:PORT of the first"
                 : ""));
    return 1;
  }
  log = std::move(log_r).value();
  for (const auto& spec : pc.topics) {
    s = log->ensure_topic(spec);
    if (!s.ok()) {
      spdlog::error("cannot create topic {}: {}", spec.name, s.to_string());
      (void)log->close();
      return 1;
    }
  }
  for (const std::string* t : {&pc.ingestion.default_topic, &pc.ingestion.dead_letter_topic}) {
    if (!pc.ingestion.enabled || t->empty() || log->describe_topic(*t).ok()) continue;
    TopicSpec spec;
    spec.name = *t;
    spec.partitions = pc.log.default_partitions;
    s = log->ensure_topic(spec);
    if (!s.ok()) {
      spdlog::error("cannot create topic {}: {}", *t, s.to_string());
      (void)log->close();
      return 1;
    }
  }
  // This process owns the log: serve it to the others (log kind remote) on /log/v1/.
  std::unique_ptr<LogApi> log_api;
  // Only an embedded log is served: processes share a Kafka log by connecting to the cluster.
  if (pc.log.kind == "embedded" && pc.server.log_api) {
    LogApiConfig lac;
    lac.txn_timeout_ms = pc.server.log_api_txn_timeout_ms;
    log_api = std::make_unique<LogApi>(log.get(), lac);
    log_api->install(server);
  }
  std::vector<ScopedMetricCallback> log_metrics;
  // The owner reports the log's metrics; a process using a remote log does not repeat them.
  for (const auto& name : remote_log ? std::vector<std::string>() : log->list_topics()) {
    auto info = log->describe_topic(name);
    if (!info.ok()) continue;
    for (uint32_t p = 0; p < info->partitions; ++p) {
      MetricLabels labels = {{"topic", name}, {"partition", std::to_string(p)}};
      Log* l = log.get();
      log_metrics.emplace_back(
          &metrics,
          metrics.gauge_fn("spate_log_end_offset", "Next offset to be assigned in a partition",
                           labels, [l, name, p] {
                             auto i = l->describe_topic(name);
                             return i.ok() ? static_cast<double>(i->partition_info[p].end_offset)
                                           : 0.0;
                           }));
      log_metrics.emplace_back(
          &metrics,
          metrics.gauge_fn(
              "spate_log_size_bytes", "Bytes on disk of a partition", labels, [l, name, p] {
                auto i = l->describe_topic(name);
                return i.ok() ? static_cast<double>(i->partition_info[p].size_bytes) : 0.0;
              }));
    }
  }
  if (!remote_log) {
    Log* l = log.get();
    auto stat_counter = [&](const char* name, const char* help, auto field) {
      log_metrics.emplace_back(&metrics, metrics.counter_fn(name, help, {}, [l, field] {
        return static_cast<double>(field(l->stats()));
      }));
    };
    stat_counter("spate_log_appends_total", "Successful appends (batches) to the log",
                 [](const LogStats& s) { return s.appends; });
    stat_counter("spate_log_appended_records_total", "Records appended to the log",
                 [](const LogStats& s) { return s.records; });
    stat_counter("spate_log_appended_bytes_total", "Encoded bytes written to log segments",
                 [](const LogStats& s) { return s.bytes; });
    stat_counter("spate_log_write_groups_total",
                 "Group-commit writes (each carries one or more appends)",
                 [](const LogStats& s) { return s.write_groups; });
    stat_counter("spate_log_fsyncs_total", "fsyncs of log segments",
                 [](const LogStats& s) { return s.fsyncs; });
    stat_counter("spate_log_fsync_seconds_total", "Time spent in fsyncs of log segments",
                 [](const LogStats& s) { return s.fsync_seconds; });
    stat_counter("spate_log_append_errors_total", "Appends that failed (write, fsync, no space)",
                 [](const LogStats& s) { return s.append_errors; });
    stat_counter("spate_log_recovered_truncated_bytes_total",
                 "Bytes cut from torn or corrupt segment tails when the log was opened",
                 [](const LogStats& s) { return s.recovered_truncated_bytes; });
  }
  // Ingestion (HTTP source on the admin server), then the servers; /ready turns 200 last.
  std::unique_ptr<DataIngestionEngine> ingestion;
  if (pc.ingestion.enabled) {
    if (pc.ingestion.dedup.state_dir.empty())
      pc.ingestion.dedup.state_dir = pc.data_dir + "/state/dedup";
    ingestion = std::make_unique<DataIngestionEngine>(pc.ingestion, log.get(), &metrics);
    s = ingestion->initialize();
    if (s.ok()) s = ingestion->start();
    if (!s.ok()) {
      spdlog::error("cannot start ingestion: {}", s.to_string());
      (void)log->close();
      return 1;
    }
    ingest::install_http_source(server, *ingestion);
  }
  // Further sources (webhooks, files, databases) from ingestion.sources.
  std::vector<std::unique_ptr<ingest::Source>> sources;
  auto stop_sources = [&] {
    for (auto it = sources.rbegin(); it != sources.rend(); ++it) (*it)->stop();
  };
  if (ingestion) {
    ingest::register_builtin_sources();
    for (const SourceConfig& sc : pc.ingestion.sources) {
      ingest::SourceContext ctx;
      ctx.engine = ingestion.get();
      ctx.server = &server;
      ctx.metrics = &metrics;
      ctx.state_dir = pc.data_dir + "/sources/" + sc.name;
      (void)default_fs()->create_dirs(ctx.state_dir);
      const ingest::SourceType* type = ingest::find_source_type(sc.type);
      Result<std::unique_ptr<ingest::Source>> src =
          type ? type->create(sc, ctx)
               : Result<std::unique_ptr<ingest::Source>>(
                     ConfigError("unknown source type " + sc.type));
      if (src.ok()) s = (*src)->start();
      if (!src.ok() || !s.ok()) {
        spdlog::error("cannot start source {}: {}", sc.name,
                      src.ok() ? s.to_string() : src.status().to_string());
        stop_sources();
        ingestion->stop();
        (void)log->close();
        return 1;
      }
      spdlog::info("source {} ({}) started", sc.name, sc.type);
      sources.push_back(std::move(src).value());
    }
  }
  // Stream processors (pipeline key `processors`), each on its own thread over the log.
  auto stop_processors = [&] {
    for (auto& p : processors) p->stop();
  };
  for (const ProcessorConfig& pcfg : pc.processors) {
    auto p = std::make_unique<KafkaStreamProcessor>(pcfg, log.get(), &metrics);
    s = p->initialize();
    if (s.ok()) s = p->start();
    if (!s.ok()) {
      spdlog::error("cannot start processor {}: {}", pcfg.name, s.to_string());
      stop_processors();
      stop_sources();
      if (ingestion) ingestion->stop();
      (void)log->close();
      return 1;
    }
    spdlog::info("processor {} started ({} -> {})", pcfg.name, fmt::join(pcfg.inputs, ","),
                 pcfg.output.empty() ? std::string("routes") : pcfg.output);
    processors.push_back(std::move(p));
  }
  // Alerts of analytics jobs go to the notifiers (pipeline key `notifiers`, and
  // SLACK_WEBHOOK_URL / EMAIL_NOTIFICATIONS from the environment); publish() never blocks.
  std::unique_ptr<analytics::NotifierDispatcher> notifiers;
  if (!pc.analytics.empty()) {
    std::vector<std::string> warnings;
    auto ncfg = analytics::notifiers_from_env(process_env(), pc.notifiers, &warnings);
    for (const std::string& w : warnings) spdlog::warn("notifiers: {}", w);
    if (!ncfg.empty()) {
      analytics::NotifierContext ctx;
      ctx.log = log.get();
      analytics::NotifierDispatcherConfig dc;
      dc.metrics = &metrics;
      auto d = analytics::NotifierDispatcher::create(ncfg, ctx, dc);
      if (!d.ok()) {
        spdlog::error("notifiers: {}", d.status().to_string());
        stop_processors();
        stop_sources();
        if (ingestion) ingestion->stop();
        (void)log->close();
        return 1;
      }
      notifiers = std::move(d).value();
      spdlog::info("notifiers: {} configured", notifiers->size());
    }
  }
  // Analytics jobs (pipeline key `analytics`), each on its own thread(s) over the log.
  auto stop_analytics = [&] {
    for (auto& a : analytics) a->stop();
    if (notifiers) notifiers->shutdown();
  };
  std::vector<AnalyticsConfig> engines;  // workers > 1: one engine per worker, each a replica
  for (const AnalyticsConfig& acfg : pc.analytics) {
    for (uint32_t w = 0; w < acfg.workers; ++w) {
      AnalyticsConfig e = acfg;
      e.replicas = acfg.replicas * acfg.workers;
      e.replica = acfg.replica * acfg.workers + w;
      engines.push_back(std::move(e));
    }
  }
  for (AnalyticsConfig& acfg : engines) {
    for (ResultSinkConfig& r : acfg.results) {
      if (r.kind == "sqlite" && r.path.empty()) r.path = pc.data_dir + "/analytics.db";
    }
    if (!acfg.checkpoint_enabled) {
      acfg.checkpoint_dir.clear();
    } else if (acfg.checkpoint_dir.empty()) {
      acfg.checkpoint_dir = pc.data_dir + "/checkpoints";
    }
    auto a = std::make_unique<RealTimeAnalyticsEngine>(acfg, log.get(), &metrics);
    if (notifiers) a->set_alert_handler([n = notifiers.get()](const Alert& al) { n->publish(al); });
    s = a->initialize();
    if (s.ok()) s = a->start();
    if (!s.ok()) {
      spdlog::error("cannot start analytics {}: {}", acfg.name, s.to_string());
      stop_analytics();
      stop_processors();
      stop_sources();
      if (ingestion) ingestion->stop();
      (void)log->close();
      return 1;
    }
    spdlog::info("analytics {} started ({} -> {}, {} window, replica {}/{})", acfg.name,
                 fmt::join(acfg.inputs, ","), acfg.output, window_type_name(acfg.window.type),
                 acfg.replica, acfg.replicas);
    analytics.push_back(std::move(a));
  }
  // Processor heartbeats in Redis (`health:` or $REDIS_URL); Redis being down only logs.
  std::unique_ptr<HealthPublisher> health;
  if (!pc.health.redis_url.empty() && !processors.empty()) {
    std::vector<const KafkaStreamProcessor*> ps;
    for (const auto& p : processors) ps.push_back(p.get());
    health = std::make_unique<HealthPublisher>(pc.health, pc.name, ps, &metrics);
    if (Status hs = health->start(); !hs.ok()) {
      spdlog::error("health tracking off: {}", hs.to_string());
      health.reset();
    } else {
      spdlog::info("health: heartbeats every {} ms to redis under {}:{}", pc.health.interval_ms,
                   pc.health.key_prefix, pc.name);
    }
  }
  auto stop_processors_and_health = [&] {
    if (health) health->stop();
    stop_analytics();
    stop_processors();
  };
  WebHooks web;
  web.ui_data = [&](const HttpRequest& req) {
    int status = 200;
    Log* l = log_ptr.load();
    if (l == nullptr) return HttpResponse::json(200, R"({"time_ms":0,"results":[],"alerts":[]})");
    std::string body = ui_data_json(pc, *l, req, &status);
    return HttpResponse::json(status, std::move(body));
  };
  install_web_routes(server, web);
  log_ptr = log.get();
  s = server.start();
  if (!s.ok()) {
    spdlog::error("cannot start the admin server on {}:{}: {}{}", hc.host, hc.port, s.to_string(),
                  s.message().find("in use") != std::string::npos
                      ? " (another process listens there: stop it, or choose another port with "
                        "--port N or server.port; 0 = any free port)"
                      : "");
    stop_processors_and_health();
    stop_sources();
    if (ingestion) ingestion->stop();
    (void)log->close();
    return 1;
  }
  if (metrics_server) {
    s = metrics_server->start();
    if (!s.ok()) {
      spdlog::error("cannot start the metrics server on port {}: {}", pc.server.metrics_port,
                    s.to_string());
      stop_processors_and_health();
      stop_sources();
      if (ingestion) ingestion->stop();
      (void)log->close();
      return 1;
    }
  }
  spdlog::info("spate {} pipeline \"{}\": admin on {}://{}:{}", SPATE_VERSION, pc.name,
               hc.tls ? "https" : "http", hc.host, server.port());

  ready = true;
  if (pc.log.kind == "kafka") {
    spdlog::info("ready: log on Kafka at {} ({} topics)", kafka_bootstrap_servers(pc.log.kafka),
                 log->list_topics().size());
  } else {
    spdlog::info("ready: log in {} ({} topics, fsync {})", pc.log.data_dir,
                 log->list_topics().size(), fsync_policy_name(pc.log.fsync));
  }

  // On a terminal: a live status line under the logs, redrawn every second (not in JSON mode,
  // and not when stderr is a file or a pipe: logs stay plain there).
  std::atomic<bool> status_stop{false};
  std::thread status_line;
  if (pc.logging.format != "json" && isatty(STDERR_FILENO) != 0 && !opts.no_status_line) {
    status_line = std::thread([&] {
      auto prev = orchestrate::parse_prometheus_text(metrics.render_prometheus());
      auto prev_t = std::chrono::steady_clock::now();
      while (!status_stop.load()) {
        for (int i = 0; i < 10 && !status_stop.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (status_stop.load()) break;
        auto cur = orchestrate::parse_prometheus_text(metrics.render_prometheus());
        const auto now = std::chrono::steady_clock::now();
        const std::string line =
            live_status_line(prev, cur, std::chrono::duration<double>(now - prev_t).count());
        std::fprintf(stderr, "\x1b[2K%s\r", line.c_str());  // the next log line overwrites it
        std::fflush(stderr);
        prev = std::move(cur);
        prev_t = now;
      }
      std::fprintf(stderr, "\x1b[2K");
    });
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  status_stop = true;
  if (status_line.joinable()) status_line.join();
  spdlog::info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  ready = false;
  // Reverse order: drain ingestion while the server still delivers its answers (new requests
  // get 503), stop the servers, then fsync and close the log.
  stop_sources();
  if (ingestion) ingestion->stop();
  stop_processors_and_health();  // after ingestion: what it drained may still be processed
                                 // (at-least-once)
  if (log_api) log_api->stop();  // answers what is queued; later callers get 503 and retry
  if (metrics_server) metrics_server->stop();
  server.stop();
  log_metrics.clear();
  log_ptr = nullptr;
  s = log->close();
  if (!s.ok()) {
    spdlog::error("closing the log: {}", s.to_string());
    return 1;
  }
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace spate::cli
