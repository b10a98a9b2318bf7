// HttpServer: a small embedded HTTP/1.1 server (Boost.Beast underneath, not exposed here).
//
// What it does: listens on host:port, parses requests (keep-alive and pipelining; requests on
// one connection are handled one after another, in order) and dispatches them to handlers
// registered by exact path (route) or by path prefix (route_prefix, longest prefix wins).
// Built-in answers, all with a JSON body {"error":"..."} and Content-Type application/json:
//   404 no route for the path          405 path known, method not (Allow header set)
//   413 body over max_body_bytes       431 request header over 64 KiB
//   400 malformed request              500 handler threw
// HEAD is served by the GET handler with the body dropped. Every response carries
// `Server: spate/<version>` and Content-Length (except 204/304, which have no body). A request
// with `Expect: 100-continue` gets "100 Continue" before its body is read. Garbage input ends
// that connection (after a 400 where possible) and never affects others.
//
// Thread safety: route()/route_prefix() must be called before start() (checked). start(),
// stop() and port() may be called from any thread. Handlers run on the server's I/O threads
// (io_threads of them), concurrently for different connections: they must be thread-safe and
// should not block for long (a blocked handler holds one I/O thread).
//
// Lifecycle: start() binds and listens before returning (so port() is valid and connections
// succeed right away); on failure (address in use, bad host) it returns an error Status and
// nothing is left running. stop() stops accepting, lets responses being written finish (up
// to shutdown_grace_ms), closes every connection, joins the threads and frees the port; it is
// idempotent and also run by the destructor. A stopped server may be started again.
// stop() must not be called from a handler (it joins the I/O threads), and a handler that
// never returns keeps stop() from returning.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/json_escape.h"
#include "spate/status.h"

namespace spate {

struct HttpRequest {
  std::string method;  // "GET", "POST", ... as sent
  std::string target;  // raw request target: "/ingest/orders?dry_run=1"
  std::string path;    // target up to '?', not percent-decoded: "/ingest/orders"
  std::string query;   // after '?' (without it), not decoded: "dry_run=1"
  // Lower-case names; repeats joined with ", ".
  std::map<std::string, std::string, std::less<>> headers;
  std::string body;
  std::string remote_address;  // "127.0.0.1:53412" (server side only)

  /// Header value by case-insensitive name, "" if absent.
  std::string header(std::string_view name) const;
  /// First query parameter `name`, percent- and '+'-decoded; nullopt if absent.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra headers. The server sets Content-Length, Connection and Server itself and ignores
  // those (and Transfer-Encoding) here. From http_request(): all response headers, lower-case.
  std::vector<std::pair<std::string, std::string>> headers;

  /// Header value by case-insensitive name, "" if absent.
  std::string header(std::string_view name) const;

  static HttpResponse json(int status, std::string body);
  static HttpResponse text(int status, std::string body);
  /// {"error":"<message>"} with the given status.
  static HttpResponse error(int status, std::string_view message);
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
/// Completes an asynchronous request. Call exactly once, from any thread.
using HttpResponder = std::function<void(HttpResponse)>;
/// An asynchronous handler owns the request and answers later through the responder (for
/// example once the events it carries are durable). The connection reads no further request
/// until it has answered, so pipelined requests are still answered in order.
using AsyncHttpHandler = std::function<void(HttpRequest, HttpResponder)>;

/// Decides before routing whether a request may be served: nullopt = yes, else the answer to
/// send instead (e.g. 401). Called on the I/O threads; must be thread-safe and quick.
using HttpAuthorizer = std::function<std::optional<HttpResponse>(const HttpRequest&)>;

/// TLS for a server (HttpServerConfig::tls). Files are PEM and read by start(); an unreadable
/// or mismatched certificate/key is start()'s error. TLS 1.2 and 1.3 only, forward-secret AEAD
/// cipher suites only (ECDHE with AES-GCM or ChaCha20-Poly1305), no compression, no
/// renegotiation. With client_ca_file a client certificate is asked for and verified against
/// it; require_client_cert then refuses connections without one (mutual TLS).
/// A failed handshake closes that connection (no HTTP answer is possible) and is reported to
/// on_handshake_failure. Certificates are read once: restart to rotate them.
struct HttpTlsConfig {
  std::string cert_file;            // the certificate chain, leaf first
  std::string key_file;             // its private key (unencrypted)
  std::string client_ca_file;       // "" = no client certificates asked for
  bool require_client_cert = true;  // only with client_ca_file
  std::string min_version = "1.2";  // "1.2" | "1.3"
  // Called on the I/O thread with a short reason ("no client certificate", "wrong version",
  // "handshake timeout", ...): must be thread-safe and quick.
  std::function<void(std::string_view reason)> on_handshake_failure;
};

struct HttpServerConfig {
  std::string host = "127.0.0.1";  // IP literal or resolvable name; "0.0.0.0"/"::" for all
  uint16_t port = 8080;            // 0 = ephemeral, see HttpServer::port()
  int io_threads = 1;
  size_t max_body_bytes = 16 << 20;
  int64_t idle_timeout_ms = 60000;   // also bounds reading one request and writing a response
  int64_t shutdown_grace_ms = 2000;  // stop(): how long in-flight writes may take
  // SO_REUSEPORT: several processes (replicas) listen on the same port and the kernel spreads
  // connections among them. Every one of them must set it.
  bool reuse_port = false;
  HttpAuthorizer authorize;      // unset: every request is served
  int max_connections = 10'000;  // open connections; a new one beyond is answered 503 and closed
  int max_header_count = 100;    // request headers; more: 431
  std::optional<HttpTlsConfig> tls;  // set: HTTPS only on this port (plain HTTP is refused)
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerConfig cfg);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Exact-path route. Registering the same method+path again replaces the handler.
  void route(std::string method, std::string path, HttpHandler handler);
  /// Prefix route: "/ingest/" matches "/ingest/orders". Exact routes win over prefixes; the
  /// longest matching prefix wins among prefixes.
  void route_prefix(std::string method, std::string prefix, HttpHandler handler);

  /// Asynchronous variants of route()/route_prefix() (see AsyncHttpHandler).
  void route_async(std::string method, std::string path, AsyncHttpHandler handler);
  void route_prefix_async(std::string method, std::string prefix, AsyncHttpHandler handler);

  /// One registered route: what /openapi.json is checked against.
  struct Route {
    std::string method;
    std::string path;  // the exact path, or the prefix when `prefix`
    bool prefix = false;
  };
  /// Every route registered so far, exact ones first (sorted by path), then prefixes (longest
  /// first), each with its methods in order. Thread-safe.
  std::vector<Route> routes() const;

  /// Bind, listen, start the I/O threads. Error if already running or the address is taken.
  Status start();
  /// The bound port (the real one when the config said 0); 0 when not running.
  uint16_t port() const;
  bool running() const;
  /// Stop and join; idempotent.
  void stop();

 private:
  void add(bool prefix, std::string method, std::string path, HttpHandler sync,
           AsyncHttpHandler async);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Percent-decode `s` ("%2F" -> "/"); with plus_as_space also '+' -> ' '. Invalid escapes are
/// kept as they are.
std::string url_decode(std::string_view s, bool plus_as_space);

}  // namespace spate
