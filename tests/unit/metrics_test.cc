#include "spate/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "spate/version.h"

namespace spate {
namespace {

TEST(MetricsFormatTest, Values) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(1), "1");
  EXPECT_EQ(format_metric_value(-1), "-1");
  EXPECT_EQ(format_metric_value(1234567), "1234567");
  EXPECT_EQ(format_metric_value(2.5), "2.5");
  EXPECT_EQ(format_metric_value(0.0001), "0.0001");
  EXPECT_EQ(format_metric_value(0.00001), "1e-05");
  EXPECT_EQ(format_metric_value(1e20), "1e+20");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(MetricsRegistryTest, CounterExposition) {
  MetricsRegistry r;
  r.counter("ingestion_messages_total", "Messages ingested.", {{"topic", "orders"}}).inc(3);
  r.counter("ingestion_messages_total", "Messages ingested.", {{"topic", "clicks"}}).inc();
  r.counter("ingestion_messages_total", "Messages ingested.", {{"topic", "clicks"}}).add(0.5);
  EXPECT_EQ(r.render_prometheus(),
            "# HELP ingestion_messages_total Messages ingested.\n"
            "# TYPE ingestion_messages_total counter\n"
            "ingestion_messages_total{topic=\"clicks\"} 1.5\n"
            "ingestion_messages_total{topic=\"orders\"} 3\n");
}

TEST(MetricsRegistryTest, CounterIgnoresNegativeAndNaN) {
  MetricsRegistry r;
  Counter& c = r.counter("x_total", "x.");
  c.add(-5);
  c.add(std::numeric_limits<double>::quiet_NaN());
  c.inc(2);
  EXPECT_EQ(c.value(), 2);
}

TEST(MetricsRegistryTest, GaugeExpositionSortedFamiliesAndLabels) {
  MetricsRegistry r;
  Gauge& lag = r.gauge("stream_consumer_lag", "Consumer lag in messages.",
                       {{"topic", "t"}, {"group", "g"}});  // labels given out of order
  lag.set(10);
  lag.add(5);
  lag.sub(2.5);
  r.gauge("a_first_value", "First by name.").set(-1);
  r.gauge("empty_labels", "No labels.").inc();
  EXPECT_EQ(r.render_prometheus(),
            "# HELP a_first_value First by name.\n"
            "# TYPE a_first_value gauge\n"
            "a_first_value -1\n"
            "# HELP empty_labels No labels.\n"
            "# TYPE empty_labels gauge\n"
            "empty_labels 1\n"
            "# HELP stream_consumer_lag Consumer lag in messages.\n"
            "# TYPE stream_consumer_lag gauge\n"
            "stream_consumer_lag{group=\"g\",topic=\"t\"} 12.5\n");
}

TEST(MetricsRegistryTest, GaugeSpecialValues) {
  MetricsRegistry r;
  r.gauge("g_nan", "h.").set(std::numeric_limits<double>::quiet_NaN());
  r.gauge("g_pinf", "h.").set(std::numeric_limits<double>::infinity());
  r.gauge("g_ninf", "h.").set(-std::numeric_limits<double>::infinity());
  std::string out = r.render_prometheus();
  EXPECT_NE(out.find("\ng_nan NaN\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\ng_pinf +Inf\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\ng_ninf -Inf\n"), std::string::npos) << out;
}

TEST(MetricsRegistryTest, HistogramExposition) {
  MetricsRegistry r;
  Histogram& h = r.histogram("request_duration_seconds", "Request latency.", {{"route", "/ingest"}},
                             {0.1, 0.5, 1});
  h.observe(0.05);
  h.observe(0.1);  // bounds are inclusive
  h.observe(0.3);
  h.observe(2);
  h.observe(std::numeric_limits<double>::quiet_NaN());  // only +Inf; makes sum NaN
  Histogram& h2 = r.histogram("request_duration_seconds", "Request latency.", {}, {1});
  h2.observe(0.5);
  h2.observe(0.25);
  EXPECT_EQ(r.render_prometheus(),
            "# HELP request_duration_seconds Request latency.\n"
            "# TYPE request_duration_seconds histogram\n"
            "request_duration_seconds_bucket{le=\"1\"} 2\n"
            "request_duration_seconds_bucket{le=\"+Inf\"} 2\n"
            "request_duration_seconds_sum 0.75\n"
            "request_duration_seconds_count 2\n"
            "request_duration_seconds_bucket{route=\"/ingest\",le=\"0.1\"} 2\n"
            "request_duration_seconds_bucket{route=\"/ingest\",le=\"0.5\"} 3\n"
            "request_duration_seconds_bucket{route=\"/ingest\",le=\"1\"} 3\n"
            "request_duration_seconds_bucket{route=\"/ingest\",le=\"+Inf\"} 5\n"
            "request_duration_seconds_sum{route=\"/ingest\"} NaN\n"
            "request_duration_seconds_count{route=\"/ingest\"} 5\n");
}

TEST(MetricsRegistryTest, HistogramDefaultBucketsAndSnapshot) {
  MetricsRegistry r;
  Histogram& h = r.histogram("op_latency_seconds", "Latency.");
  EXPECT_EQ(h.bounds(), default_latency_buckets());
  EXPECT_EQ(h.bounds().front(), 0.0001);
  EXPECT_EQ(h.bounds().back(), 10);
  h.observe(0.002);
  h.observe(20);
  Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 2u);
  EXPECT_DOUBLE_EQ(s.sum, 20.002);
  EXPECT_EQ(s.cumulative.back(), 2u);
  EXPECT_EQ(s.cumulative[s.bounds.size() - 1], 1u);  // le=10
  std::string out = r.render_prometheus();
  EXPECT_NE(out.find("op_latency_seconds_bucket{le=\"0.0001\"} 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("op_latency_seconds_bucket{le=\"0.0025\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("op_latency_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos) << out;
}

TEST(MetricsRegistryTest, BucketHelpers) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(linear_buckets(0, 5, 3), (std::vector<double>{0, 5, 10}));
  Histogram h({1, 2, std::numeric_limits<double>::infinity()});  // trailing +Inf dropped
  EXPECT_EQ(h.bounds(), (std::vector<double>{1, 2}));
}

TEST(MetricsRegistryTest, Escaping) {
  MetricsRegistry r;
  r.gauge("escape_test", "Help with \\ backslash\nand newline and \"quotes\".",
          {{"path", "C:\\dir\\\"x\"\nnext"}})
      .set(1);
  r.gauge("escape_test", "ignored: first help wins", {{"path", "bad\xff utf8"}}).set(2);
  EXPECT_EQ(r.render_prometheus(),
            "# HELP escape_test Help with \\\\ backslash\\nand newline and \"quotes\".\n"
            "# TYPE escape_test gauge\n"
            "escape_test{path=\"C:\\\\dir\\\\\\\"x\\\"\\nnext\"} 1\n"
            "escape_test{path=\"bad\xEF\xBF\xBD utf8\"} 2\n");
}

TEST(MetricsRegistryTest, SameNameSameLabelsIsSameObject) {
  MetricsRegistry r;
  Counter& a = r.counter("events_total", "Events.", {{"a", "1"}, {"b", "2"}});
  Counter& b = r.counter("events_total", "Events.", {{"b", "2"}, {"a", "1"}});
  Counter& c = r.counter("events_total", "Events.", {{"a", "1"}, {"b", "3"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  // Many more series must not move existing ones.
  for (int i = 0; i < 1000; ++i) r.counter("events_total", "Events.", {{"a", std::to_string(i)}});
  EXPECT_EQ(&a, &r.counter("events_total", "Events.", {{"a", "1"}, {"b", "2"}}));
  Gauge& g1 = r.gauge("level", "Level.");
  EXPECT_EQ(&g1, &r.gauge("level", "Level."));
  Histogram& h1 = r.histogram("wait_seconds", "Wait.", {{"q", "x"}});
  EXPECT_EQ(&h1, &r.histogram("wait_seconds", "Wait.", {{"q", "x"}}, {1, 2, 3}));
  EXPECT_EQ(h1.bounds(), default_latency_buckets());  // buckets only used on creation
}

TEST(MetricsRegistryTest, ConcurrentUpdatesAreExact) {
  MetricsRegistry r;
  Counter& c = r.counter("concurrent_total", "c.");
  Histogram& h = r.histogram("concurrent_seconds", "h.", {}, {0.5});
  Gauge& g = r.gauge("concurrent_level", "g.");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  std::atomic<bool> stop_scraping{false};
  std::thread scraper([&] {  // scrapes concurrently with the writers
    while (!stop_scraping.load()) (void)r.render_prometheus();
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Also register from many threads at once: must return the same objects.
      Counter& mine = r.counter("concurrent_total", "c.");
      for (int i = 0; i < kPerThread; ++i) {
        mine.inc();
        h.observe((i + t) % 2 == 0 ? 0.25 : 1.0);
        g.add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  stop_scraping = true;
  scraper.join();
  EXPECT_EQ(c.value(), double{kThreads} * kPerThread);
  EXPECT_EQ(g.value(), double{kThreads} * kPerThread);
  Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(s.cumulative[0], uint64_t{kThreads} * kPerThread / 2);
  EXPECT_DOUBLE_EQ(s.sum, kThreads * kPerThread / 2 * 1.25);
  std::string out = r.render_prometheus();
  EXPECT_NE(out.find("concurrent_total 800000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("concurrent_seconds_count 800000\n"), std::string::npos) << out;
}

TEST(MetricsRegistryTest, CallbackGauges) {
  MetricsRegistry r;
  double end_offset = 41;
  MetricCallbackHandle h =
      r.gauge_fn("log_end_offset", "End offset.", {{"partition", "0"}}, [&] { return end_offset; });
  end_offset = 42;
  r.counter_fn("bytes_read_total", "Bytes read.", {}, [] { return 7.0; });
  EXPECT_EQ(r.render_prometheus(),
            "# HELP bytes_read_total Bytes read.\n"
            "# TYPE bytes_read_total counter\n"
            "bytes_read_total 7\n"
            "# HELP log_end_offset End offset.\n"
            "# TYPE log_end_offset gauge\n"
            "log_end_offset{partition=\"0\"} 42\n");
  EXPECT_TRUE(r.remove(h));
  EXPECT_FALSE(r.remove(h));
  EXPECT_EQ(r.render_prometheus(),
            "# HELP bytes_read_total Bytes read.\n"
            "# TYPE bytes_read_total counter\n"
            "bytes_read_total 7\n");  // empty family omitted
}

TEST(MetricsRegistryTest, CallbackReplaceScopedAndThrowing) {
  MetricsRegistry r;
  MetricCallbackHandle old = r.gauge_fn("replaced_value", "v.", {}, [] { return 1.0; });
  MetricCallbackHandle now = r.gauge_fn("replaced_value", "v.", {}, [] { return 2.0; });
  EXPECT_NE(old.id, now.id);
  EXPECT_FALSE(r.remove(old));  // replaced: old handle removes nothing
  EXPECT_NE(r.render_prometheus().find("replaced_value 2\n"), std::string::npos);
  {
    ScopedMetricCallback scoped(&r, r.gauge_fn("scoped_value", "v.", {}, [] { return 3.0; }));
    EXPECT_NE(r.render_prometheus().find("scoped_value 3\n"), std::string::npos);
    ScopedMetricCallback moved = std::move(scoped);
  }
  EXPECT_EQ(r.render_prometheus().find("scoped_value"), std::string::npos);
  r.gauge_fn("throwing_value", "v.", {}, []() -> double { throw std::runtime_error("x"); });
  EXPECT_NE(r.render_prometheus().find("throwing_value NaN\n"), std::string::npos);
  // A callback may register metrics while a scrape runs it.
  r.gauge_fn("registering_value", "v.", {}, [&r] {
    r.counter("registered_in_callback_total", "c.").inc();
    return 1.0;
  });
  (void)r.render_prometheus();
  EXPECT_NE(r.render_prometheus().find("registered_in_callback_total"), std::string::npos);
}

TEST(MetricsRegistryTest, NoDuplicateSeriesOrTypeLines) {
  MetricsRegistry r;
  register_process_metrics(r);
  register_process_metrics(r);  // idempotent
  r.counter("a_total", "a.", {{"x", "1"}}).inc();
  r.counter("a_total", "a.", {{"x", "1"}}).inc();
  std::istringstream in(r.render_prometheus());
  std::string line;
  std::set<std::string> seen;
  while (std::getline(in, line)) {
    std::string key =
        line[0] == '#' ? line.substr(0, line.find(' ', 7)) : line.substr(0, line.rfind(' '));
    EXPECT_TRUE(seen.insert(key).second) << "duplicate: " << line;
  }
}

double sample_value(const std::string& text, const std::string& series) {
  size_t pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return std::numeric_limits<double>::quiet_NaN();
  return std::strtod(text.c_str() + pos + series.size() + 2, nullptr);
}

TEST(MetricsRegistryTest, ProcessMetricsPlausible) {
  MetricsRegistry r;
  register_process_metrics(r);
  // Burn a little CPU so cpu seconds is > 0.
  volatile double x = 0;
  for (int i = 0; i < 2000000; ++i) x = x + std::sqrt(static_cast<double>(i));
  std::string out = r.render_prometheus();
  EXPECT_NE(out.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos) << out;
  double cpu = sample_value(out, "process_cpu_seconds_total");
  EXPECT_GE(cpu, 0);
  EXPECT_LT(cpu, 1e6);
  double rss = sample_value(out, "process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20);  // > 1 MiB
  EXPECT_LT(rss, 64.0 * (1ull << 30));
  double vsz = sample_value(out, "process_virtual_memory_bytes");
  EXPECT_GE(vsz, rss);
  double fds = sample_value(out, "process_open_fds");
  EXPECT_GE(fds, 3);  // stdin/stdout/stderr
  EXPECT_LT(fds, 10000);
  int fd = dup(1);
  double fds2 = sample_value(r.render_prometheus(), "process_open_fds");
  close(fd);
  EXPECT_EQ(fds2, fds + 1);
  double max = sample_value(out, "process_max_fds");
  EXPECT_GE(max, fds);
  double start = sample_value(out, "process_start_time_seconds");
  double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);  // this test process started less than an hour ago
  EXPECT_NE(out.find(std::string("spate_build_info{version=\"") + SPATE_VERSION + "\"} 1\n"),
            std::string::npos)
      << out;
}

TEST(MetricsRegistryTest, GlobalRegistryIsOneObject) {
  EXPECT_EQ(&global_metrics(), &global_metrics());
  global_metrics().counter("global_test_total", "t.").inc();
  EXPECT_NE(global_metrics().render_prometheus().find("global_test_total 1\n"), std::string::npos);
}

using MetricsDeathTest = ::testing::Test;

TEST_F(MetricsDeathTest, ProgrammingErrorsAreFatal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.counter("no_suffix", "h.");
      },
      "must end in _total");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("bad_total", "h.");
      },
      "only counter");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("camelCase", "h.");
      },
      "snake_case");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("latency_ms", "h.");
      },
      "abbreviated unit");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("latency_milliseconds", "h.");
      },
      "prefixed unit");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("x", "");
      },
      "help text");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("x", "h.", {{"le", "1"}});
      },
      "reserved");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("x", "h.", {{"a", "1"}, {"a", "2"}});
      },
      "duplicate");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("x", "h.");
        r.histogram("x", "h.");
      },
      "registered as gauge and as histogram");
  EXPECT_DEATH(
      {
        MetricsRegistry r;
        r.gauge("x", "h.");
        r.gauge_fn("x", "h.", {}, [] { return 1.0; });
      },
      "plain metric");
  EXPECT_DEATH({ Histogram h({2, 1}); }, "strictly increasing");
}

}  // namespace
}  // namespace spate
