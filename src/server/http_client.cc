// Blocking HTTP client: Beast async operations on a private io_context, run to completion
// under one deadline per request.
#include "server/http_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>

#include "spate/version.h"

namespace spate {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

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

struct HttpClient::Impl {
  std::string host;
  uint16_t port = 0;
  int64_t timeout_ms = 10000;
  net::io_context ioc{1};
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  int opened = 0;

  using Clock = std::chrono::steady_clock;

  std::string what(std::string_view method, std::string_view target) const {
    return std::string(method) + " http://" + host + ":" + std::to_string(port) +
           std::string(target);
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
    ++opened;
    return Status::Ok();
  }

  void close() {
    if (stream) {
      beast::error_code ec;
      stream->socket().shutdown(tcp::socket::shutdown_both, ec);
      stream->socket().close(ec);
      stream.reset();
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

    bool reused = stream.has_value();
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!stream) {
        Status st = connect(deadline, ctx);
        if (!st.ok()) return st;
        reused = false;
      }
      stream->expires_at(deadline);
      beast::error_code wec = net::error::would_block;
      http::async_write(*stream, req, [&](beast::error_code e, size_t) { wec = e; });
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
      stream->expires_at(deadline);
      beast::error_code rec = net::error::would_block;
      http::async_read(*stream, buffer, parser, [&](beast::error_code e, size_t) { rec = e; });
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

HttpClient::HttpClient(std::string host, uint16_t port, int64_t timeout_ms)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout_ms = timeout_ms;
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
  return impl_->stream.has_value();
}

void HttpClient::set_timeout_ms(int64_t timeout_ms) { impl_->timeout_ms = timeout_ms; }

int HttpClient::connections_opened() const {
  return impl_->opened;
}

Result<HttpResponse> http_request(const std::string& host, uint16_t port, std::string_view method,
                                  std::string_view target, std::string_view body,
                                  const HttpHeaders& headers, int64_t timeout_ms) {
  HttpClient client(host, port, timeout_ms);
  return client.request(method, target, body, headers);
}

}  // namespace spate
