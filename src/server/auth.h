// Authentication of the HTTP API by bearer tokens with scopes (pipeline key `server.auth`;
// docs/security.md#authentication).
//
// A request carries its token as `Authorization: Bearer TOKEN` (or `X-API-Key: TOKEN`). What it
// needs:
//   open_paths (default /health, /ready), POST /webhooks/NAME   nothing (webhooks are signed)
//   POST /ingest/TOPIC                                          ingest:TOPIC or ingest:*
//   POST /ingest (the topic is chosen by the server)            ingest:*
//   GET|HEAD /metrics /status /ui /ui/data /docs /openapi.json  read
//   anything else (the log API, the orchestrator's operations)  admin
// `admin` grants everything. No token, or an unknown one: 401 with `WWW-Authenticate: Bearer`;
// a known token without the scope: 403 naming the scope. Each refusal counts in
// `http_auth_failures_total{reason="missing"|"invalid"|"forbidden"}`.
//
// Tokens are compared in constant time: the presented token's SHA-256 against every configured
// token's, with CRYPTO_memcmp, always all of them. Tokens never appear in logs or answers.
//
// Thread safety: check() is const and thread-safe.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "server/http_client.h"
#include "server/http_server.h"
#include "spate/config.h"
#include "spate/metrics.h"

namespace spate {

class Authenticator {
 public:
  Authenticator(const AuthConfig& cfg, MetricsRegistry* metrics);

  /// nullopt: the request may go on; else the 401/403 answer.
  std::optional<HttpResponse> check(const HttpRequest& req) const;

  /// The scope `method path` needs ("" = open), per the table above.
  std::string required_scope(std::string_view method, std::string_view path) const;

  /// The function for HttpServerConfig::authorize (captures this: keep it alive).
  HttpAuthorizer authorizer() const;

 private:
  struct Token {
    std::string name;
    std::array<unsigned char, 32> digest;
    std::vector<std::string> scopes;
  };
  std::vector<Token> tokens_;
  std::vector<std::string> open_paths_;
  Counter* missing_ = nullptr;
  Counter* invalid_ = nullptr;
  Counter* forbidden_ = nullptr;
};

/// HttpServerConfig::tls for `server.tls` (nullopt when not enabled). Failed handshakes count
/// in `http_tls_handshake_failures_total{reason}`, reason one of no_client_certificate,
/// bad_certificate, plain_http, protocol (version or cipher mismatch, garbage), timeout, closed.
std::optional<HttpTlsConfig> http_tls_config(const TlsConfig& cfg, MetricsRegistry* metrics);

/// The token for outgoing requests of this process to other Spate servers (the log API, an
/// orchestrator's probes, the CLI's --log-url and --url): $SPATE_TOKEN, "" if unset.
std::string client_token();

/// {"Authorization": "Bearer T"} when client_token() is set, else nothing.
HttpHeaders client_auth_headers();

}  // namespace spate
