// Tests of the AlertManager (src/analytics/alerts.h) and Alert::to_json (include/spate/alerts.h).
#include <gtest/gtest.h>

#include <string>

#include "analytics/alerts.h"
#include "spate/metrics.h"

namespace spate::analytics {
namespace {

Alert make(std::string state, int64_t at_ms, std::string key = R"({"user":"u1"})",
           std::string rule = "high_latency") {
  Alert a;
  a.analytics = "latency";
  a.rule = std::move(rule);
  a.kind = "threshold";
  a.severity = "critical";
  a.state = std::move(state);
  a.key_json = std::move(key);
  a.window_start = at_ms - 60'000;
  a.window_end = at_ms;
  a.at_ms = at_ms;
  a.message = "p99 over 500 ms";
  a.evidence_json = R"({"p99":730})";
  return a;
}

AlertPolicy cooldown(int64_t ms, int per_minute = 0) {
  AlertPolicy p;
  p.cooldown_ms = ms;
  p.max_per_minute = per_minute;
  return p;
}

TEST(AlertManagerTest, RepeatedFiringIsSuppressedWithinCooldownAndRenotifiedAfter) {
  AlertManager m;
  const AlertPolicy p = cooldown(60'000);
  Alert a = make("firing", 1'000'000);
  EXPECT_TRUE(m.offer(a, p));
  const std::string id = a.id;
  EXPECT_EQ(id.size(), 16u);
  for (int64_t t : {1'010'000, 1'030'000, 1'059'999}) {
    Alert r = make("firing", t);
    EXPECT_FALSE(m.offer(r, p)) << t;
    EXPECT_EQ(r.id, id);
  }
  Alert again = make("firing", 1'060'000);  // cooldown since the last notification passed
  EXPECT_TRUE(m.offer(again, p));
  EXPECT_EQ(again.id, id);  // same episode
  Alert soon = make("firing", 1'100'000);
  EXPECT_FALSE(m.offer(soon, p));         // cooldown counts from the re-notification
  Alert older = make("firing", 900'000);  // time going backwards: a repeat
  EXPECT_FALSE(m.offer(older, p));
  const AlertManagerStats s = m.stats();
  EXPECT_EQ(s.notified, 2u);
  EXPECT_EQ(s.suppressed_repeat, 5u);
  EXPECT_EQ(s.episodes, 1u);
}

TEST(AlertManagerTest, OtherKeysAndRulesAreSeparateEpisodes) {
  AlertManager m;
  const AlertPolicy p = cooldown(60'000);
  Alert a = make("firing", 1000, R"({"user":"u1"})");
  Alert b = make("firing", 1000, R"({"user":"u2"})");
  Alert c = make("firing", 1000, R"({"user":"u1"})", "error_rate");
  EXPECT_TRUE(m.offer(a, p));
  EXPECT_TRUE(m.offer(b, p));
  EXPECT_TRUE(m.offer(c, p));
  EXPECT_NE(a.id, b.id);
  EXPECT_NE(a.id, c.id);
  EXPECT_EQ(a.id, alert_episode_id("latency", "high_latency", R"({"user":"u1"})", 1000));
}

TEST(AlertManagerTest, ResolutionSharesTheFiringsIdAndPassesOnlyIfItFired) {
  AlertManager m;
  const AlertPolicy p = cooldown(60'000);
  Alert never = make("resolved", 500);
  EXPECT_FALSE(m.offer(never, p));  // nothing fired

  Alert f = make("firing", 1000);
  ASSERT_TRUE(m.offer(f, p));
  Alert r = make("resolved", 5000);
  EXPECT_TRUE(m.offer(r, p));
  EXPECT_EQ(r.id, f.id);
  Alert r2 = make("resolved", 6000);
  EXPECT_FALSE(m.offer(r2, p));  // already resolved
  EXPECT_EQ(r2.id, f.id);

  // A flap within the cooldown re-fires the same episode, and is notified (the receiver was
  // told it resolved).
  Alert flap = make("firing", 20'000);
  EXPECT_TRUE(m.offer(flap, p));
  EXPECT_EQ(flap.id, f.id);
  Alert r3 = make("resolved", 30'000);
  EXPECT_TRUE(m.offer(r3, p));
  EXPECT_EQ(r3.id, f.id);

  // After the cooldown the resolved episode is forgotten: a new firing is a new episode.
  Alert later = make("firing", 30'000 + 60'000);
  EXPECT_TRUE(m.offer(later, p));
  EXPECT_NE(later.id, f.id);
  EXPECT_EQ(m.stats().suppressed_unfired, 2u);
}

TEST(AlertManagerTest, ResolvedEpisodesAreForgottenAfterTheirCooldown) {
  AlertManager m;
  const AlertPolicy p = cooldown(10'000);
  for (int i = 0; i < 50; ++i) {
    Alert f = make("firing", 1000, "\"k" + std::to_string(i) + "\"");
    ASSERT_TRUE(m.offer(f, p));
    Alert r = make("resolved", 2000, "\"k" + std::to_string(i) + "\"");
    ASSERT_TRUE(m.offer(r, p));
  }
  Alert still = make("firing", 2000, "\"open\"");
  ASSERT_TRUE(m.offer(still, p));
  EXPECT_EQ(m.stats().episodes, 51u);
  m.expire(11'999);
  EXPECT_EQ(m.stats().episodes, 51u);
  m.expire(12'000);
  EXPECT_EQ(m.stats().episodes, 1u);  // the firing one stays
}

TEST(AlertManagerTest, EpisodeTableIsBounded) {
  AlertManagerConfig cfg;
  cfg.max_episodes = 100;
  AlertManager m(cfg);
  const AlertPolicy p = cooldown(1'000'000);
  for (int i = 0; i < 1000; ++i) {
    Alert f = make("firing", 1000 + i, "\"k" + std::to_string(i) + "\"");
    ASSERT_TRUE(m.offer(f, p));
  }
  const AlertManagerStats s = m.stats();
  EXPECT_LE(s.episodes, 100u);
  EXPECT_GE(s.evicted, 900u);
  // The most recent key survived eviction: its repeat is still a repeat.
  Alert last = make("firing", 5000, "\"k999\"");
  EXPECT_FALSE(m.offer(last, p));
}

TEST(AlertManagerTest, RateLimitCountsTheExcessPerRulePerMinute) {
  MetricsRegistry reg;
  AlertManagerConfig cfg;
  cfg.metrics = &reg;
  AlertManager m(cfg);
  const AlertPolicy p = cooldown(60'000, /*per_minute=*/3);
  int sent = 0;
  for (int i = 0; i < 10; ++i) {
    Alert a = make("firing", 120'000 + i, "\"k" + std::to_string(i) + "\"");
    sent += m.offer(a, p) ? 1 : 0;
  }
  EXPECT_EQ(sent, 3);
  EXPECT_EQ(m.stats().rate_limited, 7u);
  // Another rule has its own budget.
  Alert other = make("firing", 120'500, "\"k0\"", "error_rate");
  EXPECT_TRUE(m.offer(other, p));
  // The next minute has a fresh budget; a rate-limited episode that never got through is
  // notified on its next repeat even within the cooldown.
  Alert k5 = make("firing", 180'000, "\"k5\"");
  EXPECT_TRUE(m.offer(k5, p));
  // A resolution of a notified episode is never rate limited.
  for (int i = 6; i < 9; ++i) {
    Alert a = make("firing", 180'001, "\"k" + std::to_string(i) + "\"");
    (void)m.offer(a, p);
  }
  Alert r0 = make("resolved", 180'002, "\"k0\"");
  EXPECT_TRUE(m.offer(r0, p));
  // A resolution of an episode that was never notified is not sent.
  Alert r9 = make("resolved", 180'003, "\"k9\"");
  EXPECT_FALSE(m.offer(r9, p));

  const std::string text = reg.render_prometheus();
  EXPECT_NE(
      text.find(
          R"(analytics_alerts_total{analytics="latency",rule="high_latency",state="firing"} 6)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(analytics_alerts_total{analytics="latency",rule="high_latency",state="resolved"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          R"(analytics_alerts_suppressed_total{analytics="latency",reason="rate_limited",rule="high_latency"} 8)"),
      std::string::npos)
      << text;
}

TEST(AlertManagerTest, EncodeDecodeRoundTripsTheDecisions) {
  const AlertPolicy p = cooldown(60'000, 100);
  AlertManager a;
  Alert f1 = make("firing", 1000, "\"a\"");
  Alert f2 = make("firing", 2000, "\"b\"");
  Alert r2 = make("resolved", 3000, "\"b\"");
  ASSERT_TRUE(a.offer(f1, p));
  ASSERT_TRUE(a.offer(f2, p));
  ASSERT_TRUE(a.offer(r2, p));
  const std::string bytes = a.encode();

  AlertManager b;
  ASSERT_TRUE(b.decode(bytes).ok());
  EXPECT_EQ(b.encode(), bytes);
  EXPECT_EQ(b.stats().episodes, 2u);
  Alert rep = make("firing", 10'000, "\"a\"");
  EXPECT_FALSE(b.offer(rep, p));  // still a repeat after the restore
  EXPECT_EQ(rep.id, f1.id);
  Alert ra = make("resolved", 11'000, "\"a\"");
  EXPECT_TRUE(b.offer(ra, p));
  EXPECT_EQ(ra.id, f1.id);
  Alert flap = make("firing", 12'000, "\"b\"");  // within b's cooldown: same episode
  EXPECT_TRUE(b.offer(flap, p));
  EXPECT_EQ(flap.id, f2.id);

  // Malformed input is rejected and leaves the state alone.
  AlertManager c;
  Alert fc = make("firing", 1000, "\"c\"");
  ASSERT_TRUE(c.offer(fc, p));
  const std::string before = c.encode();
  EXPECT_EQ(c.decode(bytes.substr(0, bytes.size() - 3)).code(), Errc::kCorruption);
  EXPECT_EQ(c.decode(bytes + "x").code(), Errc::kCorruption);
  EXPECT_EQ(c.decode("").code(), Errc::kCorruption);
  EXPECT_EQ(c.encode(), before);
}

TEST(AlertTest, ToJsonEmbedsKeyAndEvidence) {
  Alert a = make("firing", 1'700'000'000'123);
  a.id = "00112233aabbccdd";
  a.message = "say \"hi\"\n";
  EXPECT_EQ(a.to_json(),
            R"({"id":"00112233aabbccdd","analytics":"latency","rule":"high_latency",)"
            R"("kind":"threshold","severity":"critical","state":"firing","key":{"user":"u1"},)"
            R"("window_start":1699999940123,"window_end":1700000000123,"at_ms":1700000000123,)"
            R"("at":"2023-11-14T22:13:20.123Z","message":"say \"hi\"\n","evidence":{"p99":730}})");
  Alert empty;
  EXPECT_NE(empty.to_json().find(R"("key":null)"), std::string::npos);
  EXPECT_NE(empty.to_json().find(R"("evidence":{})"), std::string::npos);
}

TEST(AlertTest, RouteMatchesSeverityListsAndResolved) {
  NotifierRoute r;
  Alert a = make("firing", 1000);
  EXPECT_TRUE(r.matches(a));
  r.min_severity = "critical";
  a.severity = "warning";
  EXPECT_FALSE(r.matches(a));
  a.severity = "critical";
  EXPECT_TRUE(r.matches(a));
  r.rules = {"other"};
  EXPECT_FALSE(r.matches(a));
  r.rules = {"high_latency"};
  r.analytics = {"latency"};
  EXPECT_TRUE(r.matches(a));
  r.send_resolved = false;
  a.state = "resolved";
  EXPECT_FALSE(r.matches(a));
}

}  // namespace
}  // namespace spate::analytics
