#include "analytics/alerts.h"

#include <algorithm>
#include <ctime>
#include <limits>
#include <vector>

#include "analytics/codec_internal.h"
#include "base/hash.h"
#include "base/hex.h"
#include "base/json_escape.h"

namespace spate {

namespace {

std::string iso_utc(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int64_t frac = ms - static_cast<int64_t>(secs) * 1000;
  tm t{};
  gmtime_r(&secs, &t);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(frac));
  return buf;
}

void field(std::string& out, std::string_view name, std::string_view value) {
  out += ',';
  append_json_quoted(out, name);
  out += ':';
  append_json_quoted(out, value);
}

void field_raw(std::string& out, std::string_view name, std::string_view raw) {
  out += ',';
  append_json_quoted(out, name);
  out += ':';
  out += raw;
}

bool listed(const std::vector<std::string>& list, const std::string& v) {
  return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

std::string Alert::to_json() const {
  std::string out = "{\"id\":";
  append_json_quoted(out, id);
  field(out, "analytics", analytics);
  field(out, "rule", rule);
  field(out, "kind", kind);
  field(out, "severity", severity);
  field(out, "state", state);
  field_raw(out, "key", key_json.empty() ? std::string_view("null") : std::string_view(key_json));
  field_raw(out, "window_start", std::to_string(window_start));
  field_raw(out, "window_end", std::to_string(window_end));
  field_raw(out, "at_ms", std::to_string(at_ms));
  field(out, "at", iso_utc(at_ms));
  field(out, "message", message);
  field_raw(out, "evidence",
            evidence_json.empty() ? std::string_view("{}") : std::string_view(evidence_json));
  out += '}';
  return out;
}

int severity_rank(std::string_view severity) {
  if (severity == "info") return 0;
  if (severity == "warning") return 1;
  if (severity == "critical") return 2;
  return -1;
}

bool NotifierRoute::matches(const Alert& a) const {
  if (a.state == "resolved" && !send_resolved) return false;
  if (severity_rank(a.severity) < severity_rank(min_severity)) return false;
  return listed(analytics, a.analytics) && listed(rules, a.rule);
}

namespace analytics {

namespace {
constexpr uint8_t kStateVersion = 1;
constexpr uint64_t kSweepEvery = 256;

// now − since, saturating: times are event times (outside input) or decoded from a checkpoint.
int64_t elapsed(int64_t now, int64_t since) {
  int64_t d;
  if (__builtin_sub_overflow(now, since, &d)) {
    return now > since ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return d;
}

// floor(ms / 60000), without overflow for any ms.
int64_t minute_of(int64_t ms) {
  return ms >= 0 ? ms / 60'000 : -((-(ms + 1)) / 60'000) - 1;
}
}  // namespace

std::string alert_episode_id(std::string_view analytics, std::string_view rule,
                             std::string_view key_json, int64_t episode_start_ms) {
  std::string buf;
  codec::Writer w(&buf);
  w.bytes(analytics);
  w.bytes(rule);
  w.bytes(key_json);
  w.svarint(episode_start_ms);
  const uint64_t h = hash64(buf);
  unsigned char be[8];
  for (int i = 0; i < 8; ++i) be[i] = static_cast<unsigned char>(h >> (56 - 8 * i));
  std::string out;
  append_hex(out, be, sizeof be);
  return out;
}

AlertManager::AlertManager(AlertManagerConfig cfg) : cfg_(cfg) {
  if (cfg_.max_episodes == 0) cfg_.max_episodes = 1;
}

void AlertManager::count(const Alert& a, std::string_view what, bool notified) {
  if (cfg_.metrics == nullptr) return;
  auto key = std::make_tuple(a.analytics, a.rule, std::string(what), notified);
  auto it = counters_.find(key);
  if (it == counters_.end()) {
    Counter* c =
        notified
            ? &cfg_.metrics->counter(
                  "analytics_alerts_total", "Alerts notified, by rule and state",
                  {{"analytics", a.analytics}, {"rule", a.rule}, {"state", std::string(what)}})
            : &cfg_.metrics->counter(
                  "analytics_alerts_suppressed_total",
                  "Alerts not notified (repeat, unfired, rate_limited)",
                  {{"analytics", a.analytics}, {"rule", a.rule}, {"reason", std::string(what)}});
    it = counters_.emplace(std::move(key), c).first;
  }
  it->second->inc();
}

bool AlertManager::take_rate(const Alert& a, const AlertPolicy& p) {
  if (p.max_per_minute <= 0) return true;
  RateWindow& w = rates_[RuleKey(a.analytics, a.rule)];
  const int64_t minute = minute_of(a.at_ms);
  if (minute > w.minute) {
    w.minute = minute;
    w.count = 0;
  }
  // An older minute (time going backwards) counts against the current window.
  if (w.count >= p.max_per_minute) return false;
  ++w.count;
  return true;
}

bool AlertManager::offer(Alert& alert, const AlertPolicy& policy) {
  std::lock_guard lock(mu_);
  ++stats_.offered;
  if (++offers_since_sweep_ >= kSweepEvery) {
    offers_since_sweep_ = 0;
    expire_locked(alert.at_ms);
  }
  const int64_t now = alert.at_ms;
  const int64_t cooldown = std::max<int64_t>(0, policy.cooldown_ms);
  EpisodeKey key(alert.analytics, alert.rule, alert.key_json);
  auto it = episodes_.find(key);
  // A resolved episode whose cooldown is over is as good as forgotten.
  if (it != episodes_.end() && !it->second.firing &&
      elapsed(now, it->second.resolved_ms) >= it->second.cooldown_ms) {
    episodes_.erase(it);
    it = episodes_.end();
  }

  if (alert.state == "resolved") {
    if (it == episodes_.end() || !it->second.firing) {
      alert.id =
          it == episodes_.end()
              ? alert_episode_id(alert.analytics, alert.rule, alert.key_json, alert.at_ms)
              : alert_episode_id(alert.analytics, alert.rule, alert.key_json, it->second.start_ms);
      ++stats_.suppressed_unfired;
      count(alert, "unfired", false);
      return false;
    }
    Episode& e = it->second;
    alert.id = alert_episode_id(alert.analytics, alert.rule, alert.key_json, e.start_ms);
    e.firing = false;
    e.resolved_ms = now;
    e.last_seen_ms = std::max(e.last_seen_ms, now);
    e.cooldown_ms = cooldown;
    if (!e.notified) {
      episodes_.erase(it);  // nobody heard of it: nothing to keep
      ++stats_.suppressed_unfired;
      count(alert, "unfired", false);
      return false;
    }
    ++stats_.notified;
    count(alert, "resolved", true);
    return true;
  }

  // Firing (any state other than "resolved" is treated as firing).
  bool is_new = it == episodes_.end();
  if (is_new) {
    Episode e;
    e.start_ms = now;
    it = episodes_.emplace(std::move(key), e).first;
  }
  Episode& e = it->second;
  alert.id = alert_episode_id(alert.analytics, alert.rule, alert.key_json, e.start_ms);
  const bool was_firing = e.firing;
  e.firing = true;
  e.cooldown_ms = cooldown;
  e.last_seen_ms = std::max(e.last_seen_ms, now);
  if (was_firing && e.notified && elapsed(now, e.last_notified_ms) < cooldown) {
    ++stats_.suppressed_repeat;
    count(alert, "repeat", false);
    return false;
  }
  if (!take_rate(alert, policy)) {
    ++stats_.rate_limited;
    count(alert, "rate_limited", false);
    if (is_new) enforce_bound_locked();
    return false;
  }
  e.notified = true;
  e.last_notified_ms = now;
  ++stats_.notified;
  count(alert, "firing", true);
  if (is_new) enforce_bound_locked();
  return true;
}

void AlertManager::expire(int64_t now_ms) {
  std::lock_guard lock(mu_);
  expire_locked(now_ms);
}

void AlertManager::expire_locked(int64_t now_ms) {
  for (auto it = episodes_.begin(); it != episodes_.end();) {
    const Episode& e = it->second;
    if (!e.firing && elapsed(now_ms, e.resolved_ms) >= e.cooldown_ms) {
      it = episodes_.erase(it);
    } else {
      ++it;
    }
  }
  // Rate windows older than the current minute carry no information.
  const int64_t minute = minute_of(now_ms);
  std::erase_if(rates_, [&](const auto& kv) { return kv.second.minute < minute; });
}

void AlertManager::enforce_bound_locked() {
  if (episodes_.size() <= cfg_.max_episodes) return;
  // Evict down to 90% of the bound at once, least recently active first (resolved before
  // firing at equal activity), so that the scan is amortised over many offers.
  const size_t target = std::max<size_t>(1, cfg_.max_episodes - cfg_.max_episodes / 10);
  std::vector<std::pair<std::pair<bool, int64_t>, const EpisodeKey*>> order;
  order.reserve(episodes_.size());
  for (const auto& [k, e] : episodes_) order.push_back({{e.firing, e.last_seen_ms}, &k});
  const size_t n = episodes_.size() - std::min(target, episodes_.size());
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                   [](const auto& a, const auto& b) {
                     return a.first.second < b.first.second ||
                            (a.first.second == b.first.second && a.first.first < b.first.first);
                   });
  std::vector<EpisodeKey> victims;
  victims.reserve(n);
  for (size_t i = 0; i < n; ++i) victims.push_back(*order[i].second);
  for (const EpisodeKey& k : victims) episodes_.erase(k);
  stats_.evicted += n;
}

std::string AlertManager::encode() const {
  std::lock_guard lock(mu_);
  std::string out;
  codec::Writer w(&out);
  w.u8(kStateVersion);
  w.varint(episodes_.size());
  for (const auto& [k, e] : episodes_) {
    w.bytes(std::get<0>(k));
    w.bytes(std::get<1>(k));
    w.bytes(std::get<2>(k));
    w.svarint(e.start_ms);
    w.svarint(e.last_seen_ms);
    w.svarint(e.last_notified_ms);
    w.svarint(e.resolved_ms);
    w.svarint(e.cooldown_ms);
    w.u8(static_cast<uint8_t>((e.firing ? 1 : 0) | (e.notified ? 2 : 0)));
  }
  w.varint(rates_.size());
  for (const auto& [k, r] : rates_) {
    w.bytes(k.first);
    w.bytes(k.second);
    w.svarint(r.minute);
    w.svarint(r.count);
  }
  return out;
}

Status AlertManager::decode(std::string_view bytes) {
  codec::Reader r(bytes);
  if (r.u8() != kStateVersion || !r.ok()) {
    return Corruption("alert manager state: unknown version");
  }
  std::map<EpisodeKey, Episode> episodes;
  std::map<RuleKey, RateWindow> rates;
  const uint64_t n = r.varint();
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    std::string a(r.bytes()), rule(r.bytes()), key(r.bytes());
    Episode e;
    e.start_ms = r.svarint();
    e.last_seen_ms = r.svarint();
    e.last_notified_ms = r.svarint();
    e.resolved_ms = r.svarint();
    e.cooldown_ms = r.svarint();
    const uint8_t flags = r.u8();
    if (flags > 3) return Corruption("alert manager state: bad episode flags");
    e.firing = (flags & 1) != 0;
    e.notified = (flags & 2) != 0;
    episodes.emplace(EpisodeKey(std::move(a), std::move(rule), std::move(key)), e);
  }
  const uint64_t m = r.ok() ? r.varint() : 0;
  for (uint64_t i = 0; i < m && r.ok(); ++i) {
    std::string a(r.bytes()), rule(r.bytes());
    RateWindow w;
    w.minute = r.svarint();
    w.count = r.svarint();
    rates.emplace(RuleKey(std::move(a), std::move(rule)), w);
  }
  if (!r.done()) return Corruption("alert manager state: truncated or trailing bytes");
  std::lock_guard lock(mu_);
  episodes_ = std::move(episodes);
  rates_ = std::move(rates);
  return Status::Ok();
}

AlertManagerStats AlertManager::stats() const {
  std::lock_guard lock(mu_);
  AlertManagerStats s = stats_;
  s.episodes = episodes_.size();
  return s;
}

}  // namespace analytics
}  // namespace spate
