// A small blocking HTTP/1.1 client (Boost.Beast underneath, not exposed here), for tests, the
// CLI (`spate produce`, `spate bench`) and e2e tools. Plain HTTP only.
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

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port, int64_t timeout_ms = 10000);
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

/// One request on a fresh connection.
Result<HttpResponse> http_request(const std::string& host, uint16_t port, std::string_view method,
                                  std::string_view target, std::string_view body = {},
                                  const HttpHeaders& headers = {}, int64_t timeout_ms = 10000);

}  // namespace spate
