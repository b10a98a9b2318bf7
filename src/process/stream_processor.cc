// KafkaStreamProcessor (include/spate/processor.h): per worker thread, poll → steps → flush →
// append outputs → commit offsets.
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
#include "process/circuit_breaker.h"
#include "process/consumer.h"
#include "process/event_access.h"
#include "process/retry.h"
#include "spate/metrics.h"
#include "spate/processor.h"

namespace spate {
namespace {

using Steady = std::chrono::steady_clock;

int64_t elapsed_ms(Steady::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - since).count();
}

// True if `v` lies in one of the fetch's buffers with at least SIMDJSON_PADDING allocated bytes
// after it (simdjson may read them; their content does not matter).
bool padded_in(const FetchResult& f, std::string_view v) {
  for (const auto& b : f.buffers_) {
    const char* begin = b->data();
    const char* end = begin + b->size();
    if (v.data() >= begin && v.data() <= end) {
      return static_cast<size_t>(end - v.data()) >= v.size() + simdjson::SIMDJSON_PADDING;
    }
  }
  return false;
}

// Create the steps of a processor through the registry; every problem at once.
Result<std::vector<std::unique_ptr<EventProcessor>>> create_steps(const ProcessorConfig& c, Log* log,
                                                                   MetricsRegistry* metrics,
                                                                   uint32_t worker,
                                                                   bool validate_only) {
  std::vector<std::unique_ptr<EventProcessor>> out;
  std::string errors;
  for (const ProcessorStepConfig& sc : c.steps) {
    const StepFactory* f = ProcessorRegistry::global().find(sc.kind);
    if (f == nullptr) {
      std::string known;
      for (const auto& [n, d] : ProcessorRegistry::global().types()) known += (known.empty() ? "" : ", ") + n;
      errors += (errors.empty() ? "" : "\n") +
                fmt::format("{}:{}:{}: {}: unknown step type \"{}\" (known: {}; a plugin's types "
                            "need `plugins:`)", sc.file, sc.line, sc.column, sc.path, sc.kind, known);
      continue;
    }
    StepOptions opts(&sc.options, sc.file, sc.path);
    StepContext ctx;
    ctx.processor = &c;
    ctx.step = &sc;
    ctx.options = &opts;
    ctx.log = log;
    ctx.metrics = metrics;
    ctx.worker = worker;
    ctx.validate_only = validate_only;
    auto step = (*f)(ctx);
    if (!step.ok()) {
      errors += (errors.empty() ? "" : "\n") + step.status().message();
      continue;
    }
    out.push_back(std::move(step).value());
  }
  if (!errors.empty()) return ConfigError(errors);
  return out;
}

}  // namespace

Status validate_processor(const ProcessorConfig& config) {
  return create_steps(config, nullptr, nullptr, 0, true).status();
}

struct KafkaStreamProcessor::Impl {
  ProcessorConfig cfg;
  Log* log;
  MetricsRegistry* metrics;
  std::map<std::string, uint32_t> partitions;  // output topics

  // One breaker per step that names a downstream (shared by the workers).
  struct Downstream {
    size_t step = 0;
    std::string name;
    std::unique_ptr<process::CircuitBreaker> breaker;
  };
  std::vector<Downstream> downstreams;
  std::vector<process::CircuitBreaker*> breaker_of_step;  // nullptr: no downstream

  struct TopicMetrics {
    Counter* processed;
    Counter* filtered;
    Counter* failed;
    Counter* dead_lettered;
    Histogram* seconds;
  };
  std::map<std::string, TopicMetrics> topic_metrics;  // read-only once started
  Counter* slow_batches = nullptr;

  struct Worker;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<bool> running{false};
  std::mutex mu;
  std::condition_variable cv;

  std::atomic<uint64_t> consumed{0}, produced{0}, filtered{0}, dead_lettered{0}, failed{0},
      retries{0}, batches{0}, pauses{0}, aborts{0};
  std::atomic<int> paused_workers{0};

  // Wait `ms` or until stop(); false if stopping.
  bool sleep_for(int64_t ms) {
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return !running.load(); });
    return running.load();
  }
};

struct KafkaStreamProcessor::Impl::Worker {
  Impl* m = nullptr;
  uint32_t index = 0;
  std::vector<std::unique_ptr<EventProcessor>> steps;
  std::unique_ptr<process::GroupConsumer> consumer;
  std::map<std::pair<std::string, uint32_t>, Gauge*> lag_gauges;
  // The lag gauge of a partition (created on first use: with cluster-assigned partitions the
  // assignment changes while the processor runs).
  Gauge* lag_gauge(const process::TopicPartition& tp);
  std::map<std::string, Counter*> error_counters;  // "topic\0error"
  std::thread thread;
  std::mt19937_64 rng{std::random_device{}()};
  std::mt19937_64 rng_committer{std::random_device{}()};  // the committer thread's
  simdjson::dom::parser parser;
  ProcessorEvent ev;
  std::string group;
  std::unique_ptr<TransactionalProducer> txn;  // exactly_once
  int txn_failures = 0;                        // in a row, for the backoff
  std::atomic<int64_t> lag{0};                 // summed over the assignment, last batch

  Counter* error_counter(const std::string& topic, const std::string& error) {
    auto key = topic + '\0' + error;
    auto it = error_counters.find(key);
    if (it != error_counters.end()) return it->second;
    Counter* c = &m->metrics->counter("stream_processing_errors_total", "Events that failed a processor",
                                      {{"topic", topic}, {"error", error}, {"processor", m->cfg.name}});
    error_counters.emplace(key, c);
    return c;
  }

  void run();
  struct Out {
    std::vector<RecordIn> recs;
    std::vector<std::vector<RecordHeader>> headers;  // dead letters' headers (index by rec)
  };
  using Outs = std::map<std::pair<std::string, uint32_t>, Out>;
  // One polled batch and everything its outputs point into, from poll to commit. Exactly-once
  // pipelines two: while the committer thread commits one batch's transaction (fsyncs), the
  // worker processes the next into the other slot. Slots are never moved (outputs hold views
  // into `polled` and `texts`); `outs` keeps its groups' capacity from batch to batch (a group
  // left empty is skipped).
  struct Slot {
    std::vector<process::PolledBatch> polled;
    TextArena texts;  // replaced event texts and header values of this batch
    Outs outs;
    std::map<process::TopicPartition, int64_t> commits;
    uint64_t consumed = 0;  // events taken from `polled`, counted when the batch is done
    Steady::time_point started;
    // Set at hand-off (worker thread): consumer->committed(commits' first partition), and the
    // offsets to commit by topic (at-least-once: only those that move forward).
    int64_t prior_committed = 0;
    std::map<std::string, std::map<uint32_t, int64_t>> offsets_by_topic;
    // Set by the committer (at-least-once): failed appends, and whether the offsets were stored.
    uint64_t append_errors = 0;
    bool offsets_committed = false;
  };
  Slot slots[2];
  Slot* cur = &slots[0];  // the slot process() fills

  std::string_view own(std::string_view s) { return cur->texts.add(s); }

  // The committer thread: delivers the handed slot (exactly-once: commits its transaction;
  // at-least-once: appends its outputs, then commits its offsets).
  std::thread committer;
  std::mutex commit_mu;
  std::condition_variable commit_cv;
  Slot* to_commit = nullptr;  // guarded by commit_mu: handed, not yet committed
  bool commit_done = false;   // guarded by commit_mu: commit_status is the handed slot's
  bool committer_stop = false;
  Status commit_status;
  void committer_loop();
  void hand_to_committer(Slot& s);
  Status await_commit(bool block, bool* done);

  Status commit_transaction(const Slot& s);
  Status append_and_commit(Slot& s);
  enum class BatchEnd { kCommitted, kReady, kRetry, kStopped };
  // Processes `cur` (polled already): steps, flush, outputs; kReady: ready for the committer.
  BatchEnd process();
  // `s` delivered (or failed: `st`); `next`, if not null, is a processed slot not handed yet,
  // abandoned too when `s` failed.
  BatchEnd finish_delivery(Slot& s, const Status& st, Slot* next);
  void finish_batch(Slot& s);
  process::RetryPolicy retry_policy() const {
    process::RetryPolicy retry;
    retry.max_retries = m->cfg.max_retries < 0 ? INT32_MAX : m->cfg.max_retries;
    retry.initial_backoff_ms = m->cfg.retry_backoff_ms;
    retry.max_backoff_ms = 10'000;
    return retry;
  }
  void rewind(const std::vector<process::PolledBatch>& polled);
  /// Move every assigned partition to the offset the log has committed for the group.
  Status resync_positions();
  bool resync = false;  // a transaction's outcome was unknown: resync before polling again
  BatchEnd pause(const std::vector<process::PolledBatch>& polled, process::CircuitBreaker* b);
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
  const std::string group = m.cfg.group.empty() ? "spate.processor." + m.cfg.name : m.cfg.group;
  for (uint32_t w = 0; w < m.cfg.workers; ++w) {
    auto wk = std::make_unique<Impl::Worker>();
    wk->m = &m;
    wk->index = w;
    SPATE_ASSIGN_OR_RETURN(wk->steps, create_steps(m.cfg, m.log, m.metrics, w, false));
    process::ConsumerConfig cc;
    cc.group = group;
    cc.topics = m.cfg.inputs;
    // Workers are members of the group of their own: replica r's worker w is member
    // r * workers + w of replicas * workers.
    cc.replica = m.cfg.replica * m.cfg.workers + w;
    cc.replicas = m.cfg.replicas * m.cfg.workers;
    cc.start_at_latest = m.cfg.start_at_latest;
    cc.max_records = m.cfg.batch_size;
    cc.max_bytes = m.cfg.buffer_size;
    cc.max_wait_ms = m.cfg.poll_timeout_ms;
    // On a log with a group coordinator (Kafka) the cluster assigns partitions, unless the
    // assignment is explicit (replicas) or exactly-once (transactional ids per member index).
    cc.group_membership = !m.cfg.exactly_once && m.cfg.replicas == 1;
    cc.group_options.session_timeout_ms = m.cfg.session_timeout_ms;
    cc.group_options.max_poll_interval_ms = m.cfg.max_poll_interval_ms;
    wk->group = group;
    if (m.cfg.exactly_once) {
      // One transactional id per group member: a restarted member fences its predecessor and
      // aborts what it left open. Fence first, read the committed offsets after: a predecessor
      // still running (another process) cannot commit between the two, so this member never
      // starts from offsets that are already stale.
      auto txn = m.log->transactional_producer(fmt::format("{}#{}/{}", group, cc.replica, cc.replicas));
      if (!txn.ok()) {
        return txn.status().with_context("processor " + m.cfg.name + ": exactly_once needs a log "
                                         "with transactions");
      }
      wk->txn = std::move(txn).value();
    }
    wk->consumer = std::make_unique<process::GroupConsumer>(m.log, cc);
    SPATE_RETURN_IF_ERROR(wk->consumer->open().with_context("processor " + m.cfg.name));
    ProcessorEventAccess::texts(wk->ev) = &wk->cur->texts;
    m.workers.push_back(std::move(wk));
  }
  // Output topics must exist.
  std::vector<std::string> outputs;
  if (!m.cfg.output.empty()) outputs.push_back(m.cfg.output);
  if (!m.cfg.dead_letter_topic.empty()) outputs.push_back(m.cfg.dead_letter_topic);
  for (const auto& s : m.workers.front()->steps) {
    auto t = s->output_topics();
    outputs.insert(outputs.end(), t.begin(), t.end());
  }
  for (const std::string& t : outputs) {
    auto info = m.log->describe_topic(t);
    if (!info.ok()) return info.status().with_context("processor " + m.cfg.name + " output");
    m.partitions[t] = info->partitions;
  }
  // Breakers, one per step with a downstream.
  m.breaker_of_step.assign(m.cfg.steps.size(), nullptr);
  for (size_t i = 0; i < m.workers.front()->steps.size(); ++i) {
    std::string d = m.workers.front()->steps[i]->downstream();
    if (d.empty()) continue;
    process::BreakerConfig bc;
    bc.failure_rate = m.cfg.breaker.failure_rate;
    bc.window = m.cfg.breaker.window;
    bc.min_calls = m.cfg.breaker.min_calls;
    bc.consecutive_failures = m.cfg.breaker.consecutive_failures;
    bc.open_ms = m.cfg.breaker.open_ms;
    bc.half_open_probes = m.cfg.breaker.half_open_probes;
    Gauge* g = &m.metrics->gauge("stream_circuit_breaker_state",
                                 "Circuit breaker of a processor's downstream: 0 closed, 1 open, 2 half-open",
                                 {{"processor", m.cfg.name}, {"downstream", d}});
    Counter* tr = &m.metrics->counter("stream_circuit_breaker_transitions_total",
                                      "Circuit breaker state changes",
                                      {{"processor", m.cfg.name}, {"downstream", d}});
    std::string name = m.cfg.name, step_path = m.cfg.steps[i].path;
    auto listener = [g, tr, name, d](process::BreakerState from, process::BreakerState to) {
      g->set(static_cast<double>(static_cast<int>(to)));
      tr->inc();
      spdlog::warn("processor {}: circuit breaker for {} {} -> {}", name, d,
                   process::breaker_state_name(from), process::breaker_state_name(to));
    };
    Impl::Downstream ds;
    ds.step = i;
    ds.name = d;
    ds.breaker = std::make_unique<process::CircuitBreaker>(bc, system_clock(), listener);
    g->set(0);
    m.breaker_of_step[i] = ds.breaker.get();
    m.downstreams.push_back(std::move(ds));
  }
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
    // The catch-all error class exists from the start (at 0), so that rates and alert rules
    // over stream_processing_errors_total see a series before the first failure.
    (void)m.metrics->counter("stream_processing_errors_total", "Events that failed a processor",
                             {{"topic", t}, {"error", "error"}, {"processor", m.cfg.name}});
  }
  m.slow_batches = &m.metrics->counter("stream_poll_interval_exceeded_total",
                                       "Batches that took longer than max_poll_interval",
                                       {{"processor", m.cfg.name}});
  for (auto& wk : m.workers) {
    for (const auto& tp : wk->consumer->assignment()) (void)wk->lag_gauge(tp);
    if (auto l = wk->consumer->lag(); l.ok()) {  // the backlog before the first batch
      int64_t sum = 0;
      for (const auto& [tp, n] : *l) {
        wk->lag_gauge(tp)->set(static_cast<double>(n));
        sum += n;
      }
      wk->lag.store(sum);
    }
  }
  return Status::Ok();
}

Status KafkaStreamProcessor::start() {
  Impl& m = *impl_;
  if (m.workers.empty()) return Internal("KafkaStreamProcessor::start() before initialize()");
  if (m.running.exchange(true)) return Status::Ok();
  for (auto& wk : m.workers) {
    Impl::Worker* w = wk.get();
    w->thread = std::thread([w] { w->run(); });
  }
  return Status::Ok();
}

void KafkaStreamProcessor::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.mu);
    m.running.store(false);
  }
  m.cv.notify_all();
  for (auto& wk : m.workers) {
    if (wk->thread.joinable()) wk->thread.join();
  }
}

ProcessorStats KafkaStreamProcessor::stats() const {
  const Impl& m = *impl_;
  ProcessorStats s;
  s.consumed = m.consumed.load();
  s.produced = m.produced.load();
  s.filtered = m.filtered.load();
  s.dead_lettered = m.dead_lettered.load();
  s.failed = m.failed.load();
  s.retries = m.retries.load();
  s.batches = m.batches.load();
  s.pauses = m.pauses.load();
  s.aborts = m.aborts.load();
  s.paused = m.paused_workers.load() > 0;
  return s;
}

std::vector<DownstreamStatus> KafkaStreamProcessor::downstreams() const {
  std::vector<DownstreamStatus> out;
  for (const auto& d : impl_->downstreams) {
    DownstreamStatus s;
    s.step = impl_->cfg.steps[d.step].path;
    s.downstream = d.name;
    s.state = process::breaker_state_name(d.breaker->state());
    s.transitions = d.breaker->transitions();
    s.retry_in_ms = d.breaker->retry_in_ms();
    out.push_back(std::move(s));
  }
  return out;
}

Gauge* KafkaStreamProcessor::Impl::Worker::lag_gauge(const process::TopicPartition& tp) {
  Gauge*& g = lag_gauges[{tp.topic, tp.partition}];
  if (g == nullptr) {
    g = &m->metrics->gauge(
        "stream_consumer_lag", "Records of a partition not yet committed by the processor",
        {{"topic", tp.topic}, {"partition", std::to_string(tp.partition)}, {"processor", m->cfg.name}});
  }
  return g;
}

size_t KafkaStreamProcessor::assigned_partitions() const {
  size_t n = 0;
  for (const auto& w : impl_->workers) n += w->consumer ? w->consumer->assigned_count() : 0;
  return n;
}

int64_t KafkaStreamProcessor::total_lag() const {
  int64_t sum = 0;
  for (const auto& w : impl_->workers) sum += w->lag.load(std::memory_order_relaxed);
  return sum;
}

std::string KafkaStreamProcessor::steps_status_json() const {
  std::string out;
  if (impl_->workers.empty()) return out;
  const auto& steps = impl_->workers.front()->steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    std::string s = steps[i]->status_json();
    if (s.empty()) continue;
    out += fmt::format("{}\"{}\":{{{}}}", out.empty() ? "" : ",", impl_->cfg.steps[i].path, s);
  }
  return out;
}

void KafkaStreamProcessor::Impl::Worker::run() {
  // Pipelined: batch N is delivered by the committer thread — exactly-once: its transaction
  // (appends, the fsyncs of its data and of its commit record, the markers); at-least-once:
  // its appends, then its offsets (fsynced) — while this thread polls and processes batch N+1.
  // N+1 is handed over only once N's delivery has returned, so a worker's deliveries (and
  // transactions) stay one at a time and in order, and the consumer (used by this thread
  // only) learns what was committed before the next delivery starts. If N fails, N+1
  // (processed, nothing of it written to the log) is abandoned with it: both are rewound and
  // polled again.
  committer = std::thread([this] { committer_loop(); });
  Slot* in_flight = nullptr;
  // Waits for (block) or checks on the in-flight delivery; kReady: still running.
  auto settle = [&](bool block, Slot* next) {
    bool done = false;
    Status st = await_commit(block, &done);
    if (!done) return BatchEnd::kReady;
    Slot* s = in_flight;
    in_flight = nullptr;
    return finish_delivery(*s, st, next);
  };
  while (m->running.load()) {
    if (in_flight != nullptr && settle(false, nullptr) == BatchEnd::kStopped) break;
    if (resync && in_flight == nullptr) {
      if (Status s = resync_positions(); !s.ok()) {
        spdlog::warn("processor {}: reading committed offsets: {}", m->cfg.name, s.to_string());
        if (!m->sleep_for(500)) break;
        continue;
      }
      resync = false;
    }
    // With a batch in flight, poll without waiting: if there is nothing to process meanwhile,
    // wait for the delivery instead (its counts and lag are then up to date at once).
    auto polled = consumer->poll(in_flight != nullptr ? 0 : -1);
    if (!polled.ok()) {
      spdlog::warn("processor {}: poll failed: {}", m->cfg.name, polled.status().to_string());
      if (!m->sleep_for(500)) break;
      continue;
    }
    if (polled->empty()) {
      if (in_flight != nullptr && settle(true, nullptr) == BatchEnd::kStopped) break;
      continue;
    }
    cur->polled = std::move(polled).value();
    BatchEnd e = process();
    if (e == BatchEnd::kStopped) break;  // `cur` unfinished: not committed
    if (e == BatchEnd::kRetry) continue;
    if (in_flight != nullptr) {
      e = settle(true, cur);
      if (e == BatchEnd::kStopped) break;
      if (e == BatchEnd::kRetry) continue;  // `cur` was abandoned with the failed one
    }
    hand_to_committer(*cur);
    in_flight = cur;
    cur = cur == &slots[0] ? &slots[1] : &slots[0];
    ProcessorEventAccess::texts(ev) = &cur->texts;
  }
  if (in_flight != nullptr) (void)settle(true, nullptr);  // stop drains the handed batch
  {
    std::lock_guard lk(commit_mu);
    committer_stop = true;
  }
  commit_cv.notify_all();
  committer.join();
}

void KafkaStreamProcessor::Impl::Worker::committer_loop() {
  std::unique_lock lk(commit_mu);
  while (true) {
    commit_cv.wait(lk, [&] { return committer_stop || to_commit != nullptr; });
    if (to_commit == nullptr) return;
    Slot* s = to_commit;
    lk.unlock();
    Status st = txn ? commit_transaction(*s) : append_and_commit(*s);
    lk.lock();
    to_commit = nullptr;
    commit_status = std::move(st);
    commit_done = true;
    commit_cv.notify_all();
  }
}

void KafkaStreamProcessor::Impl::Worker::hand_to_committer(Slot& s) {
  s.prior_committed = s.commits.empty() ? 0 : consumer->committed(s.commits.begin()->first);
  s.offsets_by_topic.clear();
  for (const auto& [tp, off] : s.commits) {
    if (txn || off > consumer->committed(tp)) s.offsets_by_topic[tp.topic][tp.partition] = off;
  }
  s.append_errors = 0;
  s.offsets_committed = false;
  {
    std::lock_guard lk(commit_mu);
    to_commit = &s;
    commit_done = false;
  }
  commit_cv.notify_all();
}

Status KafkaStreamProcessor::Impl::Worker::await_commit(bool block, bool* done) {
  std::unique_lock lk(commit_mu);
  if (block) commit_cv.wait(lk, [&] { return commit_done; });
  *done = commit_done;
  if (!commit_done) return Status::Ok();
  commit_done = false;
  return std::move(commit_status);
}

KafkaStreamProcessor::Impl::Worker::BatchEnd KafkaStreamProcessor::Impl::Worker::finish_delivery(
    Slot& s, const Status& st, Slot* next) {
  m->consumed.fetch_add(std::exchange(s.consumed, 0), std::memory_order_relaxed);
  if (!txn) {
    if (s.append_errors > 0) error_counter(s.polled.front().tp.topic, "append")->inc(s.append_errors);
    if (!st.ok()) {  // appends failed (logged by the committer): offsets are not committed
      if (next != nullptr) {
        m->consumed.fetch_add(std::exchange(next->consumed, 0), std::memory_order_relaxed);
        rewind(next->polled);  // first: where both hold a partition, s's start wins
      }
      rewind(s.polled);
      return m->running.load() ? BatchEnd::kRetry : BatchEnd::kStopped;
    }
    if (s.offsets_committed) consumer->mark_committed(s.commits);
    finish_batch(s);
    return BatchEnd::kCommitted;
  }
  if (!st.ok()) {
    m->aborts.fetch_add(1, std::memory_order_relaxed);
    error_counter(s.polled.front().tp.topic, "transaction")->inc();
    if (next != nullptr) m->consumed.fetch_add(std::exchange(next->consumed, 0), std::memory_order_relaxed);
    if (st.code() == Errc::kFenced) {
      spdlog::error("processor {}: {}; this worker stops", m->cfg.name, st.to_string());
      return BatchEnd::kStopped;
    }
    spdlog::warn("processor {}: transaction failed: {}; the batch will be processed again",
                 m->cfg.name, st.to_string());
    if (next != nullptr) rewind(next->polled);  // first: where both hold a partition, s's start wins
    rewind(s.polled);
    // The failed call may still have committed (a remote owner that went away after its
    // commit point and recovered it): continue from what the log says was committed, not
    // from the batch start, or the batch would be output twice.
    resync = true;
    return m->sleep_for(retry_policy().backoff_ms(++txn_failures, rng)) ? BatchEnd::kRetry
                                                                        : BatchEnd::kStopped;
  }
  txn_failures = 0;
  consumer->mark_committed(s.commits);
  finish_batch(s);
  return BatchEnd::kCommitted;
}

void KafkaStreamProcessor::Impl::Worker::finish_batch(Slot& s) {
  const ProcessorConfig& cfg = m->cfg;
  m->batches.fetch_add(1, std::memory_order_relaxed);
  const double secs = std::chrono::duration<double>(Steady::now() - s.started).count();
  if (secs * 1000 > static_cast<double>(cfg.max_poll_interval_ms)) {
    m->slow_batches->inc();
    spdlog::warn("processor {}: a batch took {:.1f} s, longer than max_poll_interval ({} ms)",
                 cfg.name, secs, cfg.max_poll_interval_ms);
  }
  for (const auto& b : s.polled) m->topic_metrics[b.tp.topic].seconds->observe(secs);
  if (auto l = consumer->lag(); l.ok()) {
    int64_t sum = 0;
    for (const auto& [tp, n] : *l) {
      lag_gauge(tp)->set(static_cast<double>(n));
      sum += n;
    }
    lag.store(sum, std::memory_order_relaxed);
  }
}

// One transaction: every output group, then the input offsets, then commit. If the commit
// call fails, the coordinator may still have committed it (the failure came after the commit
// point): the committed offsets tell, so that the batch is neither lost nor repeated. Runs on
// the committer thread: touches only `s`, the transactional producer and the log.
Status KafkaStreamProcessor::Impl::Worker::commit_transaction(const Slot& s) {
  const Outs& outs = s.outs;
  const std::map<process::TopicPartition, int64_t>& commits = s.commits;
  auto fail = [&](Status e) {
    if (e.code() != Errc::kFenced) (void)txn->abort();
    return e;
  };
  SPATE_RETURN_IF_ERROR(txn->begin());
  size_t records = 0;
  for (const auto& [tp, o] : outs) {
    if (o.recs.empty()) continue;  // a group of an earlier batch of this slot
    auto r = txn->append(tp.first, tp.second, o.recs.data(), o.recs.size());
    if (!r.ok()) return fail(r.status().with_context(fmt::format("appending to {}[{}]", tp.first, tp.second)));
    records += o.recs.size();
  }
  for (const auto& [topic, offs] : s.offsets_by_topic) {
    if (Status s = txn->send_offsets(group, topic, offs); !s.ok()) return fail(s);
  }
  Status st = txn->commit();
  if (!st.ok() && !commits.empty()) {
    const auto& [tp, off] = *commits.begin();
    auto c = m->log->committed_offset(group, tp.topic, tp.partition);
    if (c.ok() && c->has_value() && **c == off && s.prior_committed < off) {
      spdlog::warn("processor {}: commit reported {}, but the transaction is committed",
                   m->cfg.name, st.to_string());
      st = Status::Ok();
    }
  }
  if (!st.ok()) return fail(st);
  m->produced.fetch_add(records, std::memory_order_relaxed);
  return Status::Ok();
}

// At-least-once: append every output group (a failed group is retried; the ones done are not
// repeated), then commit the input offsets — only after the outputs are in the log. Runs on
// the committer thread: touches only `s` and the log.
Status KafkaStreamProcessor::Impl::Worker::append_and_commit(Slot& s) {
  const ProcessorConfig& cfg = m->cfg;
  const process::RetryPolicy retry = retry_policy();
  for (auto& [tp, o] : s.outs) {
    if (o.recs.empty()) continue;
    for (int attempt = 1;; ++attempt) {
      auto r = m->log->append(tp.first, tp.second, o.recs.data(), o.recs.size());
      if (r.ok()) {
        m->produced.fetch_add(o.recs.size(), std::memory_order_relaxed);
        break;
      }
      ++s.append_errors;
      if (!retry.should_retry(process::ErrorClass::kTransient, attempt)) {
        spdlog::error("processor {}: appending to {}[{}] failed {} times: {}; the batch will be "
                      "processed again", cfg.name, tp.first, tp.second, attempt,
                      r.status().to_string());
        return r.status();
      }
      m->retries.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("processor {}: appending to {}[{}] failed: {}; retrying", cfg.name, tp.first,
                   tp.second, r.status().to_string());
      if (!m->sleep_for(retry.backoff_ms(attempt, rng_committer))) return Unavailable("stopping");
    }
  }
  for (const auto& [topic, offs] : s.offsets_by_topic) {
    if (Status st = consumer->commit_through(topic, offs); !st.ok()) {
      spdlog::warn("processor {}: committing offsets failed: {}", cfg.name, st.to_string());
      return Status::Ok();  // the outputs are in; the offsets are committed with a later batch
    }
  }
  s.offsets_committed = true;
  return Status::Ok();
}

Status KafkaStreamProcessor::Impl::Worker::resync_positions() {
  std::map<process::TopicPartition, int64_t> at;
  for (const auto& tp : consumer->assignment()) {
    SPATE_ASSIGN_OR_RETURN(std::optional<int64_t> c,
                           m->log->committed_offset(group, tp.topic, tp.partition));
    if (c) at[tp] = *c;
  }
  for (const auto& [tp, off] : at) SPATE_RETURN_IF_ERROR(consumer->seek(tp, off));
  consumer->mark_committed(at);
  return Status::Ok();
}

void KafkaStreamProcessor::Impl::Worker::rewind(const std::vector<process::PolledBatch>& polled) {
  for (auto& s : steps) s->discard();
  for (const auto& b : polled) {
    if (!b.records.records().empty()) (void)consumer->seek(b.tp, b.records.records().front().offset);
  }
}

// A downstream's breaker refused a call: abandon the batch (nothing of it is committed; the
// backlog stays in the log) and wait for the breaker's cool-down before polling again.
KafkaStreamProcessor::Impl::Worker::BatchEnd KafkaStreamProcessor::Impl::Worker::pause(
    const std::vector<process::PolledBatch>& polled, process::CircuitBreaker* b) {
  rewind(polled);
  m->pauses.fetch_add(1, std::memory_order_relaxed);
  m->paused_workers.fetch_add(1);
  const int64_t wait = std::clamp<int64_t>(b->retry_in_ms(), 10, 1000);
  const bool go_on = m->sleep_for(wait);
  m->paused_workers.fetch_sub(1);
  return go_on ? BatchEnd::kRetry : BatchEnd::kStopped;
}

KafkaStreamProcessor::Impl::Worker::BatchEnd KafkaStreamProcessor::Impl::Worker::process() {
  const ProcessorConfig& cfg = m->cfg;
  std::vector<process::PolledBatch>& polled = cur->polled;
  cur->started = Steady::now();
  cur->texts.clear();
  Outs& outs = cur->outs;
  for (auto& [tp, o] : outs) {  // keep the groups and their capacity
    o.recs.clear();
    o.headers.clear();
  }
  std::map<process::TopicPartition, int64_t>& commits = cur->commits;
  commits.clear();
  // Every event of the batch, for flush failures: (polled batch, record).
  std::vector<std::pair<const process::PolledBatch*, const RecordView*>> events;
  // Events that passed the chain: their outputs are added once the steps have flushed (a sink
  // may still reject one).
  struct Emit {
    size_t index;
    const std::vector<std::string>* targets;  // nullptr: the processor's output
    std::string_view value;
  };
  std::vector<Emit> emits;
  std::vector<bool> rejected;
  const int64_t now = system_clock()->now_ms();
  const process::RetryPolicy retry = retry_policy();

  // add_out's lookups without a map search (and pair<string> key) per record: output topic ->
  // partition count, and (topic, partition) -> its group in `outs` (map nodes are stable). The
  // key is the topic string's address — the topics passed are the config's, stable for the
  // batch; the same name at another address is just another entry for the same group. A batch
  // has a few groups, so a linear search.
  struct TopicSlot {
    const std::string* topic;
    uint32_t partitions;
  };
  struct OutSlot {
    const std::string* topic;
    uint32_t partition;
    Out* out;
  };
  std::vector<TopicSlot> topic_slots;
  std::vector<OutSlot> out_slots;
  auto add_out = [&](const std::string& topic, const RecordView& r, std::string_view value,
                     uint32_t in_partition) -> std::vector<RecordHeader>& {
    uint32_t n = 0;
    for (const TopicSlot& t : topic_slots) {
      if (t.topic == &topic) {
        n = t.partitions;
        break;
      }
    }
    if (n == 0) {
      n = m->partitions[topic];
      topic_slots.push_back({&topic, n});
    }
    const uint32_t p = r.has_key ? partition_for_key(r.key, n) : in_partition % n;
    Out* o = nullptr;
    for (const OutSlot& s : out_slots) {
      if (s.topic == &topic && s.partition == p) {
        o = s.out;
        break;
      }
    }
    if (o == nullptr) {
      o = &outs[{topic, p}];
      out_slots.push_back({&topic, p, o});
    }
    RecordIn rec;
    if (r.has_key) rec.key = r.key;
    rec.value = value;
    rec.timestamp_ms = r.timestamp_ms;
    o->recs.push_back(rec);
    return o->headers.emplace_back();
  };
  // A permanent failure (or retries exhausted): dead letter, or count and skip.
  auto fail = [&](const process::PolledBatch& batch, const RecordView& r, const StepError& err,
                  int attempts, int64_t first_failure, int64_t last_failure) {
    TopicMetrics& tm = m->topic_metrics[batch.tp.topic];
    m->failed.fetch_add(1, std::memory_order_relaxed);
    tm.failed->inc();
    error_counter(batch.tp.topic, err.kind.empty() ? "error" : err.kind)->inc();
    if (cfg.dead_letter_topic.empty()) return;
    std::vector<RecordHeader>& hs = add_out(cfg.dead_letter_topic, r, r.value, batch.tp.partition);
    std::string_view msg = own(err.message);
    hs = {{"error.class", err.transient ? "transient" : "permanent"},
          {"error.kind", own(err.kind)},
          {"error.message", msg},
          {"error", msg},
          {"attempts", own(std::to_string(attempts))},
          {"source.topic", own(batch.tp.topic)},
          {"source.partition", own(std::to_string(batch.tp.partition))},
          {"source.offset", own(std::to_string(r.offset))},
          {"processor", own(cfg.name)},
          {"first_failure_at", own(std::to_string(first_failure))},
          {"failed_at", own(std::to_string(last_failure))}};
    m->dead_lettered.fetch_add(1, std::memory_order_relaxed);
    tm.dead_lettered->inc();
  };

  // Events taken from the batch, added to the shared `consumed` once when process() returns
  // (however it returns) rather than per event: the counters are shared by the workers, and
  // an atomic add per event on a shared cache line costs the second worker its speed-up.
  struct CountOnExit {
    std::atomic<uint64_t>& to;
    uint64_t n = 0;
    ~CountOnExit() {
      if (n != 0) to.fetch_add(n, std::memory_order_relaxed);
    }
  } consumed{m->consumed};
  size_t total = 0;
  for (const auto& b : polled) total += b.records.records().size();
  events.reserve(total);
  emits.reserve(total);
  for (auto& batch : polled) {
    TopicMetrics& tm = m->topic_metrics[batch.tp.topic];
    for (const RecordView& r : batch.records.records()) {
      ++consumed.n;
      const size_t index = events.size();
      events.emplace_back(&batch, &r);
      simdjson::dom::element doc;
      // In place (no copy into the parser's padded buffer) when the fetch buffer holding the
      // value has SIMDJSON_PADDING readable bytes after it — every record but a buffer's last.
      if (parser.parse(r.value.data(), r.value.size(), !padded_in(batch.records, r.value)).get(doc)) {
        fail(batch, r, StepError{false, "not_json", "not valid JSON"}, 1, now, now);
        continue;
      }
      ProcessorEventAccess::reset(ev, batch.tp.topic, batch.tp.partition, r, doc, index);
      StepOutcome outcome = StepOutcome::kPass;
      for (size_t i = 0; i < steps.size() && outcome == StepOutcome::kPass; ++i) {
        process::CircuitBreaker* breaker =
            steps[i]->calls_downstream_in_flush_only() ? nullptr : m->breaker_of_step[i];
        StepError err;
        int attempts = 0;
        int64_t first_failure = 0;
        Steady::time_point first_try;  // set at the first transient failure (no clock read per event)
        for (;;) {
          if (breaker != nullptr && !breaker->allow()) return pause(polled, breaker);
          err = StepError{};
          ++attempts;
          outcome = steps[i]->process(ev, &err);
          const bool transient = outcome == StepOutcome::kError && err.transient;
          if (breaker != nullptr) transient ? breaker->record_failure() : breaker->record_success();
          if (!transient) break;
          if (first_failure == 0) {
            first_failure = system_clock()->now_ms();
            first_try = Steady::now();
          }
          if (!retry.should_retry(process::ErrorClass::kTransient, attempts) ||
              elapsed_ms(first_try) >= cfg.processing_timeout_ms) {
            break;
          }
          m->retries.fetch_add(1, std::memory_order_relaxed);
          if (!m->sleep_for(retry.backoff_ms(attempts, rng))) {
            rewind(polled);
            return BatchEnd::kStopped;
          }
        }
        if (outcome == StepOutcome::kError) {
          if (first_failure == 0) first_failure = system_clock()->now_ms();
          fail(batch, r, err, attempts, first_failure, system_clock()->now_ms());
        }
      }
      if (outcome == StepOutcome::kError) continue;
      if (outcome == StepOutcome::kDrop) {
        m->filtered.fetch_add(1, std::memory_order_relaxed);
        tm.filtered->inc();
        continue;
      }
      emits.push_back({index, ProcessorEventAccess::targets(ev), ev.json()});
    }
    commits[batch.tp] = batch.records.next_offset;
  }

  // Flush the steps (sinks write what they buffered); a failed flush is retried, then the
  // batch is abandoned and polled again (sinks write idempotently, keyed by event id).
  for (size_t i = 0; i < steps.size(); ++i) {
    process::CircuitBreaker* breaker = m->breaker_of_step[i];
    const auto first_try = Steady::now();
    for (int attempt = 1;; ++attempt) {
      if (breaker != nullptr && !breaker->allow()) return pause(polled, breaker);
      std::vector<FlushFailure> failures;
      Status s = steps[i]->flush(&failures);
      if (breaker != nullptr) s.ok() ? breaker->record_success() : breaker->record_failure();
      if (s.ok()) {
        const int64_t t = system_clock()->now_ms();
        for (const FlushFailure& f : failures) {
          if (f.index >= events.size()) continue;
          if (rejected.empty()) rejected.assign(events.size(), false);
          if (rejected[f.index]) continue;
          rejected[f.index] = true;
          fail(*events[f.index].first, *events[f.index].second, f.error, 1, t, t);
        }
        break;
      }
      error_counter(polled.front().tp.topic, "flush")->inc();
      spdlog::warn("processor {}: {} flush failed: {}", cfg.name, cfg.steps[i].path, s.to_string());
      if (elapsed_ms(first_try) >= cfg.processing_timeout_ms) {
        rewind(polled);  // start the batch again (idempotent writes make that safe)
        return m->sleep_for(retry.backoff_ms(attempt, rng)) ? BatchEnd::kRetry : BatchEnd::kStopped;
      }
      m->retries.fetch_add(1, std::memory_order_relaxed);
      if (!m->sleep_for(retry.backoff_ms(attempt, rng))) {
        rewind(polled);
        return BatchEnd::kStopped;
      }
    }
  }

  const process::PolledBatch* last_batch = nullptr;  // the emits come in batch order
  Counter* processed = nullptr;
  for (const Emit& e : emits) {
    if (!rejected.empty() && rejected[e.index]) continue;
    const process::PolledBatch& batch = *events[e.index].first;
    const RecordView& r = *events[e.index].second;
    if (e.targets != nullptr) {
      for (const std::string& t : *e.targets) add_out(t, r, e.value, batch.tp.partition);
    } else if (!cfg.output.empty()) {
      add_out(cfg.output, r, e.value, batch.tp.partition);
    }
    if (&batch != last_batch) {
      last_batch = &batch;
      processed = m->topic_metrics[batch.tp.topic].processed;
    }
    processed->inc();
  }

  for (auto& [tp, o] : outs) {
    for (size_t i = 0; i < o.recs.size(); ++i) {
      o.recs[i].headers = o.headers[i].empty() ? nullptr : o.headers[i].data();
      o.recs[i].header_count = static_cast<uint32_t>(o.headers[i].size());
    }
  }
  // Exactly-once: outputs (dead letters included) and input offsets in one transaction;
  // at-least-once: the outputs, then the offsets. The committer thread delivers them (run());
  // the events are counted once it is done.
  cur->consumed = std::exchange(consumed.n, 0);
  return BatchEnd::kReady;
}

}  // namespace spate
