// Admin endpoints: GET /health, /ready, /metrics, /status on an HttpServer.
//
// What it does: install_admin_routes() registers
//   GET /health   200 {"status":"ok"} whenever the process can answer at all
//   GET /ready    200 {"status":"ready"} if hooks.ready() (or no hook), else 503
//                 {"status":"starting"}
//   GET /metrics  hooks.metrics->render_prometheus() (global_metrics() if null), Content-Type
//                 "text/plain; version=0.0.4; charset=utf-8"
//   GET /status   hooks.status_json() as application/json ({"status":"ok"} if no hook)
// (HEAD works on all of them.) A hook that throws yields a 500 with a JSON error body.
//
// Thread safety: the hooks run on the server's I/O threads, possibly concurrently: they must
// be thread-safe. Call before HttpServer::start(), like any route registration. The metrics
// registry must outlive the server.
#pragma once

#include <functional>
#include <string>

#include "server/http_server.h"
#include "spate/metrics.h"

namespace spate {

struct AdminHooks {
  std::function<bool()> ready;               // null: always ready
  // Why the process is not ready although it started (e.g. "Kafka unreachable: ..."); empty =
  // ready as far as this hook knows. /ready answers 503 {"status":"unavailable","reason":...}.
  std::function<std::string()> unready_reason;
  std::function<std::string()> status_json;  // /status body (JSON), built by the caller
  MetricsRegistry* metrics = nullptr;        // null: global_metrics()
};

inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

void install_admin_routes(HttpServer& server, AdminHooks hooks);

}  // namespace spate
