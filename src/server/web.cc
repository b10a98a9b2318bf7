#include "server/web.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <string_view>
#include <utility>

#include "base/json_escape.h"
#include "base/split.h"
#include "spate/version.h"

namespace spate {

namespace web {
extern const std::string_view kOpenApiJson;
extern const std::string_view kDocsHtml;
extern const std::string_view kUiHtml;
}  // namespace web

namespace {

std::vector<std::string_view> segments(std::string_view p) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= p.size()) {
    const size_t j = std::min(p.find('/', i), p.size());
    out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

HttpResponse html(std::string_view body) {
  HttpResponse r;
  r.status = 200;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::string(body);
  // Everything the pages need is in them or on this server.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                         "style-src 'self' 'unsafe-inline'; img-src 'self' data:");
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

}  // namespace

bool route_serves(const HttpServer::Route& route, std::string_view tmpl) {
  if (route.prefix) return tmpl.starts_with(route.path);
  const auto want = segments(tmpl);
  const auto have = segments(route.path);
  if (want.size() != have.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    const bool param = want[i].size() > 2 && want[i].front() == '{' && want[i].back() == '}';
    if (param ? have[i].empty() : want[i] != have[i]) return false;
  }
  return true;
}

std::string openapi_document(const std::vector<HttpServer::Route>& routes) {
  simdjson::dom::parser parser;
  const simdjson::padded_string src(web::kOpenApiJson);
  simdjson::dom::object doc;
  if (parser.parse(src).get(doc) != simdjson::SUCCESS) {
    return R"({"error":"the built-in OpenAPI document does not parse"})";  // a build defect
  }
  std::string out = "{";
  bool first = true;
  for (auto [key, value] : doc) {
    if (!first) out += ',';
    first = false;
    out += '"' + json_escape(key) + "\":";
    if (key != "paths") {
      out += simdjson::to_string(value);
      continue;
    }
    out += '{';
    bool first_path = true;
    simdjson::dom::object paths;
    if (value.get(paths) != simdjson::SUCCESS) continue;
    for (auto [path, item] : paths) {
      simdjson::dom::object ops;
      if (item.get(ops) != simdjson::SUCCESS) continue;
      std::string kept;
      for (auto [method, op] : ops) {
        // Named copies: clang 14 cannot capture structured bindings in a lambda.
        const std::string_view m = method;
        const std::string_view p = path;
        const bool served = std::any_of(routes.begin(), routes.end(), [&](const auto& r) {
          return lower(r.method) == m && route_serves(r, p);
        });
        if (!served) continue;
        if (!kept.empty()) kept += ',';
        kept += '"' + json_escape(method) + "\":" + simdjson::to_string(op);
      }
      if (kept.empty()) continue;
      if (!first_path) out += ',';
      first_path = false;
      out += '"' + json_escape(path) + "\":{" + kept + '}';
    }
    out += '}';
  }
  out += ",\"x-spate-routes\":[";
  for (size_t i = 0; i < routes.size(); ++i) {
    if (i) out += ',';
    out += "{\"method\":\"" + json_escape(routes[i].method) + "\",\"path\":\"" +
           json_escape(routes[i].path) + "\",\"prefix\":" + (routes[i].prefix ? "true" : "false") +
           '}';
  }
  out += "]}";
  const std::string_view placeholder = "@SPATE_VERSION@";
  if (size_t at = out.find(placeholder); at != std::string::npos) {
    out.replace(at, placeholder.size(), SPATE_VERSION);
  }
  return out;
}

void install_web_routes(HttpServer& server, WebHooks hooks) {
  auto h = std::make_shared<const WebHooks>(std::move(hooks));
  HttpServer* s = &server;  // outlives its handlers
  server.route("GET", "/openapi.json", [s](const HttpRequest&) {
    return HttpResponse::json(200, openapi_document(s->routes()));
  });
  server.route("GET", "/docs", [](const HttpRequest&) { return html(web::kDocsHtml); });
  if (!h->ui) return;
  server.route("GET", "/ui", [](const HttpRequest&) { return html(web::kUiHtml); });
  server.route("GET", "/ui/data", [h](const HttpRequest& req) {
    if (h->ui_data) return h->ui_data(req);
    return HttpResponse::json(200, R"({"time_ms":0,"results":[],"alerts":[]})");
  });
}

}  // namespace spate
