// The browser-facing endpoints of an admin server, with their assets built into the binary
// (src/server/web/, embedded by cmake/embed.cmake; nothing is fetched from elsewhere at run
// time):
//   GET /openapi.json   OpenAPI 3.1 document of this server: the documented paths that one of
//                       its registered routes serves, and `x-spate-routes`, the route table
//                       itself ([{method, path, prefix}]), so that a test can hold the two
//                       against each other
//   GET /docs           the document rendered as HTML (one self-contained page)
//   GET /ui             the web UI (`ui` only): live throughput, ack latency percentiles,
//                       consumer lag, component health from /metrics and /status, and the
//                       latest window results and alerts from GET /ui/data
//   GET /ui/data        WebHooks::ui_data's JSON
//
// Contract: install after every other route of the server (the document is computed per
// request from the routes registered at that time, which do not change once it runs) and
// before start(). Handlers are thread-safe if ui_data is.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "server/http_server.h"

namespace spate {

struct WebHooks {
  bool ui = true;  // serve /ui and /ui/data
  /// The answer to GET /ui/data (schema UiData of openapi.json). Unset: no results, no alerts.
  std::function<HttpResponse(const HttpRequest&)> ui_data;
};

void install_web_routes(HttpServer& server, WebHooks hooks = {});

/// The OpenAPI document restricted to `routes` (see above), with info.version set. Documented
/// paths are templates ("/ingest/{topic}"): an exact route matches a template segment by
/// segment ({x} matches any one segment), a prefix route every template that starts with it.
std::string openapi_document(const std::vector<HttpServer::Route>& routes);

/// Whether the documented path template `tmpl` is served by `route` (as above).
bool route_serves(const HttpServer::Route& route, std::string_view tmpl);

}  // namespace spate
