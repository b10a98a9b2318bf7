// Notifiers: deliver alerts (include/spate/alerts.h) to webhooks, Slack, email (SMTP), a log
// topic or stdout, and the NotifierDispatcher that fans alerts out to them in the background.
//
// Notifier::send(alert) makes ONE delivery attempt and blocks for at most the notifier's
// timeout_ms (per connection step for SMTP). It returns OK on delivery, an error otherwise:
// kInvalidArgument for a permanent failure (HTTP 4xx other than 408/429, an SMTP 5xx reply:
// retrying will not help), kUnavailable/kTimeout/kIo for transient ones. Messages never contain
// secrets (URLs, header values, passwords). Notifiers are not thread-safe (the dispatcher uses
// each one from its own thread only).
//
//   webhook  POST url, body Alert::to_json(), Content-Type application/json, extra headers.
//            Success: any 2xx.
//   slack    POST url, body {"text": "...", "attachments": [{"color": <severity colour>,
//            "title", "text", "fields": [...], "ts"}]} (Slack incoming-webhook format).
//   email    SMTP: EHLO (HELO fallback), STARTTLS if smtp.starttls (certificate verified),
//            AUTH PLAIN or LOGIN if smtp.username is set, MAIL FROM, RCPT TO per recipient
//            (fails if none is accepted), DATA with a text/plain UTF-8 message (dot-stuffed,
//            CRLF line ends), QUIT. Multi-line replies are read whole.
//   topic    append the alert JSON to `topic` (created if missing), key
//            "<analytics>/<rule>/<key_json>", partition by that key, timestamp at_ms.
//   stdout   one JSON line (Alert::to_json()) on the process's stdout (or the injected sink).
// webhook/slack URLs may be http:// (HttpClient) or https:// (OpenSSL: TLS 1.2+, SNI, the
// certificate verified against the system CAs or ca_file, host name checked).
//
// NotifierDispatcher: owns the notifiers; publish(alert) never blocks on I/O: for each notifier
// whose route matches it copies the alert into that notifier's bounded queue (capacity
// queue_capacity; when full the OLDEST queued alert is dropped and counted) and returns. One
// thread per notifier sends in order, retrying transient failures up to retry.max_attempts
// with exponential backoff and jitter (process::RetryPolicy). shutdown() (also run by the
// destructor) stops accepting, lets each thread deliver what is queued until drain_timeout_ms
// has passed (retry waits are cut short at that deadline), counts the rest as dropped and
// joins; a send in progress at the deadline finishes first (bounded by its timeout).
// Metrics: analytics_notifications_total{notifier,status=sent|failed|dropped}.
// Thread safety: publish(), stats() and shutdown() may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spate/alerts.h"
#include "spate/config.h"
#include "spate/log.h"
#include "spate/metrics.h"
#include "spate/status.h"

namespace spate::analytics {

class Notifier {
 public:
  virtual ~Notifier() = default;
  /// One delivery attempt (see the header comment).
  virtual Status send(const Alert& alert) = 0;
  virtual const NotifierConfig& config() const = 0;
};

/// What notifiers need from their surroundings.
struct NotifierContext {
  Log* log = nullptr;                                 // topic notifiers (required for them)
  std::function<void(std::string_view)> stdout_sink;  // stdout notifiers; empty = fwrite(stdout)
};

/// Build a notifier. kConfig if the config is unusable (unknown kind, missing url/host/from/to/
/// topic, a bad URL, a topic notifier without a log).
Result<std::unique_ptr<Notifier>> make_notifier(const NotifierConfig& cfg,
                                                const NotifierContext& ctx);

/// The Slack webhook body for an alert (exposed for tests).
std::string slack_payload(const Alert& alert);
/// The email message (headers, blank line, body; CRLF line ends, not dot-stuffed) for an alert.
std::string email_message(const SmtpConfig& smtp, const Alert& alert, int64_t now_ms);

/// The notifiers configured by the environment, as the reference design has them, appended to
/// `configured` unless a notifier of the same name is already there:
///   SLACK_WEBHOOK_URL=<url>                       -> {name: slack, type: slack, url}
///   EMAIL_NOTIFICATIONS=true|1|yes|<a@x,b@y>      -> {name: email, type: email, smtp from
///   SMTP_HOST (localhost), SMTP_PORT (25), SMTP_FROM (spate@<host>), SMTP_TO (comma list; or the
///   addresses in EMAIL_NOTIFICATIONS), SMTP_USERNAME, SMTP_PASSWORD, SMTP_STARTTLS (true|false,
///   default true on port 587)}. Email without any recipient, or an invalid SMTP_PORT, is skipped
///   and described in *warnings (if given); secrets never appear there.
std::vector<NotifierConfig> notifiers_from_env(const EnvLookup& env,
                                               std::vector<NotifierConfig> configured = {},
                                               std::vector<std::string>* warnings = nullptr);

struct NotifierDispatcherConfig {
  int64_t drain_timeout_ms = 5'000;    // shutdown(): how long queued alerts may still be sent
  MetricsRegistry* metrics = nullptr;  // nullptr = global_metrics()
  uint64_t seed = 0;                   // jitter; 0 = random
};

struct NotifierStats {
  std::string name;
  uint64_t sent = 0;
  uint64_t failed = 0;   // gave up after the retries (or a permanent error)
  uint64_t dropped = 0;  // queue full (oldest dropped) or left at shutdown
  uint64_t retries = 0;
  size_t queued = 0;
};

class NotifierDispatcher {
 public:
  NotifierDispatcher(std::vector<std::unique_ptr<Notifier>> notifiers,
                     NotifierDispatcherConfig cfg = {});
  ~NotifierDispatcher();
  NotifierDispatcher(const NotifierDispatcher&) = delete;
  NotifierDispatcher& operator=(const NotifierDispatcher&) = delete;

  /// make_notifier() for each config, then the dispatcher; the first config error is returned.
  static Result<std::unique_ptr<NotifierDispatcher>> create(
      const std::vector<NotifierConfig>& configs, const NotifierContext& ctx,
      NotifierDispatcherConfig cfg = {});

  /// Queue `alert` for every notifier whose route matches; never waits for I/O. Ignored after
  /// shutdown().
  void publish(const Alert& alert);
  /// Drain (bounded by drain_timeout_ms), stop and join. Idempotent.
  void shutdown();
  std::vector<NotifierStats> stats() const;
  size_t size() const;

 private:
  struct Worker;
  NotifierDispatcherConfig cfg_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace spate::analytics
