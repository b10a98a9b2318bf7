// Alerts raised by the analytics engine, and the configuration of the notifiers that deliver
// them (docs/alerts.md; pipeline key `notifiers:`, docs/configuration.md).
//
// What it is: an Alert is one notification-worthy change of an alert rule for one key of one
// analytics: the rule started firing (state "firing", possibly repeated while it keeps firing)
// or stopped (state "resolved"). The engine fills an Alert and offers it to an AlertManager
// (src/analytics/alerts.h), which decides whether it is sent at all (dedup, cooldown, rate
// limit) and sets Alert::id; alerts that pass go to a NotifierDispatcher
// (src/analytics/notify.h), which hands them to every notifier whose routing matches.
//
// Contract: plain values, no behaviour apart from Alert::to_json() (pure, thread-safe) and
// NotifierRoute::matches() (pure). The defaults below are the defaults of the YAML keys.
// Secrets (SMTP password, webhook URLs and headers, which often carry tokens) are never
// written to logs or error messages by the code that uses these structs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spate {

struct Alert {
  std::string id;         // stable: the firing and its resolution share it (set by AlertManager)
  std::string analytics;  // the analytics that raised it
  std::string rule;       // the rule's name within the analytics
  std::string kind;       // threshold | trend | correlation | sequence | anomaly
  std::string severity = "warning";  // info | warning | critical
  std::string state = "firing";      // firing | resolved
  std::string key_json;              // the group key as a JSON value ("" = no key, null)
  int64_t window_start = 0;          // the window the values come from (ms, [start, end))
  int64_t window_end = 0;
  int64_t at_ms = 0;          // event time that triggered it (the decision's time base)
  std::string message;        // one human-readable line
  std::string evidence_json;  // the values that triggered it, a JSON object ("" = {})

  /// One JSON object: {"id","analytics","rule","kind","severity","state","key","window_start",
  /// "window_end","at_ms","at" (ISO 8601 UTC),"message","evidence"}. key_json and evidence_json
  /// are embedded as they are (the engine produces valid JSON); empty ones become null and {}.
  std::string to_json() const;
};

/// Severity rank: info 0, warning 1, critical 2; -1 for anything else.
int severity_rank(std::string_view severity);

/// Which alerts a notifier receives. An empty list means "all".
struct NotifierRoute {
  std::string min_severity = "info";   // alerts below it are not sent
  std::vector<std::string> analytics;  // only alerts of these analytics
  std::vector<std::string> rules;      // only these rule names
  bool send_resolved = true;           // also send resolutions

  bool matches(const Alert& a) const;
};

/// Retries of one notification: attempts = 1 + retries; waits grow exponentially with jitter
/// (process::RetryPolicy). A permanent failure (e.g. HTTP 4xx other than 408/429, an SMTP 5xx
/// reply) is not retried.
struct NotifierRetryConfig {
  int max_attempts = 5;              // >= 1
  int64_t initial_backoff_ms = 500;  // before the second attempt
  int64_t max_backoff_ms = 30'000;   // cap of one wait
  double multiplier = 2.0;
  double jitter = 0.5;  // a wait is drawn from [(1-jitter)*b, b]
};

/// SMTP settings of an email notifier.
struct SmtpConfig {
  std::string host = "localhost";
  uint16_t port = 25;
  std::string from;             // envelope sender and From: header (required)
  std::vector<std::string> to;  // recipients (at least one)
  std::string username;         // "" = no AUTH; else AUTH PLAIN (or LOGIN if that is all offered)
  std::string password;         // secret: never logged
  // Subject template; {severity} {state} {analytics} {rule} {kind} {key} {message} {id} are
  // replaced. Header-unsafe characters (CR, LF) are replaced by spaces.
  std::string subject = "[{severity}] {analytics}/{rule} {state}: {message}";
  bool starttls = false;                // require STARTTLS before AUTH/MAIL (fails if not offered)
  bool tls_verify = true;               // verify the server certificate (system CAs, or ca_file)
  std::string ca_file;                  // extra CA bundle (PEM) for verification ("" = system CAs)
  std::string helo_name = "localhost";  // the name given in EHLO
};

/// One notifier (pipeline key `notifiers[i]`).
struct NotifierConfig {
  std::string name;  // unique; used in metrics and logs
  std::string kind;  // webhook | slack | email | topic | stdout (YAML key `type`)
  // webhook, slack: http:// or https:// URL (https: TLS with certificate verification).
  std::string url;  // secret (often carries a token): never logged
  std::vector<std::pair<std::string, std::string>> headers;  // extra HTTP headers
  std::string ca_file;           // https: extra CA bundle (PEM); "" = system CAs
  int64_t timeout_ms = 10'000;   // bound of one attempt (connect + send + reply)
  SmtpConfig smtp;               // email
  std::string topic;             // topic: the log topic to append to
  NotifierRoute route;           // which alerts it receives
  size_t queue_capacity = 1000;  // pending alerts; when full the oldest is dropped (counted)
  NotifierRetryConfig retry;
};

}  // namespace spate
