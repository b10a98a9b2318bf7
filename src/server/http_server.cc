// HttpServer on Boost.Beast, callback style: `io_threads` threads, each running an io_context of
// its own (no locks shared between the threads); a connection lives on one of them (accepted
// round-robin), so its handlers never run concurrently without needing a strand. The only
// translation units that include Beast are this one and http_client.cc.
#include "server/http_server.h"

#include "server/openssl_error.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>

#include "spate/version.h"

namespace spate {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace ssl = boost::asio::ssl;

// ---------------------------------------------------------------------------------------------
// Small helpers (declared in the header)

namespace {

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  char* end = buf + sizeof buf;
  char* p = end;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  out.append(p, static_cast<size_t>(end - p));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string url_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::string HttpRequest::header(std::string_view name) const {
  char buf[64];
  if (name.size() > sizeof buf) {
    auto it = headers.find(lower(name));
    return it == headers.end() ? std::string() : it->second;
  }
  for (size_t i = 0; i < name.size(); ++i) buf[i] = ascii_lower(name[i]);
  auto it = headers.find(std::string_view(buf, name.size()));
  return it == headers.end() ? std::string() : it->second;
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    size_t eq = part.find('=');
    std::string key = url_decode(part.substr(0, eq), true);
    if (key != name) continue;
    if (eq == std::string_view::npos) return std::string();
    return url_decode(part.substr(eq + 1), true);
  }
  return std::nullopt;
}

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::error(int status, std::string_view message) {
  return json(status, "{\"error\":\"" + json_escape(message) + "\"}");
}

// ---------------------------------------------------------------------------------------------
// Routing

namespace {

constexpr uint32_t kHeaderLimit = 64 * 1024;
constexpr auto kLingerTimeout = std::chrono::milliseconds(500);
constexpr size_t kLingerMaxBytes = 1 << 20;
constexpr std::string_view kServerHeader = "spate/" SPATE_VERSION;

struct Handler {
  HttpHandler sync;
  AsyncHttpHandler async;
};

struct RouteSet {
  std::map<std::string, Handler> by_method;
};

struct Routes {
  std::map<std::string, RouteSet, std::less<>> exact;
  std::vector<std::pair<std::string, RouteSet>> prefix;  // sorted by length, longest first

  // Find the handler for a request; on 404/405 fills *error and returns nullptr.
  const Handler* find(const HttpRequest& req, bool* head_only, HttpResponse* error) const {
    *head_only = false;
    const RouteSet* set = nullptr;
    if (auto it = exact.find(req.path); it != exact.end()) {
      set = &it->second;
    } else {
      for (const auto& [p, s] : prefix) {
        if (req.path.compare(0, p.size(), p) == 0) {
          set = &s;
          break;
        }
      }
    }
    if (set == nullptr) {
      *error = HttpResponse::error(404, "not found");
      return nullptr;
    }
    auto h = set->by_method.find(req.method);
    if (h == set->by_method.end() && req.method == "HEAD") {
      h = set->by_method.find("GET");
      *head_only = h != set->by_method.end();
    }
    if (h == set->by_method.end()) {
      HttpResponse r = HttpResponse::error(405, "method not allowed");
      std::string allow;
      for (const auto& [m, unused] : set->by_method) {
        allow += allow.empty() ? m : ", " + m;
        if (m == "GET" && set->by_method.count("HEAD") == 0) allow += ", HEAD";
      }
      r.headers.emplace_back("Allow", allow);
      *error = std::move(r);
      return nullptr;
    }
    return &h->second;
  }
};

HttpResponse call_sync(const HttpHandler& h, const HttpRequest& req) {
  try {
    return h(req);
  } catch (const std::exception& e) {
    return HttpResponse::error(500, std::string("internal error: ") + e.what());
  } catch (...) {
    return HttpResponse::error(500, "internal error");
  }
}

// What stop() needs of a connection, whichever stream it runs on.
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  // From stop(): close now unless a response is being written (that one finishes first).
  virtual void stop_async() = 0;
};

// State shared by the acceptor and every connection of one start()..stop() run.
struct ServerState {
  HttpServerConfig cfg;
  Routes routes;
  std::shared_ptr<ssl::context> tls;  // set: every connection speaks TLS
  std::atomic<bool> stopping{false};
  std::atomic<int> open_connections{0};
  std::mutex conns_mu;
  std::vector<std::weak_ptr<ConnectionBase>> conns;
};

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// "wrong version number (SSL routines)" -> "wrong version number"
std::string tls_reason(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "handshake timeout";
  if (ec == net::error::eof || ec == net::ssl::error::stream_truncated) {
    return "closed during the handshake";
  }
  std::string m = ec.message();
  if (size_t p = m.find(" ("); p != std::string::npos) m.resize(p);
  return m;
}

// TLS 1.2 suites (TLS 1.3 has only AEAD suites, OpenSSL's defaults are kept): forward secret
// key exchange and AEAD ciphers only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

Result<std::shared_ptr<ssl::context>> make_tls_context(const HttpTlsConfig& t) {
  auto fail = [](const std::string& what) {
    std::string e = openssl_error();
    return InvalidArgument("tls: " + what + (e.empty() ? "" : ": " + e));
  };
  if (t.cert_file.empty() || t.key_file.empty()) {
    return InvalidArgument("tls: cert_file and key_file are both needed");
  }
  if (t.min_version != "1.2" && t.min_version != "1.3") {
    return InvalidArgument("tls: min_version must be \"1.2\" or \"1.3\", got \"" + t.min_version +
                           "\"");
  }
  for (const std::string* f : {&t.cert_file, &t.key_file, &t.client_ca_file}) {
    if (f->empty()) continue;
    if (std::FILE* fp = std::fopen(f->c_str(), "rb")) {
      std::fclose(fp);
    } else {
      return InvalidArgument("tls: cannot read " + *f + ": " + std::strerror(errno));
    }
  }
  ERR_clear_error();
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, t.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(
      c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1) return fail("setting the cipher list");
  if (SSL_CTX_use_certificate_chain_file(c, t.cert_file.c_str()) != 1) {
    return fail("cannot load the certificate " + t.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(c, t.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail("cannot load the private key " + t.key_file);
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return fail("the private key " + t.key_file + " does not belong to the certificate " +
                t.cert_file);
  }
  if (!t.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, t.client_ca_file.c_str(), nullptr) != 1) {
      return fail("cannot load the client CA " + t.client_ca_file);
    }
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(t.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(c, names);  // takes ownership
    }
    SSL_CTX_set_verify(
        c, SSL_VERIFY_PEER | (t.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
    static constexpr unsigned char kSessionContext[] = "spate";
    SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);
  }
  return ctx;
}

// Split "/a/b?x=1" into path and query; absolute-form "http://h/a" is reduced to "/a".
bool split_target(std::string_view target, std::string* path, std::string* query) {
  if (target.starts_with("http://") || target.starts_with("https://")) {
    size_t scheme_end = target.find("://") + 3;
    size_t slash = target.find_first_of("/?", scheme_end);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    if (target.starts_with("?")) {
      *path = "/";
      *query = std::string(target.substr(1));
      return true;
    }
  }
  if (!target.starts_with("/")) return false;
  size_t q = target.find('?');
  *path = std::string(target.substr(0, q));
  *query = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
  return true;
}

// One connection, on a plain TCP stream or a TLS stream over it.
template <class Stream>
class Connection final : public ConnectionBase,
                         public std::enable_shared_from_this<Connection<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Connection(tcp::socket socket, std::shared_ptr<ServerState> state)
      : stream_(make_stream(std::move(socket), *state)), state_(std::move(state)) {
    beast::error_code ec;
    tcp::endpoint remote = socket_().remote_endpoint(ec);
    if (!ec) remote_ = remote.address().to_string() + ":" + std::to_string(remote.port());
    socket_().set_option(tcp::no_delay(true), ec);
    state_->open_connections.fetch_add(1);
  }
  ~Connection() override { state_->open_connections.fetch_sub(1); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start() {
    net::dispatch(stream_.get_executor(), [self = ptr()] {
      if constexpr (kTls) {
        self->handshake();
      } else {
        self->read_request();
      }
    });
  }

  void stop_async() override {
    net::post(stream_.get_executor(), [self = ptr()] {
      if (!self->writing_) self->close_now();
    });
  }

 private:
  static Stream make_stream(tcp::socket&& socket, ServerState& state) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *state.tls);
    } else {
      return Stream(std::move(socket));
    }
  }
  std::shared_ptr<Connection> ptr() { return this->shared_from_this(); }
  beast::tcp_stream& tcp_() { return beast::get_lowest_layer(stream_); }
  tcp::socket& socket_() { return tcp_().socket(); }

  void handshake() {
    tcp_().expires_after(idle());
    stream_.async_handshake(ssl::stream_base::server, [self = ptr()](beast::error_code ec) {
      if (!ec) {
        return self->read_request();
      }
      std::string reason = tls_reason(ec);
      if (self->state_->cfg.tls->on_handshake_failure) {
        self->state_->cfg.tls->on_handshake_failure(reason);
      }
      if (reason == "http request") {
        // Plain HTTP on the HTTPS port: say so in plain HTTP, as the client can read that.
        static constexpr std::string_view kBody =
            "{\"error\":\"this port speaks HTTPS, not HTTP\"}\n";
        static_assert(kBody.size() == 45, "Content-Length below");
        static constexpr std::string_view kPlain =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            "Connection: close\r\nContent-Length: 45\r\n\r\n"
            "{\"error\":\"this port speaks HTTPS, not HTTP\"}\n";
        beast::error_code ignored;
        self->socket_().non_blocking(true, ignored);
        (void)self->socket_().write_some(net::buffer(kPlain.data(), kPlain.size()), ignored);
        self->socket_().shutdown(tcp::socket::shutdown_send, ignored);
      }
      self->close_now();
    });
  }

  std::chrono::milliseconds idle() const {
    return std::chrono::milliseconds(std::max<int64_t>(state_->cfg.idle_timeout_ms, 1));
  }

  void read_request() {
    if (state_->stopping.load()) return close_now();
    parser_.emplace();
    parser_->body_limit(static_cast<std::uint64_t>(state_->cfg.max_body_bytes));
    parser_->header_limit(kHeaderLimit);
    tcp_().expires_after(idle());
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = ptr()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    if (state_->stopping.load()) return close_now();
    const auto& req = parser_->get();
    auto expect = req[http::field::expect];
    if (req.version() >= 11 && !parser_->is_done() &&
        iequals({expect.data(), expect.size()}, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      tcp_().expires_after(idle());
      writing_ = true;
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = ptr()](beast::error_code wec, size_t) {
                         self->writing_ = false;
                         if (wec || self->state_->stopping.load()) return self->close_now();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    tcp_().expires_after(idle());
    http::async_read(stream_, buffer_, *parser_, [self = ptr()](beast::error_code ec, size_t) {
      if (ec) return self->on_read_error(ec);
      self->handle();
    });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return close_gracefully();
    if (ec == http::error::body_limit) {
      return send_error(
          413, "request body larger than " + std::to_string(state_->cfg.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) return send_error(431, "request header too large");
    if (ec == http::error::partial_message || ec == beast::error::timeout ||
        ec == net::error::operation_aborted ||
        ec.category() != http::make_error_code(http::error::bad_method).category()) {
      return close_now();
    }
    send_error(400, "bad request: " + ec.message());
  }

  // Error before a request was fully read: answer and close the connection.
  void send_error(int status, std::string_view message) {
    if (state_->stopping.load()) return close_now();
    HttpResponse r = HttpResponse::error(status, message);
    send(std::move(r), 11, /*keep_alive=*/false, /*head_only=*/false);
  }

  void handle() {
    http::request<http::string_body> msg = parser_->release();
    parser_.reset();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.remote_address = remote_;
    const size_t header_count = static_cast<size_t>(std::distance(msg.begin(), msg.end()));
    if (header_count > static_cast<size_t>(std::max(state_->cfg.max_header_count, 1))) {
      return send(
          HttpResponse::error(431, "more than " + std::to_string(state_->cfg.max_header_count) +
                                       " request headers"),
          msg.version(), false, false);
    }
    for (const auto& f : msg) {
      std::string name = lower(std::string_view(f.name_string().data(), f.name_string().size()));
      std::string_view value(f.value().data(), f.value().size());
      auto [it, inserted] = req.headers.try_emplace(std::move(name), value);
      if (!inserted) {
        it->second += ", ";
        it->second += value;
      }
    }
    req.body = std::move(msg.body());
    unsigned version = msg.version();
    bool keep_alive = msg.keep_alive();

    if (!split_target(req.target, &req.path, &req.query)) {
      return send(HttpResponse::error(400, "bad request target"), version, false, false);
    }
    if (state_->cfg.authorize) {
      if (std::optional<HttpResponse> deny = state_->cfg.authorize(req)) {
        return send(std::move(*deny), version, keep_alive, req.method == "HEAD");
      }
    }
    bool head_only = false;
    HttpResponse error;
    const Handler* h = state_->routes.find(req, &head_only, &error);
    if (h == nullptr) return send(std::move(error), version, keep_alive, head_only);
    if (h->sync) return send(call_sync(h->sync, req), version, keep_alive, head_only);
    // Asynchronous: the connection reads nothing more until the handler responds (from any
    // thread); the response is written on this connection's I/O thread — right away when the
    // handler responds from within this call (dispatch then runs it inline).
    auto self = ptr();
    HttpResponder respond = [self, version, keep_alive, head_only](HttpResponse r) {
      net::dispatch(self->stream_.get_executor(),
                    [self, r = std::move(r), version, keep_alive, head_only]() mutable {
                      self->send(std::move(r), version, keep_alive, head_only);
                    });
    };
    try {
      h->async(std::move(req), std::move(respond));
    } catch (const std::exception& e) {
      send(HttpResponse::error(500, std::string("internal error: ") + e.what()), version, false,
           head_only);
    }
  }

  // Serializes the response into out_ (reused, so no allocation in steady state) and writes it
  // with one send: what Beast's serializer would write for the same message, without its
  // per-field allocations and buffer sequence machinery.
  void send(HttpResponse r, unsigned version, bool keep_alive, bool head_only) {
    if (r.status < 200 || r.status > 999)
      r = HttpResponse::error(500, "handler returned a bad status");
    if (state_->stopping.load()) keep_alive = false;
    close_after_write_ = !keep_alive;
    const bool http10 = version == 10;
    out_.clear();
    out_ += http10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_uint(out_, static_cast<unsigned>(r.status));
    out_ += ' ';
    auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(r.status)));
    out_.append(reason.data(), reason.size());
    out_ += "\r\nServer: ";
    out_ += kServerHeader;
    if (!r.content_type.empty()) {
      out_ += "\r\nContent-Type: ";
      out_ += r.content_type;
    }
    for (auto& [name, value] : r.headers) {
      if (iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
          iequals(name, "connection") || iequals(name, "server")) {
        continue;
      }
      out_ += "\r\n";
      out_ += name;
      out_ += ": ";
      out_ += value;
    }
    bool no_body = r.status == 204 || r.status == 304;
    if (!no_body) {
      out_ += "\r\nContent-Length: ";
      append_uint(out_, r.body.size());
    }
    if (http10 && keep_alive) out_ += "\r\nConnection: keep-alive";
    if (!http10 && !keep_alive) out_ += "\r\nConnection: close";
    out_ += "\r\n\r\n";
    if (!no_body && !head_only) out_ += r.body;

    tcp_().expires_after(idle());
    writing_ = true;
    auto on_written = [self = ptr()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->close_now();
      if (self->close_after_write_ || self->state_->stopping.load()) {
        return self->close_gracefully();
      }
      self->read_request();
    };
    net::async_write(stream_, net::buffer(out_), std::move(on_written));
  }

  // Send FIN, then read and discard what the peer still sends (briefly), so that unread
  // request bytes do not turn our close into a RST that could destroy the response in flight.
  void close_gracefully() {
    if constexpr (kTls) {
      // close_notify, then wait (briefly) for the peer's before closing.
      if (state_->stopping.load()) return close_now();
      tcp_().expires_after(kLingerTimeout);
      stream_.async_shutdown([self = ptr()](beast::error_code) { self->close_now(); });
      return;
    }
    beast::error_code ec;
    socket_().shutdown(tcp::socket::shutdown_send, ec);
    if (ec || state_->stopping.load()) return close_now();
    tcp_().expires_after(kLingerTimeout);
    drain();
  }

  void drain() {
    stream_.async_read_some(net::buffer(drain_buf_),
                            [self = ptr()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kLingerMaxBytes) return self->close_now();
                              self->drain();
                            });
  }

  void close_now() {
    beast::error_code ec;
    socket_().close(ec);
  }

  Stream stream_;
  std::shared_ptr<ServerState> state_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_;  // the response being written
  std::string remote_;
  bool writing_ = false;
  bool close_after_write_ = false;
  size_t drained_ = 0;
  std::array<char, 4096> drain_buf_{};
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// HttpServer

struct HttpServer::Impl {
  HttpServerConfig cfg;
  Routes routes;

  std::mutex mu;  // serializes start/stop/route; never taken by I/O threads
  std::atomic<bool> running{false};
  std::atomic<uint16_t> port{0};
  // One io_context per I/O thread; the acceptor is on the first.
  std::vector<std::unique_ptr<net::io_context>> iocs;
  size_t next_ioc = 0;  // round-robin for accepted connections (acceptor's thread only)
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> accept_backoff;
  std::shared_ptr<ServerState> state;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;

  std::mutex done_mu;
  std::condition_variable done_cv;
  int threads_running = 0;

  void do_accept() {
    net::io_context& target = *iocs[next_ioc++ % iocs.size()];
    acceptor->async_accept(target, [this](beast::error_code ec, tcp::socket s) {
      if (state->stopping.load() || ec == net::error::operation_aborted) return;
      if (ec) {
        // E.g. EMFILE: retry shortly instead of spinning.
        accept_backoff->expires_after(std::chrono::milliseconds(50));
        accept_backoff->async_wait([this](beast::error_code tec) {
          if (!tec && !state->stopping.load()) do_accept();
        });
        return;
      }
      if (state->open_connections.load() >= std::max(state->cfg.max_connections, 1) && state->tls) {
        beast::error_code ignored;  // no plain-text answer on a TLS port: just close
        s.close(ignored);
        do_accept();
        return;
      }
      if (state->open_connections.load() >= std::max(state->cfg.max_connections, 1)) {
        // Over the limit: answer at once and close (the client sees why, and may retry later).
        static constexpr std::string_view kBusy =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Retry-After: 1\r\nConnection: close\r\nContent-Length: 58\r\n\r\n"
            "{\"error\":\"too many connections (server.max_connections)\"}\n";
        beast::error_code ignored;
        s.non_blocking(true, ignored);
        (void)s.write_some(net::buffer(kBusy.data(), kBusy.size()), ignored);
        s.shutdown(tcp::socket::shutdown_both, ignored);
        s.close(ignored);
        do_accept();
        return;
      }
      std::shared_ptr<ConnectionBase> conn;
      if (state->tls) {
        auto c = std::make_shared<Connection<TlsStream>>(std::move(s), state);
        c->start();
        conn = std::move(c);
      } else {
        auto c = std::make_shared<Connection<PlainStream>>(std::move(s), state);
        c->start();
        conn = std::move(c);
      }
      {
        std::lock_guard lock(state->conns_mu);
        if (state->conns.size() >= 64 && state->conns.size() % 64 == 0) {
          std::erase_if(state->conns, [](const auto& w) { return w.expired(); });
        }
        state->conns.push_back(conn);
      }
      do_accept();
    });
  }

  void run_thread(net::io_context& ioc) {
    for (;;) {
      try {
        ioc.run();
        break;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "spate: http server: unexpected exception: %s\n", e.what());
      }
    }
    std::lock_guard lock(done_mu);
    --threads_running;
    done_cv.notify_all();
  }
};

HttpServer::HttpServer(HttpServerConfig cfg) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
}

HttpServer::~HttpServer() {
  stop();
}

namespace {
void add_route(Routes& routes, bool prefix, std::string method, std::string path, Handler h) {
  if (!prefix) {
    routes.exact[std::move(path)].by_method[std::move(method)] = std::move(h);
    return;
  }
  auto& prefixes = routes.prefix;
  auto it = std::find_if(prefixes.begin(), prefixes.end(),
                         [&](const auto& p) { return p.first == path; });
  if (it == prefixes.end()) {
    prefixes.emplace_back(std::move(path), RouteSet{});
    it = prefixes.end() - 1;
  }
  it->second.by_method[std::move(method)] = std::move(h);
  std::stable_sort(prefixes.begin(), prefixes.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}
}  // namespace

void HttpServer::add(bool prefix, std::string method, std::string path, HttpHandler sync,
                     AsyncHttpHandler async) {
  std::lock_guard lock(impl_->mu);
  SPATE_CHECK(!impl_->running, "HttpServer: routes must be added before start(): " + path);
  SPATE_CHECK(sync != nullptr || async != nullptr, "HttpServer: empty handler for " + path);
  add_route(impl_->routes, prefix, std::move(method), std::move(path),
            Handler{std::move(sync), std::move(async)});
}

void HttpServer::route(std::string method, std::string path, HttpHandler handler) {
  add(false, std::move(method), std::move(path), std::move(handler), {});
}

void HttpServer::route_prefix(std::string method, std::string prefix, HttpHandler handler) {
  add(true, std::move(method), std::move(prefix), std::move(handler), {});
}

void HttpServer::route_async(std::string method, std::string path, AsyncHttpHandler handler) {
  add(false, std::move(method), std::move(path), {}, std::move(handler));
}

void HttpServer::route_prefix_async(std::string method, std::string prefix,
                                    AsyncHttpHandler handler) {
  add(true, std::move(method), std::move(prefix), {}, std::move(handler));
}

std::vector<HttpServer::Route> HttpServer::routes() const {
  std::lock_guard lock(impl_->mu);
  std::vector<Route> out;
  for (const auto& [path, set] : impl_->routes.exact) {
    for (const auto& [method, unused] : set.by_method) out.push_back({method, path, false});
  }
  for (const auto& [path, set] : impl_->routes.prefix) {
    for (const auto& [method, unused] : set.by_method) out.push_back({method, path, true});
  }
  return out;
}

Status HttpServer::start() {
  std::lock_guard lock(impl_->mu);
  Impl& m = *impl_;
  if (m.running) return Status(Errc::kAlreadyExists, "http server already running");
  const HttpServerConfig& cfg = m.cfg;
  std::string where = cfg.host + ":" + std::to_string(cfg.port);
  std::shared_ptr<ssl::context> tls;
  if (cfg.tls) {
    auto t = make_tls_context(*cfg.tls);
    if (!t.ok()) return t.status();
    tls = std::move(*t);
  }
  int threads = std::max(cfg.io_threads, 1);

  std::vector<std::unique_ptr<net::io_context>> iocs;
  for (int i = 0; i < threads; ++i) iocs.push_back(std::make_unique<net::io_context>(1));
  net::io_context* ioc = iocs.front().get();
  std::string host = cfg.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  beast::error_code ec;
  net::ip::address addr = net::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(*ioc);
    auto results = resolver.resolve(host, std::to_string(cfg.port), ec);
    if (ec || results.empty()) {
      return InvalidArgument("http server: cannot resolve host '" + cfg.host +
                             "': " + (ec ? ec.message() : "no addresses"));
    }
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(addr, cfg.port);

  auto acceptor = std::make_unique<tcp::acceptor>(*ioc);
  auto fail = [&](const char* step) {
    return IoError("http server: " + std::string(step) + " " + where + ": " + ec.message());
  };
  acceptor->open(endpoint.protocol(), ec);
  if (ec) return fail("opening socket for");
  acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("setting SO_REUSEADDR on");
  if (cfg.reuse_port) {
    using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
    acceptor->set_option(reuse_port(true), ec);
    if (ec) return fail("setting SO_REUSEPORT on");
  }
  acceptor->bind(endpoint, ec);
  if (ec) return fail("binding");
  acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listening on");
  m.port = acceptor->local_endpoint(ec).port();
  if (ec) return fail("reading the bound port of");

  auto state = std::make_shared<ServerState>();
  state->cfg = cfg;
  state->routes = m.routes;
  state->tls = std::move(tls);
  m.iocs = std::move(iocs);
  m.next_ioc = 0;
  m.acceptor = std::move(acceptor);
  m.accept_backoff = std::make_unique<net::steady_timer>(m.acceptor->get_executor());
  m.state = std::move(state);
  for (auto& c : m.iocs) m.work.push_back(net::make_work_guard(*c));
  m.do_accept();
  m.threads_running = threads;
  for (int i = 0; i < threads; ++i) {
    net::io_context* c = m.iocs[static_cast<size_t>(i)].get();
    m.threads.emplace_back([&m, c] { m.run_thread(*c); });
  }
  m.running = true;
  return Status::Ok();
}

// Lock-free so that handlers may call them even while stop() waits for the I/O threads.
uint16_t HttpServer::port() const {
  return impl_->running.load() ? impl_->port.load() : 0;
}

bool HttpServer::running() const {
  return impl_->running.load();
}

void HttpServer::stop() {
  std::lock_guard lock(impl_->mu);
  Impl& m = *impl_;
  if (!m.running) return;
  m.state->stopping.store(true);
  // Stop accepting: close the acceptor (and the backoff timer) on their thread.
  net::post(m.acceptor->get_executor(), [&m] {
    beast::error_code ec;
    m.acceptor->close(ec);
    m.accept_backoff->cancel();
  });
  {
    std::lock_guard conns_lock(m.state->conns_mu);
    for (auto& weak : m.state->conns) {
      if (auto conn = weak.lock()) conn->stop_async();
    }
    m.state->conns.clear();
  }
  m.work.clear();
  {
    std::unique_lock done_lock(m.done_mu);
    bool done = m.done_cv.wait_for(
        done_lock, std::chrono::milliseconds(std::max<int64_t>(m.cfg.shutdown_grace_ms, 0)),
        [&m] { return m.threads_running == 0; });
    if (!done) {  // in-flight writes took too long: abandon them
      for (auto& c : m.iocs) c->stop();
    }
  }
  for (auto& t : m.threads) t.join();
  m.threads.clear();
  // Threads are gone: close directly (in case the posted close never ran), then destroy the
  // io_context, which destroys any handler still pending and with it the last connections.
  beast::error_code ec;
  m.acceptor->close(ec);
  m.accept_backoff.reset();
  m.acceptor.reset();
  m.iocs.clear();
  m.state.reset();
  m.running = false;
  m.port = 0;
}

}  // namespace spate
