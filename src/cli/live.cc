// Live views from two metric scrapes (live.h).
#include "cli/live.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "server/auth.h"
#include "server/http_client.h"

namespace spate::cli {

using orchestrate::PromSample;
using orchestrate::PromText;

namespace {

// Sum of `name` over the samples whose label `key` is `value` (every sample when key is empty).
double sum_where(const PromText& t, std::string_view name, std::string_view key = {},
                 std::string_view value = {}) {
  double s = 0;
  for (const PromSample& x : t.samples) {
    if (x.name == name && (key.empty() || x.label(key) == value)) s += x.value;
  }
  return s;
}

double rate(double before, double after, double seconds) {
  return seconds > 0 ? std::max(0.0, after - before) / seconds : 0;
}

// The values of label `key` on samples named `name`, sorted.
std::vector<std::string> label_values(const PromText& t, std::string_view name,
                                      std::string_view key) {
  std::vector<std::string> out;
  for (const PromSample& x : t.samples) {
    if (x.name != name) continue;
    std::string v(x.label(key));
    if (!v.empty() && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string human_number(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:.1f}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.0f}k", v / 1e3);
  if (a >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  if (a > 0 && a < 10 && std::fabs(v - std::round(v)) > 1e-9) return fmt::format("{:.1f}", v);
  return fmt::format("{:.0f}", v);
}

std::string live_status_line(const PromText& prev, const PromText& cur, double seconds) {
  const double in = rate(sum_where(prev, "ingestion_messages_total", "status", "accepted"),
                         sum_where(cur, "ingestion_messages_total", "status", "accepted"), seconds);
  const double out =
      rate(sum_where(prev, "stream_messages_processed_total", "status", "processed"),
           sum_where(cur, "stream_messages_processed_total", "status", "processed"), seconds) +
      rate(sum_where(prev, "analytics_events_processed_total"),
           sum_where(cur, "analytics_events_processed_total"), seconds);
  const double errors =
      rate(sum_where(prev, "stream_processing_errors_total"),
           sum_where(cur, "stream_processing_errors_total"), seconds) +
      rate(sum_where(prev, "ingestion_messages_total", "status", "rejected"),
           sum_where(cur, "ingestion_messages_total", "status", "rejected"), seconds);
  const double lag = sum_where(cur, "stream_consumer_lag");
  const double alerts = sum_where(cur, "analytics_alerts_total", "state", "firing");
  return fmt::format("in {}/s  out {}/s  lag {}  errors {}/s  alerts {}", human_number(in),
                     human_number(out), human_number(lag), human_number(errors),
                     human_number(alerts));
}

std::string live_top_table(const PromText& prev, const PromText& cur, double seconds) {
  std::string out = fmt::format("{:<28} {:>10} {:>10} {:>10} {:>10}  {}\n", "COMPONENT", "IN/s",
                                "OUT/s", "ERRORS/s", "LAG", "DETAIL");
  auto row = [&](const std::string& name, double in, double outr, double err,
                 const std::string& lag, const std::string& detail) {
    out += fmt::format("{:<28} {:>10} {:>10} {:>10} {:>10}  {}\n", name, human_number(in),
                       human_number(outr), human_number(err), lag, detail);
  };
  bool found = false;
  (void)cur.sum("ingestion_messages_total", &found);
  if (found) {
    auto r = [&](std::string_view status) {
      return rate(sum_where(prev, "ingestion_messages_total", "status", status),
                  sum_where(cur, "ingestion_messages_total", "status", status), seconds);
    };
    row("ingestion", r("accepted") + r("rejected") + r("dropped") + r("dead_lettered"),
        r("accepted"), r("rejected"), "-",
        fmt::format("queue {}  duplicates {}", human_number(sum_where(cur, "ingestion_queue_size")),
                    human_number(sum_where(cur, "ingestion_duplicates_total"))));
  }
  for (const std::string& p : label_values(cur, "stream_messages_processed_total", "processor")) {
    auto c = [&](const PromText& t, std::string_view status) {
      double s = 0;
      for (const PromSample& x : t.samples) {
        if (x.name == "stream_messages_processed_total" && x.label("processor") == p &&
            (status.empty() || x.label("status") == status)) {
          s += x.value;
        }
      }
      return s;
    };
    double lag = 0, err_prev = 0, err_cur = 0;
    for (const PromSample& x : cur.samples) {
      if (x.name == "stream_consumer_lag" && x.label("processor") == p) lag += x.value;
      if (x.name == "stream_processing_errors_total" && x.label("processor") == p)
        err_cur += x.value;
    }
    for (const PromSample& x : prev.samples) {
      if (x.name == "stream_processing_errors_total" && x.label("processor") == p)
        err_prev += x.value;
    }
    row("processor " + p, rate(c(prev, ""), c(cur, ""), seconds),
        rate(c(prev, "processed"), c(cur, "processed"), seconds), rate(err_prev, err_cur, seconds),
        human_number(lag),
        fmt::format("dead-lettered {}  filtered {}", human_number(c(cur, "dead_lettered")),
                    human_number(c(cur, "filtered"))));
  }
  for (const std::string& a : label_values(cur, "analytics_events_processed_total", "analytics")) {
    auto v = [&](const PromText& t, std::string_view name) {
      return sum_where(t, name, "analytics", a);
    };
    row("analytics " + a,
        rate(v(prev, "analytics_events_processed_total"),
             v(cur, "analytics_events_processed_total"), seconds),
        rate(v(prev, "analytics_window_results_total"), v(cur, "analytics_window_results_total"),
             seconds),
        rate(v(prev, "analytics_late_events_total"), v(cur, "analytics_late_events_total"),
             seconds),
        "-",
        fmt::format("windows {}  patterns {}  anomalies {}  watermark lag {}s",
                    human_number(v(cur, "analytics_active_windows")),
                    human_number(v(cur, "analytics_patterns_detected_total")),
                    human_number(v(cur, "analytics_anomalies_detected_total")),
                    human_number(v(cur, "analytics_watermark_lag_seconds"))));
  }
  return out;
}

}  // namespace spate::cli

// ---------------------------------------------------------------- spate top

namespace spate::cli {
namespace {

std::atomic<bool> g_top_stop{false};
void on_top_signal(int) {
  g_top_stop = true;
}

std::string orchestrator_table(std::string_view status_json) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  if (p.parse(simdjson::padded_string(status_json)).get(e)) return "(unreadable /status)\n";
  std::string_view dep;
  if (e["deployment"].get(dep)) dep = "?";
  double thr = 0;
  if (e["total_throughput"].get(thr)) thr = 0;
  std::string out = fmt::format(
      "deployment {}  ingest {}/s\n{:<16} {:<10} {:>8} {:>7} {:>10} {:>10} {:>10}  {}\n", dep,
      human_number(thr), "COMPONENT", "TYPE", "READY", "HEALTH", "IN/s", "OUT/s", "LAG", "SCALING");
  simdjson::dom::array comps;
  if (e["components"].get(comps)) return out;
  for (simdjson::dom::element c : comps) {
    std::string_view name, type, reason;
    int64_t replicas = 0, ready = 0;
    double health = 0;
    if (c["name"].get(name)) continue;
    if (c["type"].get(type)) type = "?";
    if (c["replicas"].get(replicas)) replicas = 0;
    if (c["ready_replicas"].get(ready)) ready = 0;
    if (c["health"].get(health)) health = 0;
    if (c["scaling"]["reason"].get(reason)) reason = "";
    double lag = 0, in = 0, outr = 0;
    bool any_lag = false;
    simdjson::dom::array inst;
    if (!c["instances"].get(inst)) {
      for (simdjson::dom::element i : inst) {
        double v = 0;
        if (!i["lag"].get(v)) lag += v, any_lag = true;
        if (!i["accepted_per_second"].get(v)) in += v;
        if (!i["processed_per_second"].get(v)) outr += v;
      }
    }
    out += fmt::format("{:<16} {:<10} {:>8} {:>7.2f} {:>10} {:>10} {:>10}  {}\n", name, type,
                       fmt::format("{}/{}", ready, replicas), health, human_number(in),
                       human_number(outr), any_lag ? human_number(lag) : std::string("-"), reason);
  }
  return out;
}

}  // namespace

int cmd_top(const TopOptions& opts) {
  const std::string url =
      opts.url.find("://") == std::string::npos ? "http://" + opts.url : opts.url;
  auto endpoint = parse_endpoint_url(url, "--url");
  if (!endpoint.ok() || opts.interval_s <= 0) {
    std::fprintf(stderr, "spate top: %s\n",
                 endpoint.ok() ? "--interval must be > 0" : endpoint.status().message().c_str());
    return 2;
  }
  const HttpClientTls tls = endpoint->tls();
  std::signal(SIGINT, on_top_signal);
  std::signal(SIGTERM, on_top_signal);
  const bool tty = isatty(STDOUT_FILENO) != 0;
  auto fetch = [&](const char* path) -> Result<std::string> {
    auto r = http_request(endpoint->host, endpoint->port, "GET", path, {}, client_auth_headers(),
                          5000, tls);
    if (!r.ok()) return r.status();
    if (r->status == 401 || r->status == 403) {
      return Unavailable(
          fmt::format("GET {}{}: HTTP {} ({}): set SPATE_TOKEN to a token with the read scope",
                      opts.url, path, r->status, r->body));
    }
    if (r->status != 200)
      return Unavailable(fmt::format("GET {}{}: HTTP {}", opts.url, path, r->status));
    return r->body;
  };
  orchestrate::PromText prev;
  auto prev_t = std::chrono::steady_clock::now();
  bool have_prev = false;
  while (!g_top_stop.load()) {
    auto st = fetch("/status");
    if (!st.ok()) {
      std::fprintf(stderr, "spate top: %s (is a pipeline or orchestrator running there? --url)\n",
                   st.status().message().c_str());
      return 1;
    }
    std::string table;
    const bool orchestrator = st->find("\"deployment\":") != std::string::npos;
    if (orchestrator) {
      table = orchestrator_table(*st);
    } else {
      auto m = fetch("/metrics");
      if (!m.ok()) {
        std::fprintf(stderr, "spate top: %s\n", m.status().message().c_str());
        return 1;
      }
      orchestrate::PromText cur = orchestrate::parse_prometheus_text(*m);
      const auto now = std::chrono::steady_clock::now();
      const double dt = std::chrono::duration<double>(now - prev_t).count();
      if (have_prev) {
        table = live_status_line(prev, cur, dt) + "\n\n" + live_top_table(prev, cur, dt);
      }
      prev = std::move(cur);
      prev_t = now;
      if (!have_prev) {
        have_prev = true;
        std::this_thread::sleep_for(std::chrono::duration<double>(opts.interval_s));
        continue;  // rates need two scrapes
      }
    }
    if (tty && !opts.once) std::fputs("\x1b[H\x1b[2J", stdout);
    std::fputs(table.c_str(), stdout);
    if (!tty || opts.once) std::fputs("\n", stdout);
    std::fflush(stdout);
    if (opts.once) return 0;
    for (double waited = 0; waited < opts.interval_s && !g_top_stop.load(); waited += 0.1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return 0;
}

}  // namespace spate::cli
