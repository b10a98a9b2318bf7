// Fuzz target: the HTTP server's request handling (src/server/http_server.h) on any bytes a
// client may send: request line and target, headers (limits on size and count, repeats,
// Expect: 100-continue), bodies (Content-Length, chunked, over the limit), pipelined requests,
// keep-alive and HTTP/1.0, routing (exact, prefix, 404/405, HEAD), the authorizer, sync and
// async handlers, query decoding. A real server runs in this process on a loopback port; each
// input is written to a fresh connection, the write side is shut, and the answer is read to the
// end. Must never crash or hang (every connection ends within the request timeout), and every
// answer starts with a well-formed status line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "server/http_server.h"

namespace {

spate::HttpServer& server() {
  static std::unique_ptr<spate::HttpServer> s = [] {
    spate::HttpServerConfig c;
    c.port = 0;
    c.io_threads = 1;
    c.max_body_bytes = 4096;
    c.idle_timeout_ms = 1000;
    c.max_header_count = 20;
    c.authorize = [](const spate::HttpRequest& r) -> std::optional<spate::HttpResponse> {
      if (r.path.starts_with("/private") && r.header("authorization") != "Bearer ok") {
        return spate::HttpResponse::error(401, "token required");
      }
      return std::nullopt;
    };
    auto srv = std::make_unique<spate::HttpServer>(c);
    srv->route("GET", "/echo", [](const spate::HttpRequest& r) {
      std::string out = r.method + " " + r.path + "\n" + r.query_param("q").value_or("-") + "\n" +
                        r.header("x-test");
      return spate::HttpResponse::text(200, out);
    });
    srv->route("GET", "/private/data", [](const spate::HttpRequest&) {
      return spate::HttpResponse::json(200, "{}");
    });
    srv->route_prefix_async("POST", "/ingest/", [](spate::HttpRequest r, spate::HttpResponder respond) {
      respond(spate::HttpResponse::json(202, "{\"bytes\":" + std::to_string(r.body.size()) + "}"));
    });
    srv->route("POST", "/throw", [](const spate::HttpRequest&) -> spate::HttpResponse {
      throw std::runtime_error("handler failed");
    });
    if (!srv->start().ok()) std::abort();
    return srv;
  }();
  return *s;
}

// `out` starts with a status line "HTTP/1.x NNN " with a status the server may send (later
// answers are not parsed: a body may hold any text).
bool well_formed(std::string_view out) {
  if (out.size() < 13 || !out.starts_with("HTTP/1.") || out[8] != ' ' || out[12] != ' ') return false;
  const int status = std::atoi(std::string(out.substr(9, 3)).c_str());
  return status >= 100 && status <= 599;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint16_t port = server().port();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  timeval tv{5, 0};  // the server's request timeout is 1 s: 5 s without an end is a hang
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early (an error answer): fine
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) __builtin_trap();  // a hang
    break;  // closed (or reset after an early error answer)
  }
  ::close(fd);
  if (!out.empty() && !well_formed(out)) __builtin_trap();
  return 0;
}
