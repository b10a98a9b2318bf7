// KafkaStreamProcessor (include/spate/processor.h): poll → steps → append outputs → commit.
#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "base/clock.h"
#include "base/hash.h"
#include "event/expr.h"
#include "ingest/transform/transform.h"
#include "process/consumer.h"
#include "process/retry.h"
#include "spate/metrics.h"
#include "spate/processor.h"

namespace spate {
namespace {

struct Step {
  enum Kind { kFilter, kMap, kRoute } kind = kFilter;
  expr::Expression filter;
  ingest::TransformChain chain;
  struct Route {
    expr::Expression when;
    std::vector<std::string> topics;
  };
  std::vector<Route> routes;
};

Result<std::vector<Step>> compile_steps(const ProcessorConfig& c) {
  std::vector<Step> out;
  std::string errors;
  auto add_error = [&](std::string e) { errors += (errors.empty() ? "" : "\n") + std::move(e); };
  for (const ProcessorStepConfig& sc : c.steps) {
    Step st;
    if (sc.kind == "filter") {
      st.kind = Step::kFilter;
      auto e = expr::Expression::compile(sc.filter);
      if (!e.ok()) {
        add_error(fmt::format("{}:{}:{}: {}.filter: {}", sc.file, sc.line, sc.column, sc.path,
                              e.status().message()));
        continue;
      }
      st.filter = std::move(e).value();
    } else if (sc.kind == "map") {
      st.kind = Step::kMap;
      auto chain = ingest::TransformChain::compile(sc.rules);
      if (!chain.ok()) {
        add_error(chain.status().message());
        continue;
      }
      st.chain = std::move(chain).value();
    } else if (sc.kind == "route") {
      st.kind = Step::kRoute;
      for (const RouteConfig& rc : sc.routes) {
        Step::Route r;
        if (!rc.when.empty()) {
          auto e = expr::Expression::compile(rc.when);
          if (!e.ok()) {
            add_error(fmt::format("{}:{}:{}: {}.when: {}", rc.file, rc.line, rc.column, rc.path,
                                  e.status().message()));
            continue;
          }
          r.when = std::move(e).value();
        }
        r.topics = rc.topics;
        st.routes.push_back(std::move(r));
      }
    } else {
      add_error(fmt::format("{}:{}:{}: {}: unknown step \"{}\"", sc.file, sc.line, sc.column,
                            sc.path, sc.kind));
      continue;
    }
    out.push_back(std::move(st));
  }
  if (!errors.empty()) return ConfigError(errors);
  return out;
}

}  // namespace

Status validate_processor(const ProcessorConfig& config) { return compile_steps(config).status(); }

struct KafkaStreamProcessor::Impl {
  ProcessorConfig cfg;
  Log* log;
  MetricsRegistry* metrics;
  std::vector<Step> steps;
  std::unique_ptr<process::GroupConsumer> consumer;
  std::map<std::string, uint32_t> partitions;  // output topics
  std::thread thread;
  std::atomic<bool> running{false};
  std::mutex mu;
  std::condition_variable cv;

  std::atomic<uint64_t> consumed{0}, produced{0}, filtered{0}, dead_lettered{0}, failed{0},
      retries{0}, batches{0};

  struct TopicMetrics {
    Counter* processed;
    Counter* filtered;
    Counter* failed;
    Counter* dead_lettered;
    Histogram* seconds;
  };
  std::map<std::string, TopicMetrics> topic_metrics;
  std::map<std::pair<std::string, uint32_t>, Gauge*> lag_gauges;
  std::map<std::string, Counter*> error_counters;  // "topic\0error"

  Counter* error_counter(const std::string& topic, const std::string& error) {
    auto key = topic + '\0' + error;
    auto it = error_counters.find(key);
    if (it != error_counters.end()) return it->second;
    Counter* c = &metrics->counter("stream_processing_errors_total", "Events that failed a processor",
                                   {{"topic", topic}, {"error", error}, {"processor", cfg.name}});
    error_counters.emplace(key, c);
    return c;
  }

  // Wait `ms` or until stop(); false if stopping.
  bool sleep_for(int64_t ms) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return !running.load(); });
    return running.load();
  }

  void run();
  bool process(std::vector<process::PolledBatch>& polled);
};

KafkaStreamProcessor::KafkaStreamProcessor(ProcessorConfig config, Log* log,
                                           MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
  impl_->log = log;
  impl_->metrics = metrics ? metrics : &global_metrics();
}

KafkaStreamProcessor::~KafkaStreamProcessor() { stop(); }

const ProcessorConfig& KafkaStreamProcessor::config() const { return impl_->cfg; }

Status KafkaStreamProcessor::initialize() {
  Impl& m = *impl_;
  SPATE_ASSIGN_OR_RETURN(m.steps, compile_steps(m.cfg));
  std::vector<std::string> outputs;
  if (!m.cfg.output.empty()) outputs.push_back(m.cfg.output);
  if (!m.cfg.dead_letter_topic.empty()) outputs.push_back(m.cfg.dead_letter_topic);
  for (const Step& s : m.steps) {
    for (const auto& r : s.routes) outputs.insert(outputs.end(), r.topics.begin(), r.topics.end());
  }
  for (const std::string& t : outputs) {
    auto info = m.log->describe_topic(t);
    if (!info.ok()) return info.status().with_context("processor " + m.cfg.name + " output");
    m.partitions[t] = info->partitions;
  }
  process::ConsumerConfig cc;
  cc.group = m.cfg.group.empty() ? "spate.processor." + m.cfg.name : m.cfg.group;
  cc.topics = m.cfg.inputs;
  cc.replica = m.cfg.replica;
  cc.replicas = m.cfg.replicas;
  cc.start_at_latest = m.cfg.start_at_latest;
  cc.max_records = m.cfg.batch_size;
  cc.max_wait_ms = m.cfg.poll_timeout_ms;
  m.consumer = std::make_unique<process::GroupConsumer>(m.log, cc);
  SPATE_RETURN_IF_ERROR(m.consumer->open().with_context("processor " + m.cfg.name));
  for (const std::string& t : m.cfg.inputs) {
    const MetricLabels l = {{"topic", t}, {"processor", m.cfg.name}};
    auto labels = [&](const char* status) {
      MetricLabels x = l;
      x.emplace_back("status", status);
      return x;
    };
    const char* help = "Input events handled by a processor";
    m.topic_metrics[t] = {&m.metrics->counter("stream_messages_processed_total", help, labels("processed")),
                          &m.metrics->counter("stream_messages_processed_total", help, labels("filtered")),
                          &m.metrics->counter("stream_messages_processed_total", help, labels("failed")),
                          &m.metrics->counter("stream_messages_processed_total", help, labels("dead_lettered")),
                          &m.metrics->histogram("stream_processing_seconds",
                                                "Time to process a polled batch, per input topic", l)};
  }
  for (const auto& tp : m.consumer->assignment()) {
    m.lag_gauges[{tp.topic, tp.partition}] = &m.metrics->gauge(
        "stream_consumer_lag", "Records of a partition not yet committed by the processor",
        {{"topic", tp.topic}, {"partition", std::to_string(tp.partition)}, {"processor", m.cfg.name}});
  }
  return Status::Ok();
}

Status KafkaStreamProcessor::start() {
  Impl& m = *impl_;
  if (!m.consumer) return Internal("KafkaStreamProcessor::start() before initialize()");
  if (m.running.exchange(true)) return Status::Ok();
  m.thread = std::thread([&m] { m.run(); });
  return Status::Ok();
}

void KafkaStreamProcessor::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.mu);
    m.running.store(false);
  }
  m.cv.notify_all();
  if (m.thread.joinable()) m.thread.join();
}

ProcessorStats KafkaStreamProcessor::stats() const {
  const Impl& m = *impl_;
  return {m.consumed.load(), m.produced.load(), m.filtered.load(), m.dead_lettered.load(),
          m.failed.load(),   m.retries.load(),  m.batches.load()};
}

void KafkaStreamProcessor::Impl::run() {
  while (running.load()) {
    auto polled = consumer->poll();
    if (!polled.ok()) {
      spdlog::warn("processor {}: poll failed: {}", cfg.name, polled.status().to_string());
      if (!sleep_for(500)) return;
      continue;
    }
    if (polled->empty()) continue;
    if (!process(*polled)) return;  // stopping with the batch unfinished: not committed
  }
}

// Process one polled batch; false if stop() interrupted it before its commit.
bool KafkaStreamProcessor::Impl::process(std::vector<process::PolledBatch>& polled) {
  const auto started = std::chrono::steady_clock::now();
  thread_local simdjson::dom::parser parser;
  std::deque<std::string> owned;  // transformed values and header values, stable addresses
  struct Out {
    std::vector<RecordIn> recs;
    std::vector<std::vector<RecordHeader>> headers;  // dead letters' headers (index by rec)
  };
  std::map<std::pair<std::string, uint32_t>, Out> outs;
  std::map<process::TopicPartition, int64_t> commits;
  const int64_t now = system_clock()->now_ms();
  ingest::TransformInput tin;
  tin.received_at_ms = now;
  tin.source = cfg.name;
  auto add_out = [&](const std::string& topic, const RecordView& r, std::string_view value,
                     uint32_t in_partition) -> std::vector<RecordHeader>& {
    const uint32_t n = partitions[topic];
    const uint32_t p = r.has_key ? partition_for_key(r.key, n) : in_partition % n;
    RecordIn rec;
    if (r.has_key) rec.key = r.key;
    rec.value = value;
    rec.timestamp_ms = r.timestamp_ms;
    Out& o = outs[{topic, p}];
    o.recs.push_back(rec);
    return o.headers.emplace_back();
  };
  for (auto& batch : polled) {
    TopicMetrics& tm = topic_metrics[batch.tp.topic];
    for (const RecordView& r : batch.records.records()) {
      consumed.fetch_add(1, std::memory_order_relaxed);
      std::string reason, error_kind;
      simdjson::dom::element doc;
      std::string_view value = r.value;
      bool keep = true;
      const std::vector<std::string>* targets = nullptr;
      if (parser.parse(value.data(), value.size()).get(doc)) {
        reason = "not valid JSON";
        error_kind = "not_json";
      }
      for (size_t i = 0; reason.empty() && keep && i < steps.size(); ++i) {
        const Step& st = steps[i];
        switch (st.kind) {
          case Step::kFilter:
            keep = st.filter.matches(doc);
            break;
          case Step::kMap: {
            ingest::TransformChain::Outcome to;
            std::string why;
            if (!st.chain.apply(doc, tin, &to, &why)) {
              reason = std::move(why);  // names the rule: "steps[1].map[0] (cast x): ..."
              error_kind = "transform";
            } else if (to.changed) {
              owned.emplace_back(to.json);
              value = owned.back();
              doc = to.doc;  // the chain parsed it already (valid until its next apply)
            }
            break;
          }
          case Step::kRoute:
            for (const auto& route : st.routes) {
              if (route.when.empty() || route.when.matches(doc)) {
                targets = &route.topics;
                break;
              }
            }
            break;
        }
      }
      if (!reason.empty()) {
        failed.fetch_add(1, std::memory_order_relaxed);
        tm.failed->inc();
        error_counter(batch.tp.topic, error_kind)->inc();
        if (!cfg.dead_letter_topic.empty()) {
          std::vector<RecordHeader>& hs =
              add_out(cfg.dead_letter_topic, r, r.value, batch.tp.partition);
          auto own = [&](std::string s) -> std::string_view {
            owned.push_back(std::move(s));
            return owned.back();
          };
          hs = {{"error.class", "permanent"},
                {"error.message", own(reason)},
                {"error", own(reason)},
                {"attempts", "1"},
                {"source.topic", own(batch.tp.topic)},
                {"source.partition", own(std::to_string(batch.tp.partition))},
                {"source.offset", own(std::to_string(r.offset))},
                {"processor", own(cfg.name)},
                {"failed_at", own(std::to_string(now))}};
          dead_lettered.fetch_add(1, std::memory_order_relaxed);
          tm.dead_lettered->inc();
        }
        continue;
      }
      if (!keep) {
        filtered.fetch_add(1, std::memory_order_relaxed);
        tm.filtered->inc();
        continue;
      }
      if (targets != nullptr) {
        for (const std::string& t : *targets) add_out(t, r, value, batch.tp.partition);
      } else if (!cfg.output.empty()) {
        add_out(cfg.output, r, value, batch.tp.partition);
      } else {
        filtered.fetch_add(1, std::memory_order_relaxed);  // no route matched, no output
        tm.filtered->inc();
        continue;
      }
      tm.processed->inc();
    }
    commits[batch.tp] = batch.records.next_offset;
  }
  // Append every output group; a failed group is retried (the ones done are not repeated).
  process::RetryPolicy retry;
  retry.max_retries = cfg.max_retries < 0 ? INT32_MAX : cfg.max_retries;
  retry.initial_backoff_ms = cfg.retry_backoff_ms;
  retry.max_backoff_ms = 10'000;
  std::mt19937_64 rng(std::random_device{}());
  for (auto& [tp, o] : outs) {
    for (size_t i = 0; i < o.recs.size(); ++i) {
      o.recs[i].headers = o.headers[i].empty() ? nullptr : o.headers[i].data();
      o.recs[i].header_count = static_cast<uint32_t>(o.headers[i].size());
    }
    for (int attempt = 1;; ++attempt) {
      auto r = log->append(tp.first, tp.second, o.recs.data(), o.recs.size());
      if (r.ok()) {
        produced.fetch_add(o.recs.size(), std::memory_order_relaxed);
        break;
      }
      error_counter(polled.front().tp.topic, "append")->inc();
      if (!retry.should_retry(process::ErrorClass::kTransient, attempt)) {
        spdlog::error("processor {}: appending to {}[{}] failed {} times: {}; the batch will be "
                      "processed again", cfg.name, tp.first, tp.second, attempt,
                      r.status().to_string());
        // Offsets are not committed: rewind so that the batch is polled again.
        for (const auto& b : polled) (void)consumer->seek(b.tp, b.records.records().front().offset);
        return running.load();
      }
      retries.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("processor {}: appending to {}[{}] failed: {}; retrying", cfg.name, tp.first,
                   tp.second, r.status().to_string());
      if (!sleep_for(retry.backoff_ms(attempt, rng))) return false;
    }
  }
  if (Status s = consumer->commit(commits); !s.ok()) {
    spdlog::warn("processor {}: committing offsets failed: {}", cfg.name, s.to_string());
  }
  batches.fetch_add(1, std::memory_order_relaxed);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (const auto& b : polled) topic_metrics[b.tp.topic].seconds->observe(secs);
  if (auto lag = consumer->lag(); lag.ok()) {
    for (const auto& [tp, n] : *lag) lag_gauges[{tp.topic, tp.partition}]->set(static_cast<double>(n));
  }
  return true;
}

}  // namespace spate
