#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "server/http_client.h"

namespace spate {

namespace {

std::array<unsigned char, 32> digest_of(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

// The token of a request: `Authorization: Bearer T` (scheme case-insensitive) or `X-API-Key: T`.
std::optional<std::string> presented_token(const HttpRequest& req) {
  std::string auth = req.header("authorization");
  if (auth.size() > 7) {
    std::string scheme = auth.substr(0, 7);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
    if (scheme == "bearer ") {
      size_t b = 7;
      while (b < auth.size() && auth[b] == ' ') ++b;
      return auth.substr(b);
    }
  }
  std::string key = req.header("x-api-key");
  if (!key.empty()) return key;
  return std::nullopt;
}

}  // namespace

Authenticator::Authenticator(const AuthConfig& cfg, MetricsRegistry* metrics)
    : open_paths_(cfg.open_paths) {
  for (const AuthTokenConfig& t : cfg.tokens) tokens_.push_back({t.name, digest_of(t.token), t.scopes});
  MetricsRegistry& m = metrics != nullptr ? *metrics : global_metrics();
  const char* help = "HTTP requests refused by authentication (missing or unknown token, or a token without the scope)";
  missing_ = &m.counter("http_auth_failures_total", help, {{"reason", "missing"}});
  invalid_ = &m.counter("http_auth_failures_total", help, {{"reason", "invalid"}});
  forbidden_ = &m.counter("http_auth_failures_total", help, {{"reason", "forbidden"}});
}

std::string Authenticator::required_scope(std::string_view method, std::string_view path) const {
  for (const std::string& p : open_paths_) {
    if (path == p) return "";
  }
  if (method == "POST" && path.starts_with("/webhooks/")) return "";
  if (method == "POST" && path.starts_with("/ingest/") && path.size() > 8) {
    return "ingest:" + std::string(path.substr(8));
  }
  if (method == "POST" && path == "/ingest") return "ingest:*";
  if (method == "GET" || method == "HEAD") {
    for (std::string_view p : {"/metrics", "/status", "/ui", "/ui/data", "/docs", "/openapi.json"}) {
      if (path == p) return "read";
    }
  }
  return "admin";
}

std::optional<HttpResponse> Authenticator::check(const HttpRequest& req) const {
  const std::string scope = required_scope(req.method, req.path);
  if (scope.empty()) return std::nullopt;
  auto deny = [](int status, std::string_view message) {
    HttpResponse r = HttpResponse::error(status, message);
    if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"spate\"");
    return r;
  };
  const std::optional<std::string> token = presented_token(req);
  if (!token) {
    missing_->inc();
    return deny(401, "authentication required: send Authorization: Bearer TOKEN (a token of server.auth.tokens with scope " + scope + ")");
  }
  const auto d = digest_of(*token);
  const Token* found = nullptr;
  for (const Token& t : tokens_) {  // all of them, whatever matches: constant time
    const bool same = CRYPTO_memcmp(d.data(), t.digest.data(), d.size()) == 0;
    if (same && found == nullptr) found = &t;
  }
  if (found == nullptr) {
    invalid_->inc();
    return deny(401, "unknown token");
  }
  const bool granted = std::any_of(found->scopes.begin(), found->scopes.end(), [&](const std::string& s) {
    return s == "admin" || s == scope || (s == "ingest:*" && scope.starts_with("ingest:"));
  });
  if (granted) return std::nullopt;
  forbidden_->inc();
  return deny(403, "token " + found->name + " lacks the scope " + scope + " for " + req.method + " " + req.path);
}

HttpAuthorizer Authenticator::authorizer() const {
  return [this](const HttpRequest& req) { return check(req); };
}

std::string client_token() {
  const char* t = std::getenv("SPATE_TOKEN");
  return t != nullptr ? std::string(t) : std::string();
}

HttpHeaders client_auth_headers() {
  std::string t = client_token();
  if (t.empty()) return {};
  return {{"Authorization", "Bearer " + t}};
}

}  // namespace spate
