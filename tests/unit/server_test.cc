#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "server/admin.h"
#include "server/http_client.h"
#include "server/http_server.h"
#include "spate/metrics.h"
#include "spate/version.h"

namespace spate {
namespace {

// --- a raw TCP connection, to send exactly the bytes we want ---------------------------------

class RawConn {
 public:
  explicit RawConn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Read until the peer closes (returns true) or `timeout_ms` passes (returns false).
  bool read_until_close(std::string* out, int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) return false;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;  // EOF or reset: closed
      out->append(buf, static_cast<size_t>(n));
    }
  }

  // Read until `needle` appears in what was read (returns true) or timeout/close.
  bool read_until(std::string* out, std::string_view needle, int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out->find(needle) == std::string::npos) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) return false;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      out->append(buf, static_cast<size_t>(n));
    }
    return true;
  }

 private:
  int fd_ = -1;
};

size_t count_of(const std::string& hay, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

HttpServerConfig test_config() {
  HttpServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.io_threads = 2;
  return cfg;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpServer>(cfg_);
    server_->route("GET", "/hello",
                   [](const HttpRequest&) { return HttpResponse::text(200, "hello world"); });
    server_->route("POST", "/echo", [](const HttpRequest& r) {
      HttpResponse res = HttpResponse::text(
          200, r.method + " " + r.path + " " + r.query + " " + r.header("X-Test") + " " + r.body);
      res.headers.emplace_back("X-Echo", "yes");
      res.headers.emplace_back("Content-Length", "99999");  // ignored: the server sets it
      return res;
    });
    server_->route("GET", "/param", [](const HttpRequest& r) {
      return HttpResponse::text(200, r.query_param("name").value_or("<none>") + "|" +
                                         (r.query_param("flag") ? "flag" : "noflag"));
    });
    server_->route("GET", "/throw",
                   [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
    server_->route("GET", "/nocontent",
                   [](const HttpRequest&) { return HttpResponse::text(204, "dropped"); });
    server_->route_prefix("POST", "/ingest/", [](const HttpRequest& r) {
      return HttpResponse::json(202, "{\"topic\":\"" + r.path.substr(8) + "\"}");
    });
    server_->route_prefix("POST", "/ingest/special/",
                          [](const HttpRequest&) { return HttpResponse::text(200, "special"); });
    server_->route("POST", "/ingest/exact",
                   [](const HttpRequest&) { return HttpResponse::text(200, "exact"); });
    ASSERT_TRUE(server_->start().ok());
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }

  Result<HttpResponse> get(std::string_view target) {
    return http_request("127.0.0.1", port_, "GET", target);
  }

  HttpServerConfig cfg_ = test_config();
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(ServerTest, SimpleGetHasServerHeaderAndContentLength) {
  auto r = get("/hello");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello world");
  EXPECT_EQ(r->content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(r->header("server"), std::string("spate/") + SPATE_VERSION);
  EXPECT_EQ(r->header("Content-Length"), "11");
}

TEST_F(ServerTest, RequestFieldsReachTheHandler) {
  auto r =
      http_request("127.0.0.1", port_, "POST", "/echo?a=1&b=2", "payload", {{"X-Test", "hdr"}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /echo a=1&b=2 hdr payload");
  EXPECT_EQ(r->header("x-echo"), "yes");
  EXPECT_EQ(r->header("content-length"), std::to_string(r->body.size()));

  auto p = get("/param?flag&name=a%20b+c%2Fd");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->body, "a b c/d|flag");
  auto q = get("/param");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->body, "<none>|noflag");
}

TEST_F(ServerTest, PrefixRoutes) {
  auto a = http_request("127.0.0.1", port_, "POST", "/ingest/orders", "{}");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->status, 202);
  EXPECT_EQ(a->body, "{\"topic\":\"orders\"}");
  EXPECT_EQ(a->content_type, "application/json");
  auto b = http_request("127.0.0.1", port_, "POST", "/ingest/special/x", "{}");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->body, "special");  // longest prefix wins
  auto c = http_request("127.0.0.1", port_, "POST", "/ingest/exact", "{}");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->body, "exact");  // exact wins over prefix
  auto d = http_request("127.0.0.1", port_, "POST", "/ingest", "{}");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, 404);  // "/ingest/" does not match "/ingest"
}

TEST_F(ServerTest, NotFoundAndMethodNotAllowed) {
  auto r = get("/nope");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "{\"error\":\"not found\"}");
  EXPECT_EQ(r->content_type, "application/json");

  auto m = http_request("127.0.0.1", port_, "DELETE", "/hello");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->status, 405);
  EXPECT_EQ(m->header("allow"), "GET, HEAD");
  EXPECT_EQ(m->body, "{\"error\":\"method not allowed\"}");

  auto p = http_request("127.0.0.1", port_, "GET", "/ingest/orders");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->status, 405);
  EXPECT_EQ(p->header("allow"), "POST");

  auto odd = http_request("127.0.0.1", port_, "FROBNICATE", "/hello");
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->status, 405);
}

TEST_F(ServerTest, HeadUsesGetHandlerWithoutBody) {
  HttpClient client("127.0.0.1", port_);
  auto r = client.request("HEAD", "/hello");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "11");
  EXPECT_EQ(r->body, "");
  auto after = client.request("GET", "/hello");  // connection still in sync
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->body, "hello world");
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST_F(ServerTest, HandlerExceptionIs500AndNoContentHasNoBody) {
  auto r = get("/throw");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("boom"), std::string::npos);
  RawConn c(port_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.send_all("GET /nocontent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string out;
  ASSERT_TRUE(c.read_until_close(&out));
  EXPECT_TRUE(out.starts_with("HTTP/1.1 204")) << out;
  EXPECT_EQ(out.find("dropped"), std::string::npos);
  EXPECT_EQ(out.find("Content-Length"), std::string::npos) << out;
}

TEST_F(ServerTest, KeepAliveReusesOneConnection) {
  HttpClient client("127.0.0.1", port_);
  for (int i = 0; i < 10; ++i) {
    auto r = client.request(i % 2 == 0 ? "GET" : "POST", i % 2 == 0 ? "/hello" : "/echo",
                            i % 2 == 0 ? "" : "b" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->status, 200);
    if (i % 2 == 1) {
      EXPECT_EQ(r->body, "POST /echo   b" + std::to_string(i));
    }
  }
  auto nf = client.request("GET", "/missing");  // an error status keeps the connection too
  ASSERT_TRUE(nf.ok());
  EXPECT_EQ(nf->status, 404);
  ASSERT_TRUE(client.request("GET", "/hello").ok());
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST_F(ServerTest, PipelinedRequestsAnsweredInOrder) {
  RawConn c(port_);
  ASSERT_TRUE(c.ok());
  std::string reqs;
  for (int i = 0; i < 5; ++i) {
    std::string body = "req" + std::to_string(i);
    reqs += "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body;
  }
  reqs += "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
  reqs += "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_TRUE(c.send_all(reqs));  // one write
  std::string out;
  ASSERT_TRUE(c.read_until_close(&out));
  EXPECT_EQ(count_of(out, "HTTP/1.1 200 OK\r\n"), 6u) << out;
  EXPECT_EQ(count_of(out, "HTTP/1.1 404 Not Found\r\n"), 1u) << out;
  size_t last = 0;
  for (int i = 0; i < 5; ++i) {
    size_t pos = out.find("POST /echo   req" + std::to_string(i));
    ASSERT_NE(pos, std::string::npos) << out;
    EXPECT_GT(pos, last);
    last = pos;
  }
  size_t nf = out.find("{\"error\":\"not found\"}");
  size_t hello = out.find("hello world");
  EXPECT_GT(nf, last);
  EXPECT_GT(hello, nf);
  EXPECT_TRUE(out.ends_with("hello world")) << out;
}

TEST_F(ServerTest, ExpectContinue) {
  RawConn c(port_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.send_all(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  std::string out;
  ASSERT_TRUE(c.read_until(&out, "\r\n\r\n"));
  EXPECT_EQ(out, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.send_all("body"));
  out.clear();
  ASSERT_TRUE(c.read_until(&out, "POST /echo   body")) << out;
  EXPECT_TRUE(out.starts_with("HTTP/1.1 200 OK")) << out;
}

TEST_F(ServerTest, Http10ClosesAfterResponse) {
  RawConn c(port_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.send_all("GET /hello HTTP/1.0\r\n\r\n"));
  std::string out;
  ASSERT_TRUE(c.read_until_close(&out));
  EXPECT_TRUE(out.starts_with("HTTP/1.0 200 OK")) << out;
  EXPECT_TRUE(out.ends_with("hello world")) << out;
}

TEST_F(ServerTest, GarbageDoesNotCrashAndServerKeepsServing) {
  std::vector<std::string> garbage = {
      std::string("\x00\x01\x02\x03\xff\xfe garbage \r\n\r\n", 18),
      "GET / HTTP/9.9\r\n\r\n",
      "GET\r\n\r\n",
      "GET /hello HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
      "GET /hello HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "GET /hello HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n",
      "GET hello HTTP/1.1\r\nHost: x\r\n\r\n",  // target not starting with '/'
      "\r\n\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: x\r\n",  // incomplete, then close
      std::string(100000, 'A'),              // no line end, over the header limit
      "GET /" + std::string(70000, 'x') + " HTTP/1.1\r\n\r\n",
  };
  std::mt19937 rng(42);
  for (int i = 0; i < 20; ++i) {
    std::string g(1 + rng() % 2000, '\0');
    for (char& ch : g) ch = static_cast<char>(rng());
    garbage.push_back(g);
  }
  for (size_t i = 0; i < garbage.size(); ++i) {
    {
      RawConn c(port_);
      ASSERT_TRUE(c.ok());
      c.send_all(garbage[i]);
      if (i != 9) {  // 9 is an incomplete request: the server waits for the rest; just close
        std::string out;
        c.read_until_close(&out, 3000);
        if (!out.empty()) {
          EXPECT_TRUE(out.starts_with("HTTP/1.1 4")) << i << ": " << out.substr(0, 200);
        }
      }
    }
    auto r = get("/hello");
    ASSERT_TRUE(r.ok()) << "after garbage " << i << ": " << r.status().to_string();
    EXPECT_EQ(r->status, 200);
  }
  // Specific answers for the recognisable cases.
  {
    RawConn c(port_);
    c.send_all("GET hello HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string out;
    c.read_until_close(&out);
    EXPECT_TRUE(out.starts_with("HTTP/1.1 400 Bad Request")) << out;
    EXPECT_NE(out.find("Content-Length: "), std::string::npos) << out;
  }
  {
    RawConn c(port_);
    c.send_all(std::string(100000, 'A'));
    std::string out;
    c.read_until_close(&out);
    EXPECT_TRUE(out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 431")) << out;
  }
}

TEST(ServerLimitsTest, BodyOverLimitIs413) {
  HttpServerConfig cfg = test_config();
  cfg.max_body_bytes = 1024;
  HttpServer server(cfg);
  server.route("POST", "/echo", [](const HttpRequest& r) {
    return HttpResponse::text(200, std::to_string(r.body.size()));
  });
  ASSERT_TRUE(server.start().ok());
  auto ok = http_request("127.0.0.1", server.port(), "POST", "/echo", std::string(1024, 'x'));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "1024");
  auto big = http_request("127.0.0.1", server.port(), "POST", "/echo", std::string(4096, 'x'));
  ASSERT_TRUE(big.ok()) << big.status().to_string();
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("\"error\""), std::string::npos);
  EXPECT_EQ(big->header("connection"), "close");
  // Chunked bodies are limited too.
  RawConn c(server.port());
  ASSERT_TRUE(c.ok());
  std::string chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) chunked += "200\r\n" + std::string(512, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  c.send_all(chunked);
  std::string out;
  c.read_until_close(&out);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 413")) << out;
  // Still serving.
  auto again = http_request("127.0.0.1", server.port(), "POST", "/echo", "abc");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->body, "3");
}

TEST(ServerLimitsTest, IdleConnectionsAreClosed) {
  HttpServerConfig cfg = test_config();
  cfg.idle_timeout_ms = 200;
  HttpServer server(cfg);
  server.route("GET", "/x", [](const HttpRequest&) { return HttpResponse::text(200, "x"); });
  ASSERT_TRUE(server.start().ok());
  RawConn c(server.port());
  ASSERT_TRUE(c.ok());
  auto t0 = std::chrono::steady_clock::now();
  std::string out;
  EXPECT_TRUE(c.read_until_close(&out, 5000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(out, "");
}

TEST(ServerLifecycleTest, StopIsIdempotentAndFreesThePort) {
  HttpServer server(test_config());
  server.route("GET", "/x", [](const HttpRequest&) { return HttpResponse::text(200, "x"); });
  ASSERT_TRUE(server.start().ok());
  EXPECT_TRUE(server.running());
  uint16_t port = server.port();
  // An idle keep-alive connection and a raw one must not hold stop() up.
  HttpClient client("127.0.0.1", port);
  ASSERT_TRUE(client.request("GET", "/x").ok());
  RawConn idle(port);
  ASSERT_TRUE(idle.ok());
  auto t0 = std::chrono::steady_clock::now();
  server.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  server.stop();
  EXPECT_FALSE(server.running());
  EXPECT_EQ(server.port(), 0);
  std::string out;
  EXPECT_TRUE(idle.read_until_close(&out, 2000));  // the server closed it
  EXPECT_FALSE(http_request("127.0.0.1", port, "GET", "/x", {}, {}, 2000).ok());

  // The port is free: another server can bind it.
  HttpServerConfig cfg = test_config();
  cfg.port = port;
  HttpServer other(cfg);
  other.route("GET", "/y", [](const HttpRequest&) { return HttpResponse::text(200, "y"); });
  Status st = other.start();
  ASSERT_TRUE(st.ok()) << st.to_string();
  auto y = http_request("127.0.0.1", port, "GET", "/y");
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->body, "y");
  other.stop();

  // And the first server can be started again.
  ASSERT_TRUE(server.start().ok());
  auto x = http_request("127.0.0.1", server.port(), "GET", "/x");
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->body, "x");
  EXPECT_FALSE(server.start().ok());  // already running
}

TEST(ServerLifecycleTest, StartOnTakenPortFails) {
  HttpServer first(test_config());
  ASSERT_TRUE(first.start().ok());
  HttpServerConfig cfg = test_config();
  cfg.port = first.port();
  HttpServer second(cfg);
  Status st = second.start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("binding 127.0.0.1:" + std::to_string(cfg.port)), std::string::npos)
      << st.to_string();
  EXPECT_NE(st.message().find("in use"), std::string::npos) << st.to_string();
  EXPECT_FALSE(second.running());
  second.stop();  // harmless
  HttpServerConfig bad = test_config();
  bad.host = "no-such-host.invalid";
  HttpServer third(bad);
  EXPECT_FALSE(third.start().ok());
}

TEST(ServerLifecycleTest, StopWaitsForInFlightResponse) {
  HttpServer server(test_config());
  std::atomic<bool> entered{false};
  server.route("GET", "/slow", [&](const HttpRequest&) {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return HttpResponse::text(200, "done");
  });
  ASSERT_TRUE(server.start().ok());
  Result<HttpResponse> r = Status(Errc::kInternal, "not run");
  std::thread t([&] { r = http_request("127.0.0.1", server.port(), "GET", "/slow"); });
  while (!entered) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  server.stop();
  t.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(r->header("connection"), "close");
}

TEST(ServerConcurrencyTest, ManyClientsInParallel) {
  HttpServer server(test_config());
  std::atomic<int> handled{0};
  server.route("POST", "/count", [&](const HttpRequest& r) {
    handled++;
    return HttpResponse::text(200, r.body);
  });
  ASSERT_TRUE(server.start().ok());
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client("127.0.0.1", server.port());
      for (int i = 0; i < 50; ++i) {
        std::string body = std::to_string(t) + ":" + std::to_string(i);
        auto r = client.request("POST", "/count", body);
        if (r.ok() && r->status == 200 && r->body == body) good++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 300);
  EXPECT_EQ(handled.load(), 300);
}

TEST(HttpClientTest, ErrorsAreStatuses) {
  // Nothing listens on the port of a stopped server.
  HttpServer s(test_config());
  ASSERT_TRUE(s.start().ok());
  uint16_t port = s.port();
  s.stop();
  auto refused = http_request("127.0.0.1", port, "GET", "/", {}, {}, 2000);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Errc::kUnavailable) << refused.status().to_string();

  // A server that never answers: timeout.
  HttpServer slow(test_config());
  slow.route("GET", "/slow", [](const HttpRequest&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return HttpResponse::text(200, "late");
  });
  ASSERT_TRUE(slow.start().ok());
  auto t0 = std::chrono::steady_clock::now();
  auto late = http_request("127.0.0.1", slow.port(), "GET", "/slow", {}, {}, 100);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), Errc::kTimeout) << late.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(450));
}

TEST(HttpClientTest, ReconnectsAfterServerClosedIdleConnection) {
  HttpServerConfig cfg = test_config();
  cfg.idle_timeout_ms = 100;
  HttpServer server(cfg);
  server.route("GET", "/x", [](const HttpRequest&) { return HttpResponse::text(200, "x"); });
  ASSERT_TRUE(server.start().ok());
  HttpClient client("127.0.0.1", server.port());
  ASSERT_TRUE(client.request("GET", "/x").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // server closes it meanwhile
  auto r = client.request("GET", "/x");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->body, "x");
  EXPECT_EQ(client.connections_opened(), 2);
}

TEST(HttpHelpersTest, DecodeAndEscape) {
  EXPECT_EQ(url_decode("a%20b+c%2f%zz%", false), "a b+c/%zz%");
  EXPECT_EQ(url_decode("a+b", true), "a b");
  EXPECT_EQ(json_escape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
  EXPECT_EQ(HttpResponse::error(400, "bad \"x\"").body, "{\"error\":\"bad \\\"x\\\"\"}");
}

// --- admin routes -----------------------------------------------------------------------------

TEST(AdminRoutesTest, HealthReadyMetricsStatus) {
  MetricsRegistry registry;
  registry.counter("ingestion_messages_total", "Messages ingested.", {{"topic", "t"}}).inc(5);
  std::atomic<bool> ready{false};
  HttpServer server(test_config());
  AdminHooks hooks;
  hooks.ready = [&] { return ready.load(); };
  hooks.status_json = [] { return std::string("{\"components\":[]}"); };
  hooks.metrics = &registry;
  install_admin_routes(server, hooks);
  ASSERT_TRUE(server.start().ok());
  uint16_t port = server.port();

  auto health = http_request("127.0.0.1", port, "GET", "/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "{\"status\":\"ok\"}");
  EXPECT_EQ(health->content_type, "application/json");

  auto not_ready = http_request("127.0.0.1", port, "GET", "/ready");
  ASSERT_TRUE(not_ready.ok());
  EXPECT_EQ(not_ready->status, 503);
  EXPECT_EQ(not_ready->body, "{\"status\":\"starting\"}");
  ready = true;
  auto is_ready = http_request("127.0.0.1", port, "GET", "/ready");
  ASSERT_TRUE(is_ready.ok());
  EXPECT_EQ(is_ready->status, 200);
  EXPECT_EQ(is_ready->body, "{\"status\":\"ready\"}");

  auto metrics = http_request("127.0.0.1", port, "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics->body, registry.render_prometheus());
  EXPECT_NE(metrics->body.find("ingestion_messages_total{topic=\"t\"} 5\n"), std::string::npos);

  auto status = http_request("127.0.0.1", port, "GET", "/status");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->status, 200);
  EXPECT_EQ(status->body, "{\"components\":[]}");
  EXPECT_EQ(status->content_type, "application/json");

  auto post = http_request("127.0.0.1", port, "POST", "/health", "x");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
}

TEST(AdminRoutesTest, DefaultsWithoutHooks) {
  HttpServer server(test_config());
  install_admin_routes(server, AdminHooks{});
  global_metrics().gauge("admin_default_test_value", "t.").set(3);
  ASSERT_TRUE(server.start().ok());
  auto ready = http_request("127.0.0.1", server.port(), "GET", "/ready");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200);
  auto status = http_request("127.0.0.1", server.port(), "GET", "/status");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->body, "{\"status\":\"ok\"}");
  auto metrics = http_request("127.0.0.1", server.port(), "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("admin_default_test_value 3\n"), std::string::npos);
}

}  // namespace
}  // namespace spate

namespace spate {
namespace {

// Async handlers: many requests can be in flight on one I/O thread at once, each answered later
// from another thread, and pipelined requests on one connection are still answered in order.
TEST(ServerAsyncTest, ManyRequestsInFlightOnOneIoThreadAnsweredFromAnotherThread) {
  HttpServerConfig cfg = test_config();
  cfg.io_threads = 1;
  HttpServer server(cfg);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, HttpResponder>> pending;
  server.route_async("POST", "/later", [&](HttpRequest req, HttpResponder respond) {
    std::lock_guard lk(mu);
    pending.emplace_back(std::move(req.body), std::move(respond));
    cv.notify_all();
  });
  ASSERT_TRUE(server.start().ok());
  constexpr int kClients = 20;
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto r = http_request("127.0.0.1", server.port(), "POST", "/later", "b" + std::to_string(i),
                            {}, 10000);
      if (r.ok() && r->status == 202 && r->body == "done:b" + std::to_string(i)) good++;
    });
  }
  {
    // All requests reach the handler before any is answered: they are in flight together.
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return pending.size() == kClients; }));
  }
  std::thread responder([&] {
    std::lock_guard lk(mu);
    for (auto& [body, respond] : pending) respond(HttpResponse::text(202, "done:" + body));
  });
  responder.join();
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), kClients);
}

TEST(ServerAsyncTest, PipelinedAsyncRequestsKeepTheirOrder) {
  HttpServer server(test_config());
  std::atomic<int> n{0};
  server.route_async("POST", "/slow", [&](HttpRequest req, HttpResponder respond) {
    // Answer the first request last-ish from a detached thread; order must still hold.
    int k = n++;
    std::thread([k, body = std::move(req.body), respond = std::move(respond)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(k == 0 ? 50 : 1));
      respond(HttpResponse::text(200, "r:" + body));
    }).detach();
  });
  ASSERT_TRUE(server.start().ok());
  RawConn c(server.port());
  ASSERT_TRUE(c.ok());
  std::string reqs;
  for (int i = 0; i < 3; ++i) {
    reqs += "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n" + std::to_string(i);
  }
  reqs += "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_TRUE(c.send_all(reqs));
  std::string out;
  ASSERT_TRUE(c.read_until_close(&out));
  size_t p0 = out.find("r:0"), p1 = out.find("r:1"), p2 = out.find("r:2"), nf = out.find("not found");
  ASSERT_NE(p0, std::string::npos) << out;
  EXPECT_LT(p0, p1);
  EXPECT_LT(p1, p2);
  EXPECT_LT(p2, nf);
}

}  // namespace
}  // namespace spate
