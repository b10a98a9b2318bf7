// A small blocking HTTP/1.1 client (Boost.Beast underneath, not exposed here), for tests, the
// CLI (`spate produce`, `spate bench`) and e2e tools. HTTP, or HTTPS with HttpClientTls.
//
// HttpClient keeps one keep-alive connection to host:port and sends requests on it one at a
// time; it reconnects when the server closed the connection, and retries a request once if a
// *reused* connection turns out to be closed before any response byte arrived. http_request()
// is the one-shot form (new connection, closed afterwards).
//
// Every call is bounded by timeout_ms (resolve + connect + write + read together).
// Failure: Timeout on expiry, Unavailable when the connection cannot be made (refused,
// unresolvable), IoError for a broken connection or a malformed response. A response with any
// status (4xx/5xx included) is a success at this level: check HttpResponse::status.
// The response's headers are all returned with lower-case names; content_type is filled from
// Content-Type ("" if absent).
//
// Thread safety: an HttpClient is not thread-safe (use one per thread); http_request() is.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/http_server.h"
#include "spate/status.h"

namespace spate {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// HTTPS for a client. The server's certificate is always verified: against ca_file, else the
/// system's trusted CAs, and for the name connected to (or server_name): a DNS name is checked
/// against the certificate's names and sent as SNI, an IP literal against its IP addresses.
/// TLS 1.2 or later. A failed check is an Unavailable error that says why ("certificate has
/// expired", "unable to get local issuer certificate", ...).
struct HttpClientTls {
  bool enabled = false;
  std::string ca_file;    // PEM; "" = the system's trusted CAs
  std::string cert_file;  // client certificate for mutual TLS (with key_file), "" = none
  std::string key_file;
  std::string server_name;  // the name to verify, "" = the host connected to
};

/// enabled as given, the rest from $SPATE_CA_FILE, $SPATE_CLIENT_CERT, $SPATE_CLIENT_KEY and
/// $SPATE_TLS_SERVER_NAME: what every Spate client (CLI, remote log, orchestrator probes) uses.
HttpClientTls client_tls_from_env(bool enabled);

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port, int64_t timeout_ms = 10000, HttpClientTls tls = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Send one request and read its response. Host, User-Agent and Content-Length are set
  /// unless given in `headers`.
  Result<HttpResponse> request(std::string_view method, std::string_view target,
                               std::string_view body = {}, const HttpHeaders& headers = {});
  /// Bound of the following requests (as the constructor's timeout_ms).
  void set_timeout_ms(int64_t timeout_ms);
  /// Close the connection (the next request reconnects).
  void close();
  bool connected() const;
  /// Number of TCP connections opened so far (to observe keep-alive).
  int connections_opened() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Where a Spate server is: from "http://HOST:PORT[/]" or "https://HOST:PORT[/]" (HOST may be
/// "[::1]"; the port is required).
struct HttpEndpoint {
  std::string host;
  uint16_t port = 0;
  bool https = false;
  /// HttpClientTls for this endpoint: client_tls_from_env(https).
  HttpClientTls tls() const { return client_tls_from_env(https); }
};
/// Error (kConfig) that names `what` and shows the expected form.
Result<HttpEndpoint> parse_endpoint_url(std::string_view url, std::string_view what = "url");

/// One request on a fresh connection.
Result<HttpResponse> http_request(const std::string& host, uint16_t port, std::string_view method,
                                  std::string_view target, std::string_view body = {},
                                  const HttpHeaders& headers = {}, int64_t timeout_ms = 10000,
                                  const HttpClientTls& tls = {});

}  // namespace spate
