// Pipeline configuration: loading and validating a pipeline YAML file (docs/configuration.md).
//
// Contract:
//  - load_pipeline_file()/load_pipeline_string() parse YAML, replace `${VAR}` / `${VAR:-default}`
//    in every scalar value from the environment, convert and validate every key, and fill in
//    defaults for every key that is absent.
//  - On success the returned PipelineConfig is complete and valid (log.data_dir already set).
//  - On failure the Status has code Errc::kConfig and a message listing EVERY error found, one per
//    line, sorted by position, each formatted `FILE:LINE:COL: KEY.PATH: message` (1-based line and
//    column; key paths like `topics[2].partitions`). A YAML syntax error is reported as
//    `FILE:LINE:COL: YAML syntax error: ...`; an unreadable file as `cannot read FILE: <reason>`.
//  - Loading is reentrant: it touches no global state except reading the environment (through the
//    injected lookup, getenv by default), so concurrent loads are safe.
//  - Relative paths (data_dir) are kept as written: they are relative to the process's current
//    working directory, NOT to the directory of the config file.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spate/alerts.h"
#include "spate/analytics.h"
#include "spate/ingestion.h"
#include "spate/log.h"
#include "spate/processor.h"
#include "spate/status.h"

namespace spate {

/// Admin HTTP server (pipeline key `server:`).
/// One API token (pipeline key `server.auth.tokens[i]`).
struct AuthTokenConfig {
  std::string name;                 // for logs and the failure metric; never the token
  std::string token;                // `token` (use ${VAR}) or read from `token_file` at start
  std::vector<std::string> scopes;  // ingest:TOPIC | ingest:* | read | admin
};

/// Authentication of the HTTP API (pipeline key `server.auth`; docs/security.md).
struct AuthConfig {
  bool enabled = false;  // true once `server.auth` lists a token
  std::vector<AuthTokenConfig> tokens;
  std::vector<std::string> open_paths = {"/health", "/ready"};  // served without a token
};

/// TLS of the HTTP API (pipeline key `server.tls`; docs/security.md). Files are PEM.
struct TlsConfig {
  bool enabled = false;             // true once `server.tls` is given
  std::string cert_file;            // certificate chain, leaf first
  std::string key_file;             // its private key
  std::string client_ca_file;       // "" = no client certificates; set: mutual TLS
  bool require_client_cert = true;  // with client_ca_file: refuse clients without a certificate
  std::string min_version = "1.2";  // "1.2" | "1.3"
};

struct ServerConfig {
  AuthConfig auth;
  TlsConfig tls;  // on the main port, the metrics port and the orchestrator's API
  std::string host = "127.0.0.1";
  uint16_t port = 8080;       // 0 = pick a free port
  uint16_t metrics_port = 0;  // 0 = serve /metrics on the main port
  int io_threads = 0;   // HTTP I/O threads (accept, parse, decode, validate); 0 = one per core
  bool log_api = true;  // serve the embedded log to other processes on /log/v1/ (log kind remote)
  int64_t log_api_txn_timeout_ms = 60'000;  // idle remote transactions are aborted after this
  int max_connections = 10'000;             // open connections; more are answered 503 and closed
  int max_header_count = 100;               // request headers; more: 431
  int64_t request_timeout_ms =
      60'000;  // reading one request, writing one answer, an idle connection
};

/// Spate's own diagnostic logging (pipeline key `logging:`).
struct LoggingConfig {
  std::string level = "info";   // trace | debug | info | warn | error | off
  std::string format = "text";  // text | json
};

/// Health tracking in Redis (pipeline key `health:`): processor heartbeats for dashboards and
/// the orchestrator. Off unless a URL is configured here or in $REDIS_URL.
struct HealthConfig {
  std::string redis_url;        // "" = $REDIS_URL, else off
  int64_t interval_ms = 5'000;  // heartbeat period; keys expire after 3 periods
  std::string key_prefix = "spate:health";
};

/// A whole pipeline file.
struct PipelineConfig {
  std::string source_path;  // the file it was loaded from (the source name if loaded from memory)
  std::string name = "spate";
  std::string data_dir = "./spate-data";  // relative to the current working directory
  ServerConfig server;
  LogConfig log;                  // log.data_dir = data_dir + "/log", filled in by the loader
  std::vector<TopicSpec> topics;  // partitions/retention resolved against the log's defaults
  IngestionConfig ingestion;
  std::vector<ProcessorConfig> processors;  // stream processors (docs/processors.md)
  std::vector<AnalyticsConfig> analytics;   // windowed analytics (docs/analytics.md)
  std::vector<NotifierConfig> notifiers;    // where alerts go (docs/alerts.md)
  std::vector<std::string> plugins;         // shared libraries adding processor step types
  LoggingConfig logging;
  HealthConfig health;
};

/// Looks up an environment variable; nullopt = unset. Used for `${VAR}` interpolation.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

/// The process environment (getenv).
EnvLookup process_env();

/// Load and validate a pipeline file. Interpolates from the process environment.
Result<PipelineConfig> load_pipeline_file(const std::string& path);
Result<PipelineConfig> load_pipeline_file(const std::string& path, const EnvLookup& env);

/// Load and validate pipeline YAML held in memory; `source_name` is used as FILE in error
/// messages and as source_path ("<string>" if empty).
Result<PipelineConfig> load_pipeline_string(std::string_view yaml, std::string_view source_name);
Result<PipelineConfig> load_pipeline_string(std::string_view yaml, std::string_view source_name,
                                            const EnvLookup& env);

}  // namespace spate
