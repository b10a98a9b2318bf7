#include "server/admin.h"

#include "base/json_escape.h"

#include <memory>
#include <utility>

namespace spate {

void install_admin_routes(HttpServer& server, AdminHooks hooks) {
  auto h = std::make_shared<const AdminHooks>(std::move(hooks));
  server.route("GET", "/health",
               [](const HttpRequest&) { return HttpResponse::json(200, R"({"status":"ok"})"); });
  server.route("GET", "/ready", [h](const HttpRequest&) {
    if (h->ready && !h->ready()) return HttpResponse::json(503, R"({"status":"starting"})");
    if (h->unready_reason) {
      const std::string why = h->unready_reason();
      if (!why.empty()) {
        return HttpResponse::json(503, "{\"status\":\"unavailable\",\"reason\":\"" +
                                           json_escape(why) + "\"}");
      }
    }
    return HttpResponse::json(200, R"({"status":"ready"})");
  });
  server.route("GET", "/metrics", [h](const HttpRequest&) {
    MetricsRegistry& registry = h->metrics != nullptr ? *h->metrics : global_metrics();
    HttpResponse r = HttpResponse::text(200, registry.render_prometheus());
    r.content_type = kPrometheusContentType;
    return r;
  });
  server.route("GET", "/status", [h](const HttpRequest&) {
    return HttpResponse::json(200, h->status_json ? h->status_json() : R"({"status":"ok"})");
  });
}

}  // namespace spate
