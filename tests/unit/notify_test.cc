// Notifiers and the dispatcher (src/analytics/notify.h) against real servers: webhook and Slack
// against spate's own HttpServer on loopback, email against a real SMTP server (aiosmtpd, Debian
// package python3-aiosmtpd, run as a child process: plain, STARTTLS with a certificate made for
// the test, and AUTH via tests/integration/smtp_auth_server.py), a topic in an embedded log, and
// dead or hanging endpoints.
#include "analytics/notify.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/child_process.h"
#include "server/http_server.h"
#include "spate/metrics.h"
#include "test_util.h"

namespace spate::analytics {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

Alert sample_alert(std::string state = "firing") {
  Alert a;
  a.id = "0123456789abcdef";
  a.analytics = "latency";
  a.rule = "high_p99";
  a.kind = "threshold";
  a.severity = "critical";
  a.state = std::move(state);
  a.key_json = R"({"route":"/checkout"})";
  a.window_start = 1'700'000'000'000;
  a.window_end = 1'700'000'060'000;
  a.at_ms = 1'700'000'060'000;
  a.message = "p99 730 ms > 500 ms";
  a.evidence_json = R"({"p99":730,"threshold":500})";
  return a;
}

// One delivery attempt through a fresh notifier built from `c`.
Status send_once(const NotifierConfig& c, const Alert& a = sample_alert()) {
  auto n = make_notifier(c, {});
  if (!n.ok()) return n.status();
  return (*n)->send(a);
}

template <typename F>
bool eventually(F f, std::chrono::milliseconds limit = 10s) {
  const auto end = SteadyClock::now() + limit;
  while (SteadyClock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

// An HTTP endpoint recording requests; answers with the statuses in `script` in turn (then 200).
struct Endpoint {
  HttpServer server{HttpServerConfig{"127.0.0.1", 0, 1}};
  std::mutex mu;
  std::vector<HttpRequest> requests;
  std::vector<SteadyClock::time_point> times;
  std::vector<int> script;

  Endpoint() {
    server.route("POST", "/hook", [this](const HttpRequest& r) {
      std::lock_guard lock(mu);
      requests.push_back(r);
      times.push_back(SteadyClock::now());
      const size_t i = requests.size() - 1;
      const int status = i < script.size() ? script[i] : 200;
      return HttpResponse::json(status, status == 200 ? "{\"ok\":true}" : "{\"error\":\"boom\"}");
    });
    EXPECT_TRUE(server.start().ok());
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server.port()) + "/hook?x=1";
  }
  size_t count() {
    std::lock_guard lock(mu);
    return requests.size();
  }
};

NotifierConfig http_config(std::string kind, std::string url) {
  NotifierConfig c;
  c.name = kind + "-test";
  c.kind = std::move(kind);
  c.url = std::move(url);
  c.timeout_ms = 2000;
  c.retry.initial_backoff_ms = 50;
  c.retry.max_attempts = 3;
  return c;
}

std::unique_ptr<NotifierDispatcher> dispatcher(const std::vector<NotifierConfig>& cfgs,
                                               MetricsRegistry* reg, NotifierContext ctx = {}) {
  NotifierDispatcherConfig dc;
  dc.metrics = reg;
  dc.seed = 42;
  dc.drain_timeout_ms = 3000;
  auto d = NotifierDispatcher::create(cfgs, ctx, dc);
  EXPECT_TRUE(d.ok()) << d.status().to_string();
  return std::move(d).value();
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(NotifyTest, WebhookPostsTheAlertJson) {
  Endpoint ep;
  MetricsRegistry reg;
  NotifierConfig c = http_config("webhook", ep.url());
  c.headers = {{"X-Token", "secret-token"}};
  auto d = dispatcher({c}, &reg);
  const Alert a = sample_alert();
  d->publish(a);
  ASSERT_TRUE(eventually([&] { return ep.count() == 1; }));
  d->shutdown();
  std::lock_guard lock(ep.mu);
  const HttpRequest& r = ep.requests[0];
  EXPECT_EQ(r.target, "/hook?x=1");
  EXPECT_EQ(r.body, a.to_json());
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.header("x-token"), "secret-token");
  EXPECT_TRUE(
      has_line(reg.render_prometheus(),
               R"(analytics_notifications_total{notifier="webhook-test",status="sent"} 1)"));
}

TEST(NotifyTest, SlackGetsTextAndAColouredAttachment) {
  Endpoint ep;
  MetricsRegistry reg;
  auto d = dispatcher({http_config("slack", ep.url())}, &reg);
  Alert a = sample_alert();
  a.message = "p99 <730> & rising";
  d->publish(a);
  Alert r = sample_alert("resolved");
  d->publish(r);
  ASSERT_TRUE(eventually([&] { return ep.count() == 2; }));
  d->shutdown();
  std::lock_guard lock(ep.mu);
  const std::string& body = ep.requests[0].body;
  EXPECT_EQ(body.rfind(
                R"({"text":"[CRITICAL] latency/high_p99 firing: p99 &lt;730&gt; &amp; rising")", 0),
            0u)
      << body;
  EXPECT_TRUE(has_line(body, R"("attachments":[{"color":"#d00000")")) << body;
  EXPECT_TRUE(has_line(body, R"({"title":"Key","value":"{\"route\":\"/checkout\"}","short":true})"))
      << body;
  EXPECT_TRUE(has_line(body, R"("footer":"spate alert 0123456789abcdef","ts":1700000060})"))
      << body;
  EXPECT_EQ(body, slack_payload(a));
  EXPECT_TRUE(has_line(ep.requests[1].body, R"({"text":"[RESOLVED] latency/high_p99 resolved)"));
  EXPECT_TRUE(has_line(ep.requests[1].body, R"("color":"#2eb886")"));
}

TEST(NotifyTest, FailingWebhookIsRetriedWithBackoffAndDelivered) {
  Endpoint ep;
  ep.script = {500, 503};
  MetricsRegistry reg;
  auto d = dispatcher({http_config("webhook", ep.url())}, &reg);
  d->publish(sample_alert());
  ASSERT_TRUE(eventually([&] { return ep.count() == 3; }));
  ASSERT_TRUE(eventually([&] { return d->stats()[0].sent == 1; }));
  d->shutdown();
  const NotifierStats s = d->stats()[0];
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.failed, 0u);
  std::lock_guard lock(ep.mu);
  // Waits: [25, 50] ms, then [50, 100] ms (initial 50 ms, x2, jitter 0.5).
  EXPECT_GE(ep.times[1] - ep.times[0], 24ms);
  EXPECT_GE(ep.times[2] - ep.times[1], 49ms);
  EXPECT_EQ(ep.requests[2].body, ep.requests[0].body);
  EXPECT_TRUE(
      has_line(reg.render_prometheus(),
               R"(analytics_notifications_total{notifier="webhook-test",status="sent"} 1)"));
}

TEST(NotifyTest, PermanentHttpErrorIsNotRetried) {
  Endpoint ep;
  ep.script = {404, 404, 404};
  MetricsRegistry reg;
  auto d = dispatcher({http_config("webhook", ep.url())}, &reg);
  d->publish(sample_alert());
  ASSERT_TRUE(eventually([&] { return d->stats()[0].failed == 1; }));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(ep.count(), 1u);
  d->shutdown();
  EXPECT_TRUE(
      has_line(reg.render_prometheus(),
               R"(analytics_notifications_total{notifier="webhook-test",status="failed"} 1)"));
}

// A TCP port that accepts connections (kernel backlog) and never answers.
struct BlackHole {
  int fd = -1;
  uint16_t port = 0;
  BlackHole() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd, 64), 0);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~BlackHole() { ::close(fd); }
};

TEST(NotifyTest, HangingEndpointNeverBlocksPublishAndDropsAreCounted) {
  BlackHole hole;
  MetricsRegistry reg;
  NotifierConfig c = http_config("webhook", "http://127.0.0.1:" + std::to_string(hole.port) + "/");
  c.timeout_ms = 300;
  c.queue_capacity = 5;
  c.retry.max_attempts = 2;
  NotifierDispatcherConfig dc;
  dc.metrics = &reg;
  dc.drain_timeout_ms = 200;
  auto made = NotifierDispatcher::create({c}, {}, dc);
  ASSERT_TRUE(made.ok());
  auto& d = *made;
  const auto start = SteadyClock::now();
  for (int i = 0; i < 1000; ++i) {
    Alert a = sample_alert();
    a.id = std::to_string(i);
    d->publish(a);
  }
  const auto took = SteadyClock::now() - start;
  EXPECT_LT(took, 200ms);  // 1000 publishes while every send hangs for 300 ms
  const NotifierStats mid = d->stats()[0];
  EXPECT_LE(mid.queued, 5u);
  EXPECT_GE(mid.dropped, 994u);
  const auto stop_start = SteadyClock::now();
  d->shutdown();
  // Drain bound 200 ms, plus at most one send in flight (300 ms timeout) and its retry wait.
  EXPECT_LT(SteadyClock::now() - stop_start, 2s);
  const NotifierStats s = d->stats()[0];
  EXPECT_EQ(s.sent, 0u);
  EXPECT_EQ(s.sent + s.failed + s.dropped, 1000u);
  EXPECT_TRUE(
      has_line(reg.render_prometheus(),
               "analytics_notifications_total{notifier=\"webhook-test\",status=\"dropped\"} " +
                   std::to_string(s.dropped)));
}

TEST(NotifyTest, RoutingFiltersBySeverityAndResolved) {
  Endpoint ep;
  MetricsRegistry reg;
  NotifierConfig c = http_config("webhook", ep.url());
  c.route.min_severity = "critical";
  c.route.send_resolved = false;
  auto d = dispatcher({c}, &reg);
  Alert warn = sample_alert();
  warn.severity = "warning";
  d->publish(warn);
  d->publish(sample_alert("resolved"));
  d->publish(sample_alert());
  ASSERT_TRUE(eventually([&] { return ep.count() == 1; }));
  d->shutdown();
  EXPECT_EQ(ep.count(), 1u);
}

TEST(NotifyTest, TopicNotifierAppendsKeyedJson) {
  testing::TempDir dir;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  auto log = std::move(open_embedded_log(lc)).value();
  MetricsRegistry reg;
  NotifierConfig c;
  c.name = "to-topic";
  c.kind = "topic";
  c.topic = "alerts";
  NotifierContext ctx;
  ctx.log = log.get();
  auto d = dispatcher({c}, &reg, ctx);
  const Alert a = sample_alert();
  d->publish(a);
  d->shutdown();
  ASSERT_EQ(d->stats()[0].sent, 1u);
  auto f = log->fetch("alerts", 0, 0, {});
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  ASSERT_EQ(f->records().size(), 1u);
  EXPECT_EQ(f->records()[0].key, R"(latency/high_p99/{"route":"/checkout"})");
  EXPECT_EQ(f->records()[0].value, a.to_json());
  EXPECT_EQ(f->records()[0].timestamp_ms, a.at_ms);
}

TEST(NotifyTest, StdoutNotifierWritesOneJsonLine) {
  std::string out;
  NotifierConfig c;
  c.name = "console";
  c.kind = "stdout";
  NotifierContext ctx;
  ctx.stdout_sink = [&](std::string_view s) { out += s; };
  auto n = make_notifier(c, ctx);
  ASSERT_TRUE(n.ok());
  ASSERT_TRUE((*n)->send(sample_alert()).ok());
  EXPECT_EQ(out, sample_alert().to_json() + "\n");
}

TEST(NotifyTest, MakeNotifierRejectsBadConfigsWithoutSecrets) {
  NotifierConfig c = http_config("webhook", "ftp://hooks.example.com/T000/secret");
  auto r = make_notifier(c, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Errc::kConfig);
  EXPECT_EQ(r.status().message().find("secret"), std::string::npos);
  c.kind = "pager";
  EXPECT_FALSE(make_notifier(c, {}).ok());
  // Failures do not repeat the URL's path (Slack puts the token there).
  BlackHole hole;
  c = http_config("slack", "http://127.0.0.1:" + std::to_string(hole.port) + "/services/T/secret");
  c.timeout_ms = 100;
  Status st = send_once(c);
  EXPECT_EQ(st.code(), Errc::kTimeout) << st.to_string();
  EXPECT_EQ(st.message().find("secret"), std::string::npos) << st.to_string();
  NotifierConfig e;
  e.name = "mail";
  e.kind = "email";
  e.smtp.from = "a@b";
  EXPECT_FALSE(make_notifier(e, {}).ok());  // no recipients
  NotifierConfig t;
  t.name = "t";
  t.kind = "topic";
  t.topic = "alerts";
  EXPECT_FALSE(make_notifier(t, {}).ok());  // no log
}

TEST(NotifyTest, NotifiersFromEnvironment) {
  std::map<std::string, std::string> vars = {
      {"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/secret"},
      {"EMAIL_NOTIFICATIONS", "ops@example.com, dev@example.com"},
      {"SMTP_HOST", "mail.example.com"},
      {"SMTP_PORT", "587"},
      {"SMTP_FROM", "spate@example.com"},
      {"SMTP_USERNAME", "bot"},
      {"SMTP_PASSWORD", "hunter2"}};
  EnvLookup env = [&](std::string_view k) -> std::optional<std::string> {
    auto it = vars.find(std::string(k));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  std::vector<NotifierConfig> got = notifiers_from_env(env);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, "slack");
  EXPECT_EQ(got[0].url, vars["SLACK_WEBHOOK_URL"]);
  EXPECT_EQ(got[1].kind, "email");
  EXPECT_EQ(got[1].smtp.host, "mail.example.com");
  EXPECT_EQ(got[1].smtp.port, 587);
  EXPECT_TRUE(got[1].smtp.starttls);  // 587 defaults to STARTTLS
  EXPECT_EQ(got[1].smtp.to, (std::vector<std::string>{"ops@example.com", "dev@example.com"}));
  EXPECT_EQ(got[1].smtp.password, "hunter2");

  // "true" takes the recipients from SMTP_TO; a configured notifier named like one wins.
  vars["EMAIL_NOTIFICATIONS"] = "true";
  vars["SMTP_TO"] = "a@example.com";
  NotifierConfig mine;
  mine.name = "slack";
  mine.kind = "webhook";
  got = notifiers_from_env(env, {mine});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, "webhook");
  EXPECT_EQ(got[1].smtp.to, std::vector<std::string>{"a@example.com"});

  // No recipients: skipped with a warning that carries no secret.
  vars.erase("SMTP_TO");
  vars.erase("SLACK_WEBHOOK_URL");
  std::vector<std::string> warnings;
  got = notifiers_from_env(env, {}, &warnings);
  EXPECT_TRUE(got.empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].find("hunter2"), std::string::npos);
  vars["EMAIL_NOTIFICATIONS"] = "false";
  EXPECT_TRUE(notifiers_from_env(env).empty());
}

// A self-signed certificate for 127.0.0.1 (openssl CLI); "" on success.
std::string make_cert(const std::string& cert, const std::string& key) {
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0 ? "" : "openssl req failed";
}

bool port_open(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(NotifyTest, HttpsWebhookVerifiesTheCertificate) {
  testing::TempDir dir;
  const std::string cert = dir.sub("cert.pem"), key = dir.sub("key.pem");
  ASSERT_EQ(make_cert(cert, key), "");
  const uint16_t port = static_cast<uint16_t>(testing::free_loopback_port());
  testing::SpawnOptions o;
  o.cwd = dir.path();
  o.log = dir.sub("https.log");
  o.death_signal = SIGKILL;
  const pid_t pid = testing::spawn_child(
      {"/usr/bin/python3", "-u",
       std::string(SPATE_SOURCE_DIR) + "/tests/integration/https_echo_server.py",
       std::to_string(port), cert, key},
      o);
  ASSERT_GT(pid, 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGTERM);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  } reap{pid};
  ASSERT_TRUE(eventually([&] { return port_open(port); })) << read_file(o.log);
  NotifierConfig c =
      http_config("webhook", "https://127.0.0.1:" + std::to_string(port) + "/in?t=1");
  {
    Status st = send_once(c);  // self-signed: not trusted by the system CAs
    EXPECT_EQ(st.code(), Errc::kInvalidArgument) << st.to_string();
    EXPECT_TRUE(has_line(st.message(), "certificate verification failed")) << st.to_string();
  }
  c.ca_file = cert;
  Status st = send_once(c);
  ASSERT_TRUE(st.ok()) << st.to_string() << read_file(o.log);
  ASSERT_TRUE(eventually([&] { return has_line(read_file(o.log), "POST /in?t=1"); }));
  EXPECT_TRUE(has_line(read_file(o.log),
                       "POST /in?t=1 application/json " + sample_alert().to_json() + "\n"))
      << read_file(o.log);
}

// ---- SMTP against a real server ----------------------------------------------------------------

constexpr const char* kPython = "/usr/bin/python3";

bool have_aiosmtpd() {
  return std::system("/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1") == 0;
}

// aiosmtpd as a child process; its stdout (the received messages) goes to a log file.
class SmtpServer {
 public:
  explicit SmtpServer(const testing::TempDir& dir) : log_(dir.sub("smtp.log")), dir_(dir.path()) {}
  ~SmtpServer() { stop(); }

  std::string start(std::vector<std::string> extra_args = {}, bool auth_script = false) {
    port_ = testing::free_loopback_port();
    std::vector<std::string> argv;
    if (auth_script) {
      argv = {kPython,
              "-u",
              std::string(SPATE_SOURCE_DIR) + "/tests/integration/smtp_auth_server.py",
              std::to_string(port_),
              "bot",
              "s3cret pass"};
    } else {
      argv = {kPython, "-u", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port_)};
    }
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    testing::SpawnOptions o;
    o.cwd = dir_;
    o.log = log_;
    o.death_signal = SIGKILL;
    pid_ = testing::spawn_child(argv, o);
    if (pid_ <= 0) return "cannot start aiosmtpd";
    const bool up = eventually([&] { return port_open(port_); });
    return up ? "" : "aiosmtpd did not listen: " + log();
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st = 0;
    if (!eventually([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, 5s)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
    }
    pid_ = -1;
  }
  std::string log() const { return read_file(log_); }
  // The n-th (0-based) received message as printed by the Debugging handler.
  std::string message(size_t n = 0, std::chrono::milliseconds limit = 10s) const {
    std::string text;
    eventually(
        [&] {
          text = log();
          size_t pos = 0;
          for (size_t i = 0; i <= n; ++i) {
            pos = text.find("------------ END MESSAGE", pos);
            if (pos == std::string::npos) return false;
            ++pos;
          }
          return true;
        },
        limit);
    size_t begin = 0;
    for (size_t i = 0; i <= n; ++i) {
      begin = text.find("---------- MESSAGE FOLLOWS ----------", begin);
      if (begin == std::string::npos) return "";
      begin += 1;
    }
    const size_t end = text.find("------------ END MESSAGE", begin);
    return end == std::string::npos ? "" : text.substr(begin - 1, end - begin + 1);
  }
  uint16_t port() const { return port_; }

 private:
  std::string log_;
  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

NotifierConfig email_config(uint16_t port) {
  NotifierConfig c;
  c.name = "mail";
  c.kind = "email";
  c.timeout_ms = 5000;
  c.smtp.host = "127.0.0.1";
  c.smtp.port = port;
  c.smtp.from = "spate@example.com";
  c.smtp.to = {"ops@example.com", "dev@example.com"};
  return c;
}

class SmtpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_aiosmtpd()) {
      GTEST_SKIP() << "aiosmtpd not installed (python3-aiosmtpd: scripts/install-deps.sh)";
    }
  }
  testing::TempDir dir;
};

TEST_F(SmtpTest, EmailIsDeliveredWithHeadersAndDotStuffedBody) {
  SmtpServer smtp(dir);
  ASSERT_EQ(smtp.start(), "");
  Alert a = sample_alert();
  a.message = "p99 730 ms\n.a line starting with a dot\n..and two";
  Status st = send_once(email_config(smtp.port()), a);
  ASSERT_TRUE(st.ok()) << st.to_string() << "\n" << smtp.log();
  const std::string m = smtp.message();
  ASSERT_FALSE(m.empty()) << smtp.log();
  EXPECT_TRUE(has_line(m, "\nFrom: spate@example.com\n")) << m;
  EXPECT_TRUE(has_line(m, "\nTo: ops@example.com, dev@example.com\n")) << m;
  EXPECT_TRUE(has_line(m,
                       "\nSubject: [critical] latency/high_p99 firing: p99 730 ms .a line "
                       "starting with a dot ..and two\n"))
      << m;
  EXPECT_TRUE(has_line(m, "\nX-Spate-Alert-Id: 0123456789abcdef\n")) << m;
  EXPECT_TRUE(has_line(m, "\nContent-Type: text/plain; charset=utf-8\n")) << m;
  // The server removed the dot-stuffing: the lines arrive as written.
  EXPECT_TRUE(has_line(m, "\np99 730 ms\n.a line starting with a dot\n..and two\n")) << m;
  EXPECT_TRUE(has_line(m, "\nKey:       {\"route\":\"/checkout\"}\n")) << m;
  EXPECT_TRUE(has_line(m, "\nEvidence:\n{\"p99\":730,\"threshold\":500}\n")) << m;
  EXPECT_TRUE(has_line(m, "\nWindow:    2023-11-14T22:13:20Z - 2023-11-14T22:14:20Z\n")) << m;
}

TEST_F(SmtpTest, NonAsciiSubjectAndBodyAreEncoded) {
  SmtpServer smtp(dir);
  ASSERT_EQ(smtp.start(), "");
  Alert a = sample_alert();
  a.message = "Latenz über 500 ms";
  ASSERT_TRUE(send_once(email_config(smtp.port()), a).ok());
  const std::string m = smtp.message();
  EXPECT_TRUE(has_line(m, "\nSubject: =?UTF-8?B?")) << m;
  EXPECT_TRUE(has_line(m, "\nContent-Transfer-Encoding: base64\n")) << m;
}

TEST_F(SmtpTest, StartTlsWithAVerifiedCertificate) {
  const std::string cert = dir.sub("cert.pem"), key = dir.sub("key.pem");
  ASSERT_EQ(make_cert(cert, key), "");
  SmtpServer smtp(dir);
  // The server refuses MAIL before STARTTLS (aiosmtpd's require_starttls default).
  ASSERT_EQ(smtp.start({"--tlscert", cert, "--tlskey", key}), "");
  NotifierConfig c = email_config(smtp.port());
  {
    Status st = send_once(c);
    EXPECT_FALSE(st.ok());  // proves the server insists on TLS
  }
  c.smtp.starttls = true;
  {
    Status st = send_once(c);  // self-signed, not in the system CAs
    EXPECT_EQ(st.code(), Errc::kInvalidArgument) << st.to_string();
    EXPECT_TRUE(has_line(st.message(), "certificate verification failed")) << st.to_string();
  }
  c.smtp.ca_file = cert;
  Status st = send_once(c);
  ASSERT_TRUE(st.ok()) << st.to_string() << "\n" << smtp.log();
  EXPECT_TRUE(has_line(smtp.message(), "\nX-Spate-Alert-Id: 0123456789abcdef\n"));
}

TEST_F(SmtpTest, AuthPlainWithTheRightPasswordOnly) {
  SmtpServer smtp(dir);
  ASSERT_EQ(smtp.start({}, /*auth_script=*/true), "");
  NotifierConfig c = email_config(smtp.port());
  c.smtp.username = "bot";
  c.smtp.password = "wrong";
  {
    Status st = send_once(c);
    EXPECT_EQ(st.code(), Errc::kInvalidArgument) << st.to_string();  // 535: permanent
    EXPECT_EQ(st.message().find("wrong"), std::string::npos) << st.to_string();
  }
  c.smtp.password = "s3cret pass";
  Status st = send_once(c);
  ASSERT_TRUE(st.ok()) << st.to_string() << "\n" << smtp.log();
  EXPECT_TRUE(has_line(smtp.message(), "\nX-Spate-Alert-Id: 0123456789abcdef\n"));
  EXPECT_TRUE(has_line(smtp.log(), "AUTH OK PLAIN bot")) << smtp.log();
}

TEST_F(SmtpTest, ServerDownIsRetriedThenCountedAsFailed) {
  const uint16_t port = static_cast<uint16_t>(testing::free_loopback_port());
  MetricsRegistry reg;
  NotifierConfig c = email_config(port);
  c.retry.max_attempts = 3;
  c.retry.initial_backoff_ms = 20;
  auto d = dispatcher({c}, &reg);
  d->publish(sample_alert());
  ASSERT_TRUE(eventually([&] { return d->stats()[0].failed == 1; }));
  d->shutdown();
  const NotifierStats s = d->stats()[0];
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.sent, 0u);
  EXPECT_TRUE(has_line(reg.render_prometheus(),
                       R"(analytics_notifications_total{notifier="mail",status="failed"} 1)"));
}

TEST_F(SmtpTest, DispatcherDeliversEmailOnceTheServerComesUp) {
  const uint16_t port = static_cast<uint16_t>(testing::free_loopback_port());
  MetricsRegistry reg;
  NotifierConfig c = email_config(port);
  c.retry.max_attempts = 50;
  c.retry.initial_backoff_ms = 100;
  c.retry.max_backoff_ms = 200;
  auto d = dispatcher({c}, &reg);
  d->publish(sample_alert());
  ASSERT_TRUE(eventually([&] { return d->stats()[0].retries >= 1; }));
  // Bring up a server on the notifier's port.
  testing::SpawnOptions o;
  o.cwd = dir.path();
  o.log = dir.sub("late.log");
  o.death_signal = SIGKILL;
  pid_t pid = testing::spawn_child(
      {kPython, "-u", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + std::to_string(port)}, o);
  ASSERT_GT(pid, 0);
  const bool sent = eventually([&] { return d->stats()[0].sent == 1; }, 20s);
  d->shutdown();
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(sent);
  const std::string log = read_file(dir.sub("late.log"));
  EXPECT_TRUE(has_line(log, "X-Spate-Alert-Id: 0123456789abcdef")) << log;
}

}  // namespace
}  // namespace spate::analytics
