// AlertManager: decides which alerts of an analytics are notified, and gives them stable ids.
//
// What it does: it keeps one episode per (analytics, rule, key). An episode starts with a
// firing alert when the (rule, key) has no episode (or only a forgotten one) and lasts until
// its resolution plus the rule's cooldown. offer(alert, policy) returns true if the alert is
// to be notified and sets alert.id = 16 hex digits of xxh3(analytics, rule, key, episode
// start), so the firing, its repeats and its resolution share one id (receivers dedup on it):
//   firing, no episode               -> new episode, notified
//   firing, episode firing           -> a repeat: suppressed, unless nothing of the episode
//                                       was notified yet or cooldown_ms passed since the last
//                                       notification (then re-notified)
//   firing, episode resolved         -> a flap within the cooldown: the episode fires again
//                                       (same id), notified
//   resolved, episode firing         -> notified only if a firing of the episode was notified
//   resolved, no episode / resolved  -> suppressed
// The per-rule rate limit (policy.max_per_minute, 0 = none) caps the firings notified per
// rule in each minute of the time base; the excess is counted and not notified (the episode
// still fires, so a later repeat may be notified). Resolutions of notified firings are never
// rate limited (there is at most one per notified episode).
//
// Time: every decision uses alert.at_ms (event time), so replaying the same events after a
// restart from a checkpoint makes the same decisions. Time going backwards is tolerated
// (a repeat older than the last notification is suppressed).
//
// Bounds: a resolved episode is forgotten cooldown_ms after its resolution (swept every 256
// offers and by expire()); if more than max_episodes remain, the least recently active ones
// are evicted (counted in stats().evicted).
//
// State: encode() writes every episode and rate-limit window to bytes; decode() replaces the
// state with them (kCorruption on malformed bytes, state unchanged). Use them for checkpoints.
//
// Metrics (if a registry is given): analytics_alerts_total{analytics,rule,state} counts the
// alerts notified, analytics_alerts_suppressed_total{analytics,rule,reason} the others
// (reason: repeat | unfired | rate_limited).
//
// Thread safety: all methods take an internal mutex; one manager is meant for one engine task.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "spate/alerts.h"
#include "spate/metrics.h"
#include "spate/status.h"

namespace spate::analytics {

/// Per-rule settings passed with each offer.
struct AlertPolicy {
  int64_t cooldown_ms = 300'000;  // re-notify a still-firing (rule, key) at most this often
  int max_per_minute = 0;         // notifications (firings) per rule per minute; 0 = unlimited
};

struct AlertManagerConfig {
  size_t max_episodes = 100'000;       // bound of the episode table
  MetricsRegistry* metrics = nullptr;  // nullptr = no metrics
};

struct AlertManagerStats {
  uint64_t offered = 0;
  uint64_t notified = 0;
  uint64_t suppressed_repeat = 0;   // repeats within the cooldown
  uint64_t suppressed_unfired = 0;  // resolutions of episodes that were never notified
  uint64_t rate_limited = 0;        // firings over a rule's max_per_minute
  uint64_t evicted = 0;             // episodes dropped because of max_episodes
  size_t episodes = 0;              // episodes held now
};

/// The stable id of an episode: 16 lowercase hex digits.
std::string alert_episode_id(std::string_view analytics, std::string_view rule,
                             std::string_view key_json, int64_t episode_start_ms);

class AlertManager {
 public:
  explicit AlertManager(AlertManagerConfig cfg = {});
  AlertManager(const AlertManager&) = delete;
  AlertManager& operator=(const AlertManager&) = delete;

  /// Decide whether `alert` is notified (true) and set alert.id either way (to the episode's
  /// id; a suppressed resolution without an episode gets the id it would have had).
  bool offer(Alert& alert, const AlertPolicy& policy);
  /// Forget resolved episodes whose cooldown ended before now_ms.
  void expire(int64_t now_ms);

  std::string encode() const;
  Status decode(std::string_view bytes);

  AlertManagerStats stats() const;

 private:
  struct Episode {
    int64_t start_ms = 0;
    int64_t last_seen_ms = 0;
    int64_t last_notified_ms = 0;
    int64_t resolved_ms = 0;
    int64_t cooldown_ms = 0;
    bool firing = false;
    bool notified = false;  // a firing of this episode was notified
  };
  struct RateWindow {
    int64_t minute = 0;  // at_ms / 60000 of the window
    int64_t count = 0;
  };
  // (analytics, rule, key_json)
  using EpisodeKey = std::tuple<std::string, std::string, std::string>;
  using RuleKey = std::pair<std::string, std::string>;

  bool take_rate(const Alert& a, const AlertPolicy& p);
  void expire_locked(int64_t now_ms);
  void enforce_bound_locked();
  void count(const Alert& a, std::string_view what, bool notified);

  AlertManagerConfig cfg_;
  mutable std::mutex mu_;
  std::map<EpisodeKey, Episode> episodes_;
  std::map<RuleKey, RateWindow> rates_;
  std::map<std::tuple<std::string, std::string, std::string, bool>, Counter*> counters_;
  AlertManagerStats stats_;
  uint64_t offers_since_sweep_ = 0;
};

}  // namespace spate::analytics
