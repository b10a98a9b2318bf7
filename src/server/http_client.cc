// Blocking HTTP client: Beast async operations on a private io_context, run to completion
// under one deadline per request.
#include "server/http_client.h"

#include "server/openssl_error.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <optional>

#include "spate/version.h"

namespace spate {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
namespace ssl = boost::asio::ssl;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_closed_before_response(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::eof;
}

}  // namespace

std::string openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out = buf;
  }
  return out;
}

HttpClientTls client_tls_from_env(bool enabled) {
  HttpClientTls t;
  t.enabled = enabled;
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string() : std::string(v);
  };
  t.ca_file = env("SPATE_CA_FILE");
  t.cert_file = env("SPATE_CLIENT_CERT");
  t.key_file = env("SPATE_CLIENT_KEY");
  t.server_name = env("SPATE_TLS_SERVER_NAME");
  return t;
}

Result<HttpEndpoint> parse_endpoint_url(std::string_view url, std::string_view what) {
  HttpEndpoint e;
  std::string_view u = url;
  auto bad = [&](std::string_view why) {
    return ConfigError(std::string(what) + " must look like http://HOST:PORT or https://HOST:PORT" +
                       std::string(why) + ", got \"" + std::string(url) + "\"");
  };
  if (u.starts_with("https://")) {
    e.https = true;
    u.remove_prefix(8);
  } else if (u.starts_with("http://")) {
    u.remove_prefix(7);
  } else {
    return bad("");
  }
  while (u.ends_with('/')) u.remove_suffix(1);
  const size_t colon = u.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || u.find('/') != std::string_view::npos ||
      u.ends_with(']')) {
    return bad("");
  }
  std::string_view h = u.substr(0, colon);
  if (h.starts_with('[') && h.ends_with(']')) h = h.substr(1, h.size() - 2);
  unsigned p = 0;
  const std::string_view ps = u.substr(colon + 1);
  auto [end, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), p);
  if (ec != std::errc() || end != ps.data() + ps.size() || p == 0 || p > 65535) {
    return bad(" (bad port)");
  }
  e.host = std::string(h);
  e.port = static_cast<uint16_t>(p);
  return e;
}

struct HttpClient::Impl {
  std::string host;
  uint16_t port = 0;
  int64_t timeout_ms = 10000;
  HttpClientTls tls_cfg;
  net::io_context ioc{1};
  std::optional<beast::tcp_stream> stream;  // plain HTTP
  std::optional<TlsStream> tls;             // HTTPS
  std::optional<ssl::context> tls_ctx;      // made at the first HTTPS connection
  beast::flat_buffer buffer;
  int opened = 0;

  using Clock = std::chrono::steady_clock;

  std::string what(std::string_view method, std::string_view target) const {
    return std::string(method) + (tls_cfg.enabled ? " https://" : " http://") + host + ":" +
           std::to_string(port) + std::string(target);
  }

  bool is_open() const { return stream.has_value() || tls.has_value(); }
  beast::tcp_stream& tcp_stream() { return tls ? beast::get_lowest_layer(*tls) : *stream; }
  // Run f on whichever stream is open.
  template <class F>
  void with_stream(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(*stream);
    }
  }

  Status make_tls_context(const std::string& ctx) {
    if (tls_ctx) return Status::Ok();
    ERR_clear_error();
    ssl::context c(ssl::context::tls_client);
    SSL_CTX* h = c.native_handle();
    SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION);
    SSL_CTX_set_options(h, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    auto fail = [&](const std::string& what) {
      std::string e = openssl_error();
      return InvalidArgument(ctx + ": TLS: " + what + (e.empty() ? "" : ": " + e));
    };
    if (!tls_cfg.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(h, tls_cfg.ca_file.c_str(), nullptr) != 1) {
        return fail("cannot load the CA file " + tls_cfg.ca_file + " ($SPATE_CA_FILE)");
      }
    } else if (SSL_CTX_set_default_verify_paths(h) != 1) {
      return fail("cannot load the system's trusted CAs");
    }
    if (!tls_cfg.cert_file.empty() || !tls_cfg.key_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(h, tls_cfg.cert_file.c_str()) != 1) {
        return fail("cannot load the client certificate " + tls_cfg.cert_file +
                    " ($SPATE_CLIENT_CERT)");
      }
      if (SSL_CTX_use_PrivateKey_file(h, tls_cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(h) != 1) {
        return fail("cannot use the client key " + tls_cfg.key_file + " ($SPATE_CLIENT_KEY)");
      }
    }
    SSL_CTX_set_verify(h, SSL_VERIFY_PEER, nullptr);
    tls_ctx.emplace(std::move(c));
    return Status::Ok();
  }

  // TLS over the connected `stream`: SNI, certificate and name checks, handshake.
  Status handshake(const std::string& h, Clock::time_point deadline, const std::string& ctx) {
    SPATE_RETURN_IF_ERROR(make_tls_context(ctx));
    tls.emplace(std::move(*stream), *tls_ctx);
    stream.reset();
    SSL* s = tls->native_handle();
    const std::string& name = tls_cfg.server_name.empty() ? h : tls_cfg.server_name;
    beast::error_code ec;
    net::ip::make_address(name, ec);
    if (!ec) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name.c_str());
    } else {
      SSL_set_tlsext_host_name(s, name.c_str());
      SSL_set1_host(s, name.c_str());
    }
    beast::get_lowest_layer(*tls).expires_at(deadline);
    beast::error_code hec = net::error::would_block;
    tls->async_handshake(ssl::stream_base::client, [&](beast::error_code e) { hec = e; });
    run();
    if (!hec) return Status::Ok();
    std::string why = hec.message();
    long verify = SSL_get_verify_result(s);
    if (verify != X509_V_OK) {
      why = std::string("the server's certificate is not trusted: ") +
            X509_verify_cert_error_string(verify);
      if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        why += " (it is not for \"" + name + "\"; set $SPATE_TLS_SERVER_NAME to a name it carries)";
      } else if (tls_cfg.ca_file.empty()) {
        why += " (set $SPATE_CA_FILE to the CA certificate that signed it)";
      } else {
        why += " (checked against $SPATE_CA_FILE " + tls_cfg.ca_file + ")";
      }
    }
    close();
    if (hec == beast::error::timeout) return Timeout(ctx + ": timed out in the TLS handshake");
    return Unavailable(ctx + ": TLS handshake failed: " + why);
  }

  // Run the io_context until the started operation has completed.
  void run() {
    ioc.restart();
    ioc.run();
  }

  Status connect(Clock::time_point deadline, const std::string& ctx) {
    close();
    beast::error_code ec;
    std::string h = host;
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    std::vector<tcp::endpoint> endpoints;
    net::ip::address addr = net::ip::make_address(h, ec);
    if (!ec) {
      endpoints.emplace_back(addr, port);
    } else {
      tcp::resolver resolver(ioc);
      bool done = false;
      beast::error_code rec;
      resolver.async_resolve(h, std::to_string(port),
                             [&](beast::error_code e, const tcp::resolver::results_type& results) {
                               done = true;
                               rec = e;
                               for (const auto& r : results) endpoints.push_back(r.endpoint());
                             });
      ioc.restart();
      ioc.run_until(deadline);
      if (!done) {
        resolver.cancel();
        run();
        return Timeout(ctx + ": timed out resolving " + host);
      }
      if (rec || endpoints.empty()) {
        return Unavailable(ctx + ": cannot resolve " + host + ": " +
                           (rec ? rec.message() : "no addresses"));
      }
    }
    stream.emplace(ioc);
    stream->expires_at(deadline);
    beast::error_code cec = net::error::would_block;
    stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { cec = e; });
    run();
    if (cec) {
      stream.reset();
      if (cec == beast::error::timeout) return Timeout(ctx + ": timed out connecting");
      return Unavailable(ctx + ": connect failed: " + cec.message());
    }
    beast::error_code ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);
    if (tls_cfg.enabled) SPATE_RETURN_IF_ERROR(handshake(h, deadline, ctx));
    ++opened;
    return Status::Ok();
  }

  void close() {
    if (is_open()) {
      beast::error_code ec;
      tcp_stream().socket().shutdown(tcp::socket::shutdown_both, ec);
      tcp_stream().socket().close(ec);
      stream.reset();
      tls.reset();
    }
    buffer.consume(buffer.size());
  }

  Result<HttpResponse> request(std::string_view method, std::string_view target,
                               std::string_view body, const HttpHeaders& headers) {
    const std::string ctx = what(method, target);
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 1));

    http::request<http::string_body> req;
    http::verb verb = http::string_to_verb({method.data(), method.size()});
    if (verb == http::verb::unknown) {
      req.method_string({method.data(), method.size()});
    } else {
      req.method(verb);
    }
    req.target({target.data(), target.size()});
    req.version(11);
    bool has_host = false, has_agent = false, has_length = false;
    for (const auto& [name, value] : headers) {
      std::string n = lower(name);
      has_host |= n == "host";
      has_agent |= n == "user-agent";
      has_length |= n == "content-length" || n == "transfer-encoding";
      req.insert(name, value);
    }
    if (!has_host) req.set(http::field::host, host + ":" + std::to_string(port));
    if (!has_agent) req.set(http::field::user_agent, std::string("spate/") + SPATE_VERSION);
    req.body() = std::string(body);
    if (!has_length && (!body.empty() || verb == http::verb::post || verb == http::verb::put ||
                        verb == http::verb::patch)) {
      req.content_length(body.size());
    }
    const bool head = verb == http::verb::head;

    bool reused = is_open();
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!is_open()) {
        Status st = connect(deadline, ctx);
        if (!st.ok()) return st;
        reused = false;
      }
      tcp_stream().expires_at(deadline);
      beast::error_code wec = net::error::would_block;
      with_stream([&](auto& st) {
        http::async_write(st, req, [&](beast::error_code e, size_t) { wec = e; });
      });
      run();
      if (wec) {
        close();
        if (reused && is_closed_before_response(wec)) continue;  // stale keep-alive connection
        if (wec == beast::error::timeout) return Timeout(ctx + ": timed out writing the request");
        return IoError(ctx + ": writing the request: " + wec.message());
      }

      http::response_parser<http::string_body> parser;
      parser.body_limit(std::uint64_t{1} << 32);
      parser.header_limit(64 * 1024);
      if (head) parser.skip(true);
      tcp_stream().expires_at(deadline);
      beast::error_code rec = net::error::would_block;
      with_stream([&](auto& st) {
        http::async_read(st, buffer, parser, [&](beast::error_code e, size_t) { rec = e; });
      });
      run();
      if (rec) {
        close();
        if (reused && rec == http::error::end_of_stream) continue;  // closed while idle
        if (rec == beast::error::timeout) return Timeout(ctx + ": timed out reading the response");
        return IoError(ctx + ": reading the response: " + rec.message());
      }
      http::response<http::string_body> msg = parser.release();
      HttpResponse out;
      out.status = static_cast<int>(msg.result_int());
      out.content_type.clear();
      for (const auto& f : msg) {
        std::string name = lower(std::string_view(f.name_string().data(), f.name_string().size()));
        std::string value(f.value());
        if (name == "content-type") out.content_type = value;
        out.headers.emplace_back(std::move(name), std::move(value));
      }
      out.body = std::move(msg.body());
      if (!msg.keep_alive()) close();
      return out;
    }
    return IoError(ctx + ": connection closed by the server before a response");
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, int64_t timeout_ms, HttpClientTls tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout_ms = timeout_ms;
  impl_->tls_cfg = std::move(tls);
}

HttpClient::~HttpClient() {
  impl_->close();
}

Result<HttpResponse> HttpClient::request(std::string_view method, std::string_view target,
                                         std::string_view body, const HttpHeaders& headers) {
  return impl_->request(method, target, body, headers);
}

void HttpClient::close() {
  impl_->close();
}

bool HttpClient::connected() const {
  return impl_->is_open();
}

void HttpClient::set_timeout_ms(int64_t timeout_ms) {
  impl_->timeout_ms = timeout_ms;
}

int HttpClient::connections_opened() const {
  return impl_->opened;
}

Result<HttpResponse> http_request(const std::string& host, uint16_t port, std::string_view method,
                                  std::string_view target, std::string_view body,
                                  const HttpHeaders& headers, int64_t timeout_ms,
                                  const HttpClientTls& tls) {
  HttpClient client(host, port, timeout_ms, tls);
  return client.request(method, target, body, headers);
}

}  // namespace spate
