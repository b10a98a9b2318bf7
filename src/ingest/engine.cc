// DataIngestionEngine: decode on the submitting thread, append on shard threads.
//
// A request is split into events and each event parsed once (simdjson DOM) on the thread that
// calls submit() — for HTTP an I/O thread, which avoids copying the body to another thread. The
// resulting records (views into the request's body) go to the shard that owns their partition.
// A shard takes everything queued, merges what goes to the same partition into appends of at
// most batch_size records, and completes each request once all of its records are durable.
#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>

#include "base/clock.h"
#include "base/hash.h"
#include <xxhash.h>
#include "event/expr.h"
#include "event/json.h"
#include "ingest/decode.h"
#include "ingest/dedup/dedup_store.h"
#include "ingest/transform/transform.h"
#include "ingest/validate/json_schema.h"
#include "ingest/validate/quality.h"
#include "spate/ingestion.h"
#include "spate/metrics.h"

namespace spate {
namespace {

using SteadyClock = std::chrono::steady_clock;
using json::find_path;

// Header slots reserved per event: spate.source, spate.pos, spate.quality, spate.dedup.
constexpr size_t kHeaderSlots = 4;

// Stable storage for bytes a request creates (transformed events, tag values): views into it
// stay valid until the request is done. Grows in blocks; no per-event allocation.
class ByteArena {
 public:
  explicit ByteArena(size_t first_block = 1024) : next_block_(first_block) {}
  std::string_view copy(std::string_view s) {
    if (s.size() > cap_ - used_) {
      const size_t n = std::max(s.size(), next_block_);
      blocks_.emplace_back(new char[n]);
      used_ = 0;
      cap_ = n;
      next_block_ = std::min<size_t>(next_block_ * 2, 1 << 20);
    }
    char* p = blocks_.back().get() + used_;
    std::memcpy(p, s.data(), s.size());
    used_ += s.size();
    return {p, s.size()};
  }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t used_ = 0;
  size_t cap_ = 0;
  size_t next_block_;
};

struct SourceMetrics {
  Counter* accepted;
  Counter* rejected;
  Counter* dead_lettered;
  Counter* dropped;
  Counter* quarantined;
  Gauge* queue_size;
};

// Shared by every submission of one request.
struct RequestState {
  std::string body;  // owns the bytes every RecordIn of the request points into
  std::string source;  // owns the bytes of the dead letters' "source" header
  std::vector<std::string> keys;
  std::vector<std::string> reasons;  // dead-letter header values
  std::vector<RecordHeader> headers;
  std::vector<std::string> positions;
  std::vector<RecordHeader> event_headers;  // kHeaderSlots per event
  ByteArena arena;  // transformed events, quality tags
  IngestResult result;
  std::function<void(IngestResult)> done;
  bool responded = false;  // buffered acks respond before completion
  std::atomic<int> remaining{0};
  std::mutex mu;  // guards `failure`
  Status failure;
  SteadyClock::time_point started;
  SourceMetrics* metrics = nullptr;
  Histogram* hist = nullptr;  // ingestion_processing_seconds, observed on answering
  ingest::DedupStore* dedup = nullptr;
};

struct Submission {
  std::shared_ptr<RequestState> req;
  std::string topic;
  uint32_t partition = 0;
  std::vector<RecordIn> records;
  bool dead_letter = false;
  std::vector<ingest::DedupKey> claimed;  // dedup keys of these records, claimed before append
  bool failed = false;
};

// The dedup key of an event: XXH3-128 over the values of `fields` ("$" = the whole payload),
// each rendered as its string (strings unquoted, others as minified JSON) with its length.
// False if none of the fields is present (the event is then not deduplicated).
bool dedup_key_of(simdjson::dom::element doc, std::string_view payload,
                  const std::vector<std::string>& fields, ingest::DedupKey* out) {
  thread_local std::string buf;
  buf.clear();
  bool any = false;
  for (const std::string& f : fields) {
    std::string_view part;
    std::string minified;
    if (f == "$") {
      part = payload;
      any = true;
    } else {
      simdjson::dom::element e;
      if (find_path(doc, f, &e)) {
        any = true;
        if (e.get_string().get(part)) {
          minified = simdjson::minify(e);
          part = minified;
        }
      } else {
        part = "\x01<missing>";
      }
    }
    uint64_t n = part.size();
    buf.append(reinterpret_cast<const char*>(&n), sizeof(n));
    buf.append(part);
  }
  if (!any) return false;
  XXH128_hash_t h = XXH3_128bits(buf.data(), buf.size());
  out->lo = h.low64;
  out->hi = h.high64;
  if (out->lo == 0 && out->hi == 0) out->lo = 1;  // zero means "no key" internally
  return true;
}

// Appends submissions to the log and completes their requests: used by a shard thread for
// what it dequeued, and by the submitting thread itself when appends do not wait for the disk
// (see DataIngestionEngine::Impl::inline_append).
class Appender {
 public:
  Appender(Log* log, size_t batch_size, std::atomic<size_t>* queued)
      : log_(log), batch_size_(batch_size), queued_(queued) {}

  void rebind(Log* log, size_t batch_size, std::atomic<size_t>* queued) {
    log_ = log;
    batch_size_ = batch_size;
    queued_ = queued;
  }

  void process(std::vector<std::unique_ptr<Submission>>& work) {
    // Merge submissions for the same topic/partition, keeping their order.
    if (work.size() == 1) {
      group_.clear();
      group_.push_back(work[0].get());
      append_group();
    } else {
      done_.assign(work.size(), false);
      for (size_t i = 0; i < work.size(); ++i) {
        if (done_[i]) continue;
        group_.clear();
        for (size_t j = i; j < work.size(); ++j) {
          if (!done_[j] && work[j]->partition == work[i]->partition &&
              work[j]->topic == work[i]->topic) {
            group_.push_back(work[j].get());
            done_[j] = true;
          }
        }
        append_group();
      }
    }
    int64_t now = 0;
    for (auto& s : work) {
      if (!s->claimed.empty() && s->req->dedup != nullptr) {
        if (now == 0) now = system_clock()->now_ms();
        keys_.clear();
        for (const auto& k : s->claimed) {
          if (k.lo != 0 || k.hi != 0) keys_.push_back(k);
        }
        // Durable: remember the keys; failed: release them so a retry is not dropped.
        if (s->failed) {
          s->req->dedup->release(keys_.data(), keys_.size());
        } else {
          s->req->dedup->commit(keys_.data(), keys_.size(), now);
        }
      }
      queued_->fetch_sub(s->records.size(), std::memory_order_relaxed);
      if (s->req->metrics) s->req->metrics->queue_size->sub(static_cast<double>(s->records.size()));
      finish(s->req);
    }
  }

  static void finish(const std::shared_ptr<RequestState>& req);
  static void complete(RequestState& req);

 private:
  // Append the records of group_ in chunks of batch_size; a failure fails every submission
  // whose records were in the failed chunk or after it.
  void append_group() {
    const RecordIn* recs;
    size_t count;
    if (group_.size() == 1) {  // no copy for the common case of one submission
      recs = group_.front()->records.data();
      count = group_.front()->records.size();
    } else {
      records_.clear();
      for (Submission* s : group_) {
        records_.insert(records_.end(), s->records.begin(), s->records.end());
      }
      recs = records_.data();
      count = records_.size();
    }
    const std::string& topic = group_.front()->topic;
    uint32_t partition = group_.front()->partition;
    size_t pos = 0;
    while (pos < count) {
      size_t n = std::min(batch_size_, count - pos);
      auto r = log_->append(topic, partition, recs + pos, n);
      if (!r.ok()) {
        // Fail the submissions owning records pos.. (the failed chunk and everything after).
        size_t first = 0;
        for (Submission* s : group_) {
          size_t end = first + s->records.size();
          if (end > pos) {
            s->failed = true;
            RequestState& req = *s->req;
            std::lock_guard lk(req.mu);
            if (req.failure.ok()) req.failure = r.status();
          }
          first = end;
        }
        return;
      }
      pos += n;
    }
  }

  Log* log_;
  size_t batch_size_;
  std::atomic<size_t>* queued_;
  // Reused per group (no allocation in steady state).
  std::vector<Submission*> group_;
  std::vector<RecordIn> records_;
  std::vector<bool> done_;
  std::vector<ingest::DedupKey> keys_;
};

class Shard {
 public:
  Shard(Log* log, size_t batch_size, int64_t flush_interval_ms, std::atomic<size_t>* queued)
      : appender_(log, batch_size, queued),
        batch_size_(batch_size),
        flush_interval_ms_(flush_interval_ms),
        queued_(queued) {}

  void start() { thread_ = std::thread([this] { run(); }); }

  void push(std::unique_ptr<Submission> s) {
    bool wake = false;
    {
      std::lock_guard lk(mu_);
      if (!exited_) {
        pending_events_ += s->records.size();
        queue_.push_back(std::move(s));
        // Only a waiting shard needs a wake-up (a futex call); a busy one takes the queue
        // when it is done with the previous batch.
        wake = waiting_ && (flush_interval_ms_ <= 0 || pending_events_ >= batch_size_ ||
                            queue_.size() == 1);
      }
    }
    if (!s) {
      if (wake) cv_.notify_one();
      return;
    }
    // Raced with stop(): the shard is gone, fail the submission instead of losing it.
    {
      std::lock_guard lk(s->req->mu);
      if (s->req->failure.ok()) s->req->failure = Unavailable("ingestion is stopping");
    }
    queued_->fetch_sub(s->records.size(), std::memory_order_relaxed);
    Appender::finish(s->req);
  }

  // Drain everything queued, then stop.
  void stop() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::vector<std::unique_ptr<Submission>> work;
    while (true) {
      {
        std::unique_lock lk(mu_);
        waiting_ = true;
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) {
          exited_ = true;
          return;
        }
        if (flush_interval_ms_ > 0 && pending_events_ < batch_size_ && !stopping_) {
          cv_.wait_for(lk, std::chrono::milliseconds(flush_interval_ms_),
                       [&] { return stopping_ || pending_events_ >= batch_size_; });
        }
        waiting_ = false;
        work.clear();
        while (!queue_.empty()) {
          work.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        pending_events_ = 0;
      }
      appender_.process(work);
    }
  }

  Appender appender_;
  size_t batch_size_;
  int64_t flush_interval_ms_;
  std::atomic<size_t>* queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Submission>> queue_;
  size_t pending_events_ = 0;
  bool waiting_ = false;  // the shard thread is (about to be) blocked on cv_
  bool stopping_ = false;
  bool exited_ = false;
  std::thread thread_;
};

void Appender::finish(const std::shared_ptr<RequestState>& req) {
  if (req->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) complete(*req);
}

// All submissions of the request are done: report (unless a buffered ack already did).
void Appender::complete(RequestState& req) {
  Status failure;
  {
    std::lock_guard lk(req.mu);
    failure = req.failure;
  }
  if (req.responded) return;
  IngestResult res = std::move(req.result);
  if (!failure.ok()) {
    res.status = IngestStatus::kUnavailable;
    res.storage_full = failure.code() == Errc::kNoSpace;
    res.message = "events could not be stored: " + failure.to_string() +
                  (res.storage_full ? " (the log's disk is full: nothing more is stored until space is freed)" : "") +
                  "; retry the request (some of its events may be stored: with dedup a retry stores none twice)";
    res.retry_after_seconds = res.storage_full ? 5 : 1;
  }
  auto done = std::move(req.done);
  req.responded = true;
  if (req.hist != nullptr) {
    req.hist->observe(std::chrono::duration<double>(SteadyClock::now() - req.started).count());
  }
  done(std::move(res));
}

}  // namespace

struct Route {
  expr::Expression when;  // empty: always
  std::vector<std::string> topics;
};

struct DataIngestionEngine::Impl {
  IngestionConfig cfg;
  LogConfig log_cfg;
  std::unique_ptr<Log> owned_log;
  Log* log = nullptr;
  MetricsRegistry* metrics;
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<Route> routes;
  std::optional<schema::CompiledSchema> schema;
  ingest::QualityChecks quality;
  std::vector<Counter*> quality_failures;  // per check
  ingest::TransformChain transforms;
  Counter* transform_errors = nullptr;
  bool needs_request_id = false;
  std::atomic<uint64_t> request_seq{0};
  uint64_t request_seed = 0;
  const Clock* clock = nullptr;
  std::atomic<size_t> queued{0};
  std::atomic<bool> running{false};
  std::atomic<uint32_t> rr{0};
  // Durable acks, no linger and a log whose append does not wait for the disk: submit()
  // appends on the calling thread (see submit()); inline_active counts those in progress.
  bool inline_append = false;
  std::atomic<int> inline_active{0};

  // topic -> partition count
  std::shared_mutex topics_mu;
  std::map<std::string, uint32_t, std::less<>> topics;

  std::mutex source_mu;
  std::map<std::string, std::unique_ptr<SourceMetrics>, std::less<>> sources;
  Histogram* processing_seconds = nullptr;
  Counter* validation_errors = nullptr;
  Counter* accepted_total = nullptr;
  Gauge* throughput = nullptr;
  Counter* duplicates_total = nullptr;
  Counter* dedup_errors = nullptr;
  std::unique_ptr<ingest::DedupStore> dedup_owned;
  ingest::DedupStore* dedup = nullptr;
  std::thread ticker;
  std::mutex ticker_mu;
  std::condition_variable ticker_cv;

  // Engines get distinct ids, so a per-thread cache entry never outlives its engine's meaning.
  const uint64_t id = next_engine_id.fetch_add(1, std::memory_order_relaxed);
  static inline std::atomic<uint64_t> next_engine_id{1};

  SourceMetrics* source_metrics(const std::string& name) {
    struct Cached {
      uint64_t engine = 0;
      std::string name;
      SourceMetrics* m = nullptr;
    };
    thread_local Cached cached;
    if (cached.engine == id && cached.name == name) return cached.m;
    SourceMetrics* m = source_metrics_locked(name);
    cached.engine = id;
    cached.name = name;
    cached.m = m;
    return m;
  }

  SourceMetrics* source_metrics_locked(const std::string& name) {
    std::lock_guard lk(source_mu);
    auto it = sources.find(name);
    if (it != sources.end()) return it->second.get();
    auto m = std::make_unique<SourceMetrics>();
    m->accepted = &metrics->counter("ingestion_messages_total", "Events received by ingestion",
                                    {{"source", name}, {"status", "accepted"}});
    m->rejected = &metrics->counter("ingestion_messages_total", "Events received by ingestion",
                                    {{"source", name}, {"status", "rejected"}});
    m->dead_lettered = &metrics->counter("ingestion_dead_lettered_total",
                                         "Rejected events written to the dead-letter topic",
                                         {{"source", name}});
    m->dropped = &metrics->counter("ingestion_messages_total", "Events received by ingestion",
                                   {{"source", name}, {"status", "dropped"}});
    m->quarantined = &metrics->counter("ingestion_messages_total", "Events received by ingestion",
                                       {{"source", name}, {"status", "dead_lettered"}});
    m->queue_size = &metrics->gauge("ingestion_queue_size",
                                    "Events queued for or being appended to the log",
                                    {{"source", name}});
    return sources.emplace(name, std::move(m)).first->second.get();
  }

  // Partition count of a topic, or 0 if it does not exist (and may not be created).
  uint32_t partitions_of(const std::string& topic) {
    {
      std::shared_lock lk(topics_mu);
      auto it = topics.find(topic);
      if (it != topics.end()) return it->second;
    }
    auto info = log->describe_topic(topic);
    if (!info.ok()) {
      if (!cfg.allow_any_topic || !validate_topic_name(topic).ok()) return 0;
      TopicSpec spec;
      spec.name = topic;
      spec.partitions = log_cfg.default_partitions;
      if (!log->ensure_topic(spec).ok()) return 0;
      info = log->describe_topic(topic);
      if (!info.ok()) return 0;
    }
    std::unique_lock lk(topics_mu);
    topics[topic] = info->partitions;
    return info->partitions;
  }

  void submit(IngestRequest req, std::function<void(IngestResult)> done);
};

DataIngestionEngine::DataIngestionEngine(IngestionConfig config, LogConfig log,
                                         MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
  impl_->log_cfg = std::move(log);
  impl_->metrics = metrics ? metrics : &global_metrics();
}

DataIngestionEngine::DataIngestionEngine(IngestionConfig config, Log* log,
                                         MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
  impl_->log = log;
  impl_->metrics = metrics ? metrics : &global_metrics();
}

DataIngestionEngine::~DataIngestionEngine() { stop(); }

Status DataIngestionEngine::initialize() {
  Impl& m = *impl_;
  if (m.cfg.batch_size == 0) return InvalidArgument("ingestion.batch_size must be positive");
  if (m.cfg.max_workers <= 0) return InvalidArgument("ingestion.max_workers must be positive");
  m.schema.reset();
  if (!m.cfg.schema_file.empty()) {
    SPATE_ASSIGN_OR_RETURN(m.schema, schema::CompiledSchema::compile_file(m.cfg.schema_file));
  } else if (!m.cfg.schema.empty()) {
    auto compiled = schema::CompiledSchema::compile(m.cfg.schema);
    if (!compiled.ok()) return compiled.status().with_context("ingestion.schema");
    m.schema = std::move(compiled).value();
  }
  m.clock = m.cfg.clock ? m.cfg.clock : system_clock();
  SPATE_ASSIGN_OR_RETURN(m.quality, ingest::QualityChecks::compile(m.cfg.quality, m.cfg.timestamp_field,
                                                                   !m.cfg.dead_letter_topic.empty()));
  SPATE_ASSIGN_OR_RETURN(m.transforms, ingest::TransformChain::compile(m.cfg.transforms));
  m.needs_request_id = false;
  for (const TransformConfig& t : m.cfg.transforms) m.needs_request_id |= !t.request_id.empty();
  m.request_seed = XXH3_64bits_withSeed(&m, sizeof(&m), static_cast<uint64_t>(m.clock->steady_ns()));
  m.routes.clear();
  for (size_t i = 0; i < m.cfg.routes.size(); ++i) {
    const RouteConfig& rc = m.cfg.routes[i];
    Route r;
    if (!rc.when.empty()) {
      SPATE_ASSIGN_OR_RETURN(r.when, expr::Expression::compile(rc.when));
    }
    r.topics = rc.topics;
    m.routes.push_back(std::move(r));
  }
  if (m.log == nullptr) {
    SPATE_ASSIGN_OR_RETURN(m.owned_log, open_embedded_log(m.log_cfg));
    m.log = m.owned_log.get();
  }
  for (const std::string* t : {&m.cfg.default_topic, &m.cfg.dead_letter_topic}) {
    if (t->empty()) continue;
    if (!m.log->describe_topic(*t).ok()) {
      TopicSpec spec;
      spec.name = *t;
      spec.partitions = m.log_cfg.default_partitions;
      SPATE_RETURN_IF_ERROR(m.log->ensure_topic(spec).with_context("ingestion topic " + *t));
    }
  }
  m.processing_seconds = &m.metrics->histogram(
      "ingestion_processing_seconds", "Time from receiving a request to acknowledging it", {});
  m.validation_errors = &m.metrics->counter("ingestion_validation_errors_total",
                                            "Events rejected as invalid", {});
  m.accepted_total = &m.metrics->counter("ingestion_accepted_total",
                                         "Events accepted into the log (all sources)", {});
  m.throughput = &m.metrics->gauge("ingestion_throughput_per_second",
                                   "Events accepted per second over the last second", {});
  m.duplicates_total = &m.metrics->counter("ingestion_duplicates_total",
                                           "Events dropped as duplicates (acknowledged, not stored)", {});
  m.dedup_errors = &m.metrics->counter("ingestion_dedup_store_errors_total",
                                       "Dedup store calls that failed", {});
  m.transform_errors = &m.metrics->counter("ingestion_transform_errors_total",
                                           "Events rejected because a transform rule failed", {});
  // The HTTP API's series exist from the start (at 0): dashboards and alert rules see them, and
  // the first rate() after start has a base. Other sources register theirs on first use.
  (void)m.source_metrics_locked("http");
  m.quality_failures.clear();
  for (uint32_t i = 0; i < m.quality.size(); ++i) {
    m.quality_failures.push_back(&m.metrics->counter(
        "ingestion_quality_failures_total", "Events that failed a data-quality check",
        {{"check", m.quality.name(i)}, {"action", ingest::quality_action_name(m.quality.action(i))}}));
  }
  if (!m.cfg.dedup.fields.empty() && m.dedup == nullptr) {
    const DedupConfig& dc = m.cfg.dedup;
    if (dc.store == "redis") {
      ingest::RedisDedupOptions o;
      if (!dc.redis_url.empty()) o.url = dc.redis_url;
      o.password = dc.redis_password;
      if (!dc.redis_key_prefix.empty()) o.key_prefix = dc.redis_key_prefix;
      o.ttl_ms = dc.ttl_ms;
      o.claim_ttl_ms = dc.claim_ttl_ms;
      o.timeout_ms = dc.redis_timeout_ms;
      o.dir = dc.state_dir;
      auto store = ingest::open_redis_dedup(o, *m.log);
      if (!store.ok()) return store.status().with_context("ingestion.dedup (store: redis)");
      m.dedup_owned = std::move(store).value();
    } else if (dc.store == "embedded") {
      ingest::EmbeddedDedupOptions o;
      o.ttl_ms = dc.ttl_ms;
      o.max_keys = dc.max_keys;
      o.dir = dc.state_dir;
      SPATE_ASSIGN_OR_RETURN(m.dedup_owned, ingest::open_embedded_dedup(o, *m.log));
    } else {
      return InvalidArgument("ingestion.dedup.store \"" + dc.store +
                             "\" is unknown (embedded or redis)");
    }
    m.dedup = m.dedup_owned.get();
    ingest::DedupStore* d = m.dedup;
    if (d->stats().counts_keys) {
      m.metrics->gauge_fn("ingestion_dedup_keys", "Keys held by the dedup store", {},
                          [d] { return static_cast<double>(d->stats().keys); });
      m.metrics->counter_fn("ingestion_dedup_evictions_total",
                            "Dedup keys evicted before their TTL because the store was full", {},
                            [d] { return static_cast<double>(d->stats().evicted); });
    } else {  // Redis: a shared database, the keys are not ours to count
      m.metrics->counter_fn("ingestion_dedup_committed_total",
                            "Dedup keys this process wrote to the store as stored", {},
                            [d] { return static_cast<double>(d->stats().committed); });
      m.metrics->gauge_fn("ingestion_dedup_pending_commits",
                          "Stored events whose dedup key could not be written to the store yet "
                          "(retried)", {},
                          [d] { return static_cast<double>(d->stats().pending); });
      // The unlabelled series counts failed claims (submit()); these, failed commits and
      // releases inside the store.
      m.metrics->counter_fn("ingestion_dedup_store_errors_total", "Dedup store calls that failed",
                            {{"call", "commit"}},
                            [d] { return static_cast<double>(d->stats().commit_errors); });
      m.metrics->counter_fn("ingestion_dedup_store_errors_total", "Dedup store calls that failed",
                            {{"call", "release"}},
                            [d] { return static_cast<double>(d->stats().release_errors); });
    }
  }
  return Status::Ok();
}

Status DataIngestionEngine::start() {
  Impl& m = *impl_;
  if (m.log == nullptr) return Internal("DataIngestionEngine::start() before initialize()");
  if (m.running.exchange(true)) return Status::Ok();
  m.inline_append = m.cfg.ack == AckMode::kDurable && m.cfg.flush_interval_ms <= 0 &&
                    !m.log->append_waits_for_disk();
  for (int i = 0; i < m.cfg.max_workers; ++i) {
    m.shards.push_back(std::make_unique<Shard>(m.log, m.cfg.batch_size, m.cfg.flush_interval_ms,
                                               &m.queued));
    m.shards.back()->start();
  }
  m.ticker = std::thread([&m] {
    double last = m.accepted_total->value();
    uint64_t ticks = 0;
    std::unique_lock lk(m.ticker_mu);
    while (m.running.load()) {
      m.ticker_cv.wait_for(lk, std::chrono::seconds(1));
      double now = m.accepted_total->value();
      m.throughput->set(now - last);
      last = now;
      if (m.dedup != nullptr && ++ticks % 10 == 0) (void)m.dedup->checkpoint(*m.log);
    }
  });
  return Status::Ok();
}

void DataIngestionEngine::stop() {
  Impl& m = *impl_;
  if (!m.running.exchange(false)) {
    if (m.owned_log) (void)m.owned_log->close();
    return;
  }
  // Inline appends in progress finish first (new ones see running == false and fail).
  while (m.inline_active.load() != 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
  for (auto& s : m.shards) s->stop();  // drains: every queued request completes
  m.shards.clear();
  m.ticker_cv.notify_all();
  if (m.ticker.joinable()) m.ticker.join();
  if (m.dedup != nullptr) (void)m.dedup->checkpoint(*m.log);
  if (m.owned_log) (void)m.owned_log->close();
}

size_t DataIngestionEngine::queued_events() const { return impl_->queued.load(); }
const IngestionConfig& DataIngestionEngine::config() const { return impl_->cfg; }
Log* DataIngestionEngine::log() const { return impl_->log; }

void DataIngestionEngine::submit(IngestRequest req, std::function<void(IngestResult)> done) {
  impl_->submit(std::move(req), std::move(done));
}

IngestResult DataIngestionEngine::submit_sync(IngestRequest request) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<IngestResult> out;
  submit(std::move(request), [&](IngestResult r) {
    std::lock_guard lk(mu);
    out = std::move(r);
    cv.notify_all();
  });
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return out.has_value(); });
  return std::move(*out);
}

void DataIngestionEngine::Impl::submit(IngestRequest req, std::function<void(IngestResult)> done) {
  const auto started = SteadyClock::now();
  auto fail = [&](IngestStatus st, std::string msg) {
    IngestResult r;
    r.status = st;
    r.message = std::move(msg);
    if (st == IngestStatus::kOverloaded || st == IngestStatus::kUnavailable) r.retry_after_seconds = 1;
    done(std::move(r));
  };
  if (!running.load()) return fail(IngestStatus::kUnavailable, "ingestion is not running");
  // Targets: the request's topic; else, per event, the first matching route; else the default.
  struct Target {
    std::string topic;
    uint32_t partitions;
    uint32_t sticky;
  };
  std::vector<Target> targets;
  const uint32_t rr_base = rr.fetch_add(1, std::memory_order_relaxed);
  auto target_of = [&](const std::string& t) -> int {
    for (size_t i = 0; i < targets.size(); ++i) {
      if (targets[i].topic == t) return static_cast<int>(i);
    }
    uint32_t n = partitions_of(t);
    if (n == 0) return -1;
    targets.push_back({t, n, rr_base % n});
    return static_cast<int>(targets.size() - 1);
  };
  const bool per_event_routes = req.topic.empty() && !routes.empty();
  int fixed_target = -1;
  if (!per_event_routes) {
    std::string topic = req.topic.empty() ? cfg.default_topic : req.topic;
    if (topic.empty()) {
      return fail(IngestStatus::kNotFound,
                  "no topic: POST /ingest/{topic}, or set ingestion.default_topic or routes");
    }
    fixed_target = target_of(topic);
    if (fixed_target < 0) {
      return fail(IngestStatus::kNotFound, "topic \"" + topic + "\" does not exist");
    }
  }
  uint32_t dlq_partitions = cfg.dead_letter_topic.empty() ? 0 : partitions_of(cfg.dead_letter_topic);

  auto state = std::make_shared<RequestState>();
  state->body = std::move(req.body);
  state->source = req.source.name;
  state->started = started;
  state->metrics = source_metrics(req.source.name);
  state->dedup = dedup;
  std::vector<ingest::RawEvent> raw;
  Status split = ingest::split_events(state->body, req.format, &raw);
  if (!split.ok()) return fail(IngestStatus::kBadRequest, split.message());
  if (cfg.max_events_per_request != 0 && raw.size() > cfg.max_events_per_request) {
    return fail(IngestStatus::kTooLarge,
                fmt::format("{} events in one request, more than ingestion.max_events_per_request ({}): "
                            "split it into smaller requests",
                            raw.size(), cfg.max_events_per_request));
  }
  if (!req.event_positions.empty() && req.event_positions.size() == raw.size()) {
    state->positions = std::move(req.event_positions);
  }
  const bool dedup_on = dedup != nullptr && !cfg.dedup.fields.empty();
  if (!state->positions.empty() || dedup_on || !quality.empty()) {
    state->event_headers.resize(kHeaderSlots * raw.size());
  }
  for (size_t i = 0; i < state->positions.size(); ++i) {
    state->event_headers[kHeaderSlots * i] = {"spate.source", state->source};
    state->event_headers[kHeaderSlots * i + 1] = {"spate.pos", state->positions[i]};
  }

  // Parse and check every event; build the records per partition.
  thread_local simdjson::dom::parser parser;
  if (parser.max_depth() != cfg.max_depth) {  // nesting limit per event (ingestion.max_depth)
    if (parser.allocate(std::max<size_t>(parser.capacity(), 1 << 16), cfg.max_depth) !=
        simdjson::SUCCESS) {
      return fail(IngestStatus::kUnavailable, "out of memory for the JSON parser");
    }
  }
  const int64_t now_ms = clock->now_ms();
  ingest::TransformInput tin;
  tin.received_at_ms = now_ms;
  tin.source = state->source;
  std::string generated_id;  // only when a metadata rule wants one and the request has none
  tin.request_id = req.source.request_id;
  if (tin.request_id.empty() && needs_request_id) {
    const uint64_t seq = request_seq.fetch_add(1, std::memory_order_relaxed);
    generated_id = fmt::format("{:016x}", XXH3_64bits_withSeed(&seq, sizeof seq, request_seed));
    tin.request_id = generated_id;
  }
  thread_local ingest::QualityChecks::Outcome qout;
  ingest::TransformChain::Outcome tout;
  struct Accepted {
    RecordIn rec;
    uint32_t target;
    uint32_t part;
    size_t index;
    bool has_key;
    ingest::DedupKey key;
  };
  std::vector<Accepted> accepted_events;
  accepted_events.reserve(raw.size());
  std::vector<RecordIn> dead;
  std::vector<size_t> dead_index;
  std::vector<std::string> dead_reason;
  std::vector<bool> dead_reported;  // false: quarantined by a quality check (not an error)
  IngestResult& res = state->result;
  std::vector<int> event_targets;
  state->keys.reserve(cfg.key_field.empty() ? 0 : raw.size());
  for (const auto& ev : raw) {
    std::string reason;
    simdjson::dom::element doc;
    if (ev.json.size() > cfg.max_event_bytes) {
      reason = "event is " + std::to_string(ev.json.size()) + " bytes, over the limit of " +
               std::to_string(cfg.max_event_bytes);
    } else if (auto err = parser.parse(ev.json.data(), ev.json.size()).get(doc)) {
      reason = std::string("invalid JSON: ") + simdjson::error_message(err);
    } else if (!doc.is_object()) {
      reason = "event must be a JSON object";
    } else if (schema && !schema->valid(doc)) {
      schema::ValidationError ve;
      schema->validate(doc, &ve);
      reason = "schema: " + ve.to_string();
    }
    RecordIn rec;
    rec.value = ev.json;
    rec.timestamp_ms = now_ms;
    if (!state->event_headers.empty()) {
      rec.headers = &state->event_headers[kHeaderSlots * ev.index];
      rec.header_count = state->positions.empty() ? 0 : 2;
    }
    // Data-quality checks, on the event as received.
    bool quarantine = false;
    if (reason.empty() && !quality.empty()) {
      quality.evaluate(doc, now_ms, &qout);
      std::string tags;
      for (size_t k = 0; k < qout.failed.size(); ++k) {
        quality_failures[qout.failed[k]]->inc();
        if (static_cast<int>(k) != qout.decisive) {
          tags += (tags.empty() ? "" : ",") + quality.name(qout.failed[k]);
        }
      }
      if (qout.decisive >= 0) {  // reject, dead_letter or drop decides
        const uint32_t c = qout.failed[static_cast<size_t>(qout.decisive)];
        if (quality.action(c) == QualityAction::kDrop) {
          ++res.dropped;
          continue;
        }
        reason = quality.reason(c, doc, now_ms);
        quarantine = quality.action(c) == QualityAction::kDeadLetter;
      }
      if (!tags.empty() && reason.empty()) {
        state->event_headers[kHeaderSlots * ev.index + rec.header_count++] = {
            "spate.quality", state->arena.copy(tags)};
      }
    }
    // Transforms: later stages (event time, key, routes, dedup) see the transformed event.
    if (reason.empty() && !transforms.empty()) {
      std::string why;
      if (!transforms.apply(doc, tin, &tout, &why)) {
        reason = std::move(why);
        transform_errors->inc();
      } else if (tout.changed) {
        rec.value = state->arena.copy(tout.json);
        doc = tout.doc;
      }
    }
    if (reason.empty() && !cfg.timestamp_field.empty()) {
      simdjson::dom::element ts;
      if (find_path(doc, cfg.timestamp_field, &ts)) {
        int64_t ms = 0;
        if (json::event_time_ms(ts, &ms)) {
          rec.timestamp_ms = ms;
        } else {
          reason = "field " + cfg.timestamp_field +
                   " must be epoch milliseconds or an RFC 3339 time";
        }
        if (reason.empty() && rec.timestamp_ms <= 0) {
          reason = "field " + cfg.timestamp_field + " must be a positive time";
        }
      }
    }
    if (reason.empty() && !cfg.key_field.empty()) {
      simdjson::dom::element k;
      if (find_path(doc, cfg.key_field, &k)) {
        std::string_view sv;
        if (!k.get_string().get(sv)) {
          state->keys.emplace_back(sv);
        } else {
          state->keys.push_back(simdjson::minify(k));
        }
        rec.key = std::string_view(state->keys.back());
      }
    }
    event_targets.clear();
    if (reason.empty()) {
      if (fixed_target >= 0) {
        event_targets.push_back(fixed_target);
      } else {
        const Route* hit = nullptr;
        for (const Route& r : routes) {
          if (r.when.empty() || r.when.matches(doc)) {
            hit = &r;
            break;
          }
        }
        if (hit == nullptr && cfg.default_topic.empty()) {
          reason = "no route matched and there is no default_topic";
        } else {
          static const std::vector<std::string> kNone;
          const std::vector<std::string>& topics = hit ? hit->topics : kNone;
          for (const std::string& t : topics) {
            int idx = target_of(t);
            if (idx < 0) {
              reason = "route target topic \"" + t + "\" does not exist";
              break;
            }
            event_targets.push_back(idx);
          }
          if (hit == nullptr) {
            int idx = target_of(cfg.default_topic);
            if (idx < 0) reason = "default topic \"" + cfg.default_topic + "\" does not exist";
            else event_targets.push_back(idx);
          }
        }
      }
    }
    if (!reason.empty()) {
      RecordIn d;
      d.value = ev.json;  // dead letters keep the bytes as received
      d.timestamp_ms = now_ms;
      dead.push_back(d);
      dead_index.push_back(ev.index);
      dead_reported.push_back(!quarantine);
      if (quarantine) {
        ++res.dead_lettered;
        dead_reason.push_back(std::move(reason));
      } else {
        ++res.rejected;
        dead_reason.push_back(reason);
        res.errors.push_back({ev.index, std::move(reason)});
      }
      continue;
    }
    Accepted a{rec, 0, 0, ev.index, false, {}};
    if (dedup_on) a.has_key = dedup_key_of(doc, rec.value, cfg.dedup.fields, &a.key);
    for (int t : event_targets) {  // one record per target topic (routes may fan out)
      const Target& tg = targets[static_cast<size_t>(t)];
      a.target = static_cast<uint32_t>(t);
      a.part = rec.key ? partition_for_key(*rec.key, tg.partitions) : tg.sticky;
      accepted_events.push_back(a);
    }
    ++res.accepted;
  }
  validation_errors->inc(res.rejected);
  if (res.rejected > 0 && cfg.all_or_nothing) {
    res.status = IngestStatus::kBadRequest;
    res.message = std::to_string(res.rejected) + " invalid event(s); nothing was accepted";
    res.accepted = 0;
    state->metrics->rejected->inc(raw.size());
    return done(std::move(res));
  }
  // Deduplicate: claim the keys of the accepted events. A key stored within the TTL makes the
  // event a duplicate (acknowledged, not stored again); a key still in flight in another request
  // rejects the event with "retry later" (never dropped: the other copy may yet fail).
  // Records (and dedup keys) per target/partition, in (target, partition) order. Usually one
  // or a few: a linear search, no map.
  struct PartGroup {
    uint32_t target;
    uint32_t part;
    std::vector<RecordIn> recs;
    std::vector<ingest::DedupKey> keys;
  };
  std::vector<PartGroup> by_part;
  if (dedup_on) {
    std::vector<ingest::DedupKey> want;
    std::vector<size_t> want_idx;
    std::vector<bool> dup_here(accepted_events.size(), false);
    std::vector<bool> fanout_copy(accepted_events.size(), false);
    // Keys repeated within the request: sort (key, position) and mark all but the first.
    std::vector<std::pair<std::pair<uint64_t, uint64_t>, size_t>> by_key;
    by_key.reserve(accepted_events.size());
    for (size_t i = 0; i < accepted_events.size(); ++i) {
      const Accepted& a = accepted_events[i];
      if (!a.has_key) continue;
      if (i > 0 && accepted_events[i - 1].index == a.index) {  // a fan-out copy of the event
        fanout_copy[i] = true;
        continue;
      }
      by_key.push_back({{a.key.hi, a.key.lo}, i});
    }
    std::sort(by_key.begin(), by_key.end());
    for (size_t j = 1; j < by_key.size(); ++j) {
      if (by_key[j].first == by_key[j - 1].first) dup_here[by_key[j].second] = true;
    }
    for (size_t i = 0; i < accepted_events.size(); ++i) {
      const Accepted& a = accepted_events[i];
      if (!a.has_key || fanout_copy[i] || dup_here[i]) continue;
      want.push_back(a.key);
      want_idx.push_back(i);
    }
    std::vector<ingest::DedupState> states(want.size(), ingest::DedupState::kNew);
    Status ds = want.empty() ? Status::Ok() : dedup->claim(want.data(), want.size(), now_ms, states.data());
    std::vector<ingest::DedupState> st_of(accepted_events.size(), ingest::DedupState::kNew);
    if (!ds.ok()) {
      dedup_errors->inc();
      if (!cfg.dedup.accept_on_store_error) {
        return fail(IngestStatus::kUnavailable, "dedup store unavailable: " + ds.to_string());
      }
      for (auto& a : accepted_events) a.has_key = false;  // accept without deduplication
    } else {
      for (size_t j = 0; j < want_idx.size(); ++j) st_of[want_idx[j]] = states[j];
      for (size_t i = 1; i < accepted_events.size(); ++i) {
        if (fanout_copy[i]) {
          st_of[i] = st_of[i - 1];
          dup_here[i] = dup_here[i - 1];
        }
      }
    }
    std::vector<Accepted> kept;
    kept.reserve(accepted_events.size());
    for (size_t i = 0; i < accepted_events.size(); ++i) {
      Accepted& a = accepted_events[i];
      const bool first_copy = !fanout_copy[i];
      if (dup_here[i] || (a.has_key && st_of[i] == ingest::DedupState::kDuplicate)) {
        if (first_copy) {
          ++res.duplicates;
          --res.accepted;
        }
        continue;
      }
      if (a.has_key && st_of[i] == ingest::DedupState::kInFlight) {
        if (first_copy) {
          --res.accepted;
          ++res.rejected;
          res.errors.push_back({a.index, "duplicate of an event that is still being stored; retry"});
        }
        continue;
      }
      if (a.has_key && !first_copy) {
        a.rec.headers = accepted_events[i - 1].rec.headers;  // the header was added to the first copy
        a.rec.header_count = accepted_events[i - 1].rec.header_count;
      } else if (a.has_key) {
        char hex[32];
        a.key.to_hex(hex);
        RecordHeader* h = &state->event_headers[kHeaderSlots * a.index];
        h[a.rec.header_count] = {"spate.dedup", state->arena.copy(std::string_view(hex, 32))};
        a.rec.headers = h;
        a.rec.header_count += 1;
      }
      kept.push_back(a);
    }
    accepted_events = std::move(kept);
    duplicates_total->inc(res.duplicates);
    std::sort(res.errors.begin(), res.errors.end(),
              [](const EventError& x, const EventError& y) { return x.index < y.index; });
  }
  {
    PartGroup* last = nullptr;
    for (const Accepted& a : accepted_events) {
      if (last == nullptr || last->target != a.target || last->part != a.part) {
        last = nullptr;
        for (PartGroup& g : by_part) {
          if (g.target == a.target && g.part == a.part) {
            last = &g;
            break;
          }
        }
        if (last == nullptr) {
          by_part.push_back({a.target, a.part, {}, {}});
          last = &by_part.back();
        }
      }
      last->recs.push_back(a.rec);
      if (dedup_on) last->keys.push_back(a.has_key ? a.key : ingest::DedupKey{});
    }
    std::sort(by_part.begin(), by_part.end(), [](const PartGroup& x, const PartGroup& y) {
      return x.target != y.target ? x.target < y.target : x.part < y.part;
    });
  }
  // Dead letters carry the reason, source and index as headers.
  if (dlq_partitions > 0 && !dead.empty()) {
    state->reasons.reserve(dead.size() * 2);
    state->headers.reserve(dead.size() * 5);
    for (size_t i = 0; i < dead.size(); ++i) {
      state->reasons.push_back(dead_reason[i]);
      state->reasons.push_back(std::to_string(dead_index[i]));
      size_t h = state->headers.size();
      if (!state->positions.empty()) {  // a source's dead letters count as its stored input too
        state->headers.push_back(state->event_headers[kHeaderSlots * dead_index[i]]);
        state->headers.push_back(state->event_headers[kHeaderSlots * dead_index[i] + 1]);
      }
      state->headers.push_back({"error", state->reasons[state->reasons.size() - 2]});
      state->headers.push_back({"source", state->source});
      state->headers.push_back({"index", state->reasons.back()});
      dead[i].headers = &state->headers[h];
      dead[i].header_count = static_cast<uint32_t>(state->headers.size() - h);
    }
  }
  // Reserve queue space for everything this request appends, or refuse it whole.
  size_t total = 0;
  for (const PartGroup& g : by_part) total += g.recs.size();
  if (dlq_partitions > 0) total += dead.size();
  if (queued.fetch_add(total, std::memory_order_acq_rel) + total > cfg.max_queue_size && total > 0) {
    queued.fetch_sub(total, std::memory_order_acq_rel);
    if (dedup_on) {  // give the claims back: a retry of this request must not be "in flight"
      std::vector<ingest::DedupKey> claimed;
      for (const PartGroup& g : by_part) {
        for (const auto& k : g.keys) {
          if (k.lo != 0 || k.hi != 0) claimed.push_back(k);
        }
      }
      if (!claimed.empty()) dedup->release(claimed.data(), claimed.size());
    }
    return fail(IngestStatus::kOverloaded,
                "ingestion queue is full (" + std::to_string(cfg.max_queue_size) + " events)");
  }
  state->metrics->accepted->inc(res.accepted);
  state->metrics->rejected->inc(res.rejected);
  if (res.dropped) state->metrics->dropped->inc(res.dropped);
  if (res.dead_lettered) state->metrics->quarantined->inc(res.dead_lettered);
  accepted_total->inc(res.accepted);
  state->metrics->queue_size->add(static_cast<double>(total));

  std::vector<std::unique_ptr<Submission>> subs;
  subs.reserve(by_part.size() + (dead.empty() ? 0 : 1));
  for (PartGroup& g : by_part) {
    auto s = std::make_unique<Submission>();
    s->req = state;
    s->topic = targets[g.target].topic;
    s->partition = g.part;
    s->records = std::move(g.recs);
    if (dedup_on) s->claimed = std::move(g.keys);
    subs.push_back(std::move(s));
  }
  if (dlq_partitions > 0 && !dead.empty()) {
    auto s = std::make_unique<Submission>();
    s->req = state;
    s->topic = cfg.dead_letter_topic;
    s->partition = rr_base % dlq_partitions;
    s->records = std::move(dead);
    s->dead_letter = true;
    state->metrics->dead_lettered->inc(s->records.size());
    subs.push_back(std::move(s));
  }
  state->hist = processing_seconds;  // observed when the request is answered
  state->done = std::move(done);
  if (subs.empty()) {
    Appender::complete(*state);
    return;
  }
  if (cfg.ack == AckMode::kBuffered) {
    IngestResult early = state->result;
    auto d = std::move(state->done);  // complete() does not touch it once responded is set
    state->responded = true;  // set before any shard can complete the request
    state->remaining.store(static_cast<int>(subs.size()), std::memory_order_release);
    for (auto& s : subs) {
      size_t shard = (std::hash<std::string>{}(s->topic) + s->partition) % shards.size();
      shards[shard]->push(std::move(s));
    }
    processing_seconds->observe(
        std::chrono::duration<double>(SteadyClock::now() - started).count());
    d(std::move(early));
    return;
  }
  state->remaining.store(static_cast<int>(subs.size()), std::memory_order_release);
  if (inline_append) {
    // The log's append does not wait for the disk: append here, on the submitting thread,
    // instead of waking a shard thread and waiting for it (two thread switches per request).
    // Concurrent submitters still share writes through the log's group commit.
    inline_active.fetch_add(1);
    if (running.load()) {
      thread_local Appender* current = nullptr;
      if (current == nullptr) {  // reentrant submits (from a done callback) get their own
        thread_local Appender mine(nullptr, 0, nullptr);
        mine.rebind(log, cfg.batch_size, &queued);
        current = &mine;
        mine.process(subs);
        current = nullptr;
      } else {
        Appender a(log, cfg.batch_size, &queued);
        a.process(subs);
      }
    } else {
      for (auto& s : subs) {  // stop() started: fail instead of appending to a closing log
        {
          std::lock_guard lk(state->mu);
          if (state->failure.ok()) state->failure = Unavailable("ingestion is stopping");
        }
        queued.fetch_sub(s->records.size(), std::memory_order_relaxed);
        if (state->metrics) state->metrics->queue_size->sub(static_cast<double>(s->records.size()));
        Appender::finish(state);
      }
    }
    inline_active.fetch_sub(1);
    return;
  }
  for (auto& s : subs) {
    size_t shard = (std::hash<std::string>{}(s->topic) + s->partition) % shards.size();
    shards[shard]->push(std::move(s));
  }
}

Status for_each_record_since(Log& log,
                             const std::map<std::string, std::vector<int64_t>>& from_offsets,
                             const std::function<void(const FetchResult&, const RecordView&)>& fn) {
  for (const std::string& topic : log.list_topics()) {
    SPATE_ASSIGN_OR_RETURN(TopicInfo info, log.describe_topic(topic));
    auto it = from_offsets.find(topic);
    for (uint32_t p = 0; p < info.partitions; ++p) {
      const PartitionInfo& pi = info.partition_info[p];
      int64_t off = pi.start_offset;
      if (it != from_offsets.end() && p < it->second.size()) off = std::max(off, it->second[p]);
      while (off < pi.end_offset) {
        FetchOptions fo;
        fo.max_records = 10000;
        fo.max_bytes = 16 << 20;
        SPATE_ASSIGN_OR_RETURN(FetchResult fr, log.fetch(topic, p, off, fo));
        if (fr.records().empty()) {
        if (fr.next_offset > off) {  // skipped transaction markers or aborted records
          off = fr.next_offset;
          continue;
        }
        break;
      }
        for (const RecordView& r : fr.records()) fn(fr, r);
        off = fr.next_offset;
      }
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> stored_positions(
    Log& log, std::string_view source,
    const std::map<std::string, std::vector<int64_t>>& from_offsets) {
  std::vector<std::string> out;
  SPATE_RETURN_IF_ERROR(for_each_record_since(
      log, from_offsets, [&](const FetchResult& fr, const RecordView& r) {
        if (r.header_count < 2) return;
        auto hs = fr.headers_of(r);
        if (hs[0].key == "spate.source" && hs[0].value == source && hs[1].key == "spate.pos") {
          out.emplace_back(hs[1].value);
        }
      }));
  return out;
}

std::map<std::string, std::vector<int64_t>> end_offsets(Log& log) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const std::string& topic : log.list_topics()) {
    auto info = log.describe_topic(topic);
    if (!info.ok()) continue;
    auto& v = out[topic];
    for (const auto& pi : info->partition_info) v.push_back(pi.end_offset);
  }
  return out;
}

}  // namespace spate
