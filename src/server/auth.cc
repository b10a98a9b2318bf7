#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>

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
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return std::tolower(c); });
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
  for (const AuthTokenConfig& t : cfg.tokens)
    tokens_.push_back({t.name, digest_of(t.token), t.scopes});
  MetricsRegistry& m = metrics != nullptr ? *metrics : global_metrics();
  const char* help =
      "HTTP requests refused by authentication (missing or unknown token, or a token without the "
      "scope)";
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
    for (std::string_view p :
         {"/metrics", "/status", "/ui", "/ui/data", "/docs", "/openapi.json"}) {
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
    return deny(401,
                "authentication required: send Authorization: Bearer TOKEN (a token of "
                "server.auth.tokens with scope " +
                    scope + ")");
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
  const bool granted =
      std::any_of(found->scopes.begin(), found->scopes.end(), [&](const std::string& s) {
        return s == "admin" || s == scope || (s == "ingest:*" && scope.starts_with("ingest:"));
      });
  if (granted) return std::nullopt;
  forbidden_->inc();
  return deny(403, "token " + found->name + " lacks the scope " + scope + " for " + req.method +
                       " " + req.path);
}

HttpAuthorizer Authenticator::authorizer() const {
  return [this](const HttpRequest& req) { return check(req); };
}

std::string client_token() {
  const char* t = std::getenv("SPATE_TOKEN");
  return t != nullptr ? std::string(t) : std::string();
}

std::optional<HttpTlsConfig> http_tls_config(const TlsConfig& cfg, MetricsRegistry* metrics) {
  if (!cfg.enabled) return std::nullopt;
  HttpTlsConfig t;
  t.cert_file = cfg.cert_file;
  t.key_file = cfg.key_file;
  t.client_ca_file = cfg.client_ca_file;
  t.require_client_cert = cfg.require_client_cert;
  t.min_version = cfg.min_version;
  MetricsRegistry& m = metrics != nullptr ? *metrics : global_metrics();
  static constexpr const char* kHelp = "TLS handshakes that failed, by reason";
  struct Counters {
    Counter* no_cert;
    Counter* bad_cert;
    Counter* plain;
    Counter* protocol;
    Counter* timeout;
    Counter* closed;
  };
  auto c = std::make_shared<Counters>(Counters{
      &m.counter("http_tls_handshake_failures_total", kHelp, {{"reason", "no_client_certificate"}}),
      &m.counter("http_tls_handshake_failures_total", kHelp, {{"reason", "bad_certificate"}}),
      &m.counter("http_tls_handshake_failures_total", kHelp, {{"reason", "plain_http"}}),
      &m.counter("http_tls_handshake_failures_total", kHelp, {{"reason", "protocol"}}),
      &m.counter("http_tls_handshake_failures_total", kHelp, {{"reason", "timeout"}}),
      &m.counter("http_tls_handshake_failures_total", kHelp, {{"reason", "closed"}})});
  t.on_handshake_failure = [c](std::string_view reason) {
    if (reason == "peer did not return a certificate") {
      c->no_cert->inc();
    } else if (reason.find("certificate") != std::string_view::npos) {
      c->bad_cert->inc();
    } else if (reason == "http request") {
      c->plain->inc();
    } else if (reason == "handshake timeout") {
      c->timeout->inc();
    } else if (reason == "closed during the handshake") {
      c->closed->inc();
    } else {
      c->protocol->inc();
    }
  };
  return t;
}

HttpHeaders client_auth_headers() {
  std::string t = client_token();
  if (t.empty()) return {};
  return {{"Authorization", "Bearer " + t}};
}

}  // namespace spate
