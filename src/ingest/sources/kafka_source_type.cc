// Source type "kafka": consumes topics of a Kafka cluster (any cluster: the pipeline's own log
// may be embedded) into the pipeline, with the same decoding, validation, dedup and routing as
// HTTP. Options (docs/sources.md#kafka):
//   topics:             required; the Kafka topics to consume (each record value is one JSON event)
//   bootstrap_servers:  default $KAFKA_BOOTSTRAP_SERVERS
//   group:              consumer group whose committed offsets are the source's position
//                       (default spate.source.NAME)
//   start:              earliest (default) | latest: where a group without offsets starts
//   batch_records:      records per submission at most (default 1000)
//   poll_interval:      wait after a poll that found nothing (default 100ms)
//   security_protocol, sasl_mechanism, sasl_username, sasl_password, ssl_ca_location,
//   ssl_certificate_location, ssl_key_location, ssl_key_password: as in log.kafka (and the same
//   KAFKA_* environment variables)
//
// Delivery: at-least-once. A batch is submitted to the engine; only once the engine has
// acknowledged it (stored under its ack policy, bad events dead-lettered) are the group's
// offsets committed. A crash between the two ingests the batch again (dedup removes the
// repeats when ingestion.dedup is on). Every stored event carries spate.source = NAME and
// spate.pos = TOPIC/PARTITION/OFFSET.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "ingest/source.h"
#include "spate/log.h"
#include "spate/metrics.h"

namespace spate::ingest {
namespace {

struct KafkaSourceOptions {
  std::vector<std::string> topics;
  std::string group;
  std::string start = "earliest";
  int64_t batch_records = 1000;
  int64_t poll_interval_ms = 100;
  KafkaLogConfig kafka;
};

Status read_options(const SourceConfig& cfg, KafkaSourceOptions* o) {
  OptionReader r(cfg);
  if (r.get_list("topics", &o->topics, true)) {
    if (o->topics.empty()) r.error("topics", "list at least one Kafka topic");
    for (const std::string& t : o->topics) {
      if (Status s = validate_topic_name(t); !s.ok()) r.error("topics", s.message());
    }
  }
  r.get_string("bootstrap_servers", &o->kafka.bootstrap_servers);
  if (kafka_bootstrap_servers(o->kafka).empty()) {
    r.error("bootstrap_servers",
            "missing: set bootstrap_servers (host:port,...) or the "
            "KAFKA_BOOTSTRAP_SERVERS environment variable");
  }
  o->group = "spate.source." + cfg.name;
  if (r.get_string("group", &o->group) && o->group.empty()) r.error("group", "must not be empty");
  r.get_enum("start", &o->start, {"earliest", "latest"});
  r.get_int("batch_records", &o->batch_records, 1, 1'000'000);
  r.get_duration_ms("poll_interval", &o->poll_interval_ms, 1, 3'600'000);
  r.get_enum("security_protocol", &o->kafka.security_protocol,
             {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"});
  r.get_enum("sasl_mechanism", &o->kafka.sasl_mechanism,
             {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"});
  r.get_string("sasl_username", &o->kafka.sasl_username);
  r.get_string("sasl_password", &o->kafka.sasl_password);
  r.get_string("ssl_ca_location", &o->kafka.ssl_ca_location);
  r.get_string("ssl_certificate_location", &o->kafka.ssl_certificate_location);
  r.get_string("ssl_key_location", &o->kafka.ssl_key_location);
  r.get_string("ssl_key_password", &o->kafka.ssl_key_password);
  return r.finish();
}

class KafkaSource final : public Source {
 public:
  KafkaSource(const SourceConfig& cfg, KafkaSourceOptions opts, SourceContext& ctx)
      : name_(cfg.name), topic_(cfg.topic), opts_(std::move(opts)), engine_(ctx.engine) {
    // A batch larger than the engine's queue would be refused forever (kOverloaded).
    batch_ = std::min<size_t>(static_cast<size_t>(opts_.batch_records),
                              std::max<size_t>(1, engine_->config().max_queue_size));
    MetricsRegistry* m = ctx.metrics ? ctx.metrics : &global_metrics();
    const MetricLabels l = {{"source", name_}};
    records_ = &m->counter("ingestion_kafka_records_total",
                           "Records consumed from Kafka and acknowledged by ingestion", l);
    errors_ = &m->counter("ingestion_kafka_errors_total",
                          "Kafka source failures: fetches, refused batches, offset commits", l);
    lag_ = &m->gauge("ingestion_kafka_lag", "Records in the source topics not yet ingested", l);
  }
  ~KafkaSource() override { stop(); }

  Status start() override {
    if (thread_.joinable()) return Internal("kafka source " + name_ + ": started twice");
    LogConfig lc;
    lc.kind = "kafka";
    lc.kafka = opts_.kafka;
    lc.auto_create_topics = false;
    SPATE_ASSIGN_OR_RETURN(kafka_, open_kafka_log(lc));
    for (const std::string& t : opts_.topics) {
      auto info = kafka_->describe_topic(t);
      if (!info.ok()) {
        return info.status().with_context("kafka source " + name_ + ": topic " + t);
      }
      for (const PartitionInfo& p : info->partition_info) {
        SPATE_ASSIGN_OR_RETURN(std::optional<int64_t> committed,
                               kafka_->committed_offset(opts_.group, t, p.partition));
        Position pos;
        pos.topic = t;
        pos.partition = p.partition;
        pos.offset =
            committed ? *committed : (opts_.start == "latest" ? p.end_offset : p.start_offset);
        positions_.push_back(pos);
      }
    }
    spdlog::info("kafka source {}: consuming {} partitions of {} as group {}", name_,
                 positions_.size(), fmt::join(opts_.topics, ","), opts_.group);
    thread_ = std::thread([this] { run(); });
    return Status::Ok();
  }

  void stop() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    if (kafka_) (void)kafka_->close();
  }

 private:
  struct Position {
    std::string topic;
    uint32_t partition = 0;
    int64_t offset = 0;
    int64_t next = 0;  // after the batch being delivered
    int64_t end = 0;
  };

  bool sleep_ms(int64_t ms) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stopping_; });
    return !stopping_;
  }
  bool stopping() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  void run() {
    int64_t backoff = 0;
    size_t next_partition = 0;
    while (!stopping()) {
      IngestRequest req;
      req.topic = topic_;
      req.format = BodyFormat::kNdjson;
      req.source.name = name_;
      size_t n = 0;
      bool fetch_failed = false;
      int64_t lag = 0;
      for (size_t k = 0; k < positions_.size(); ++k) {
        Position& p = positions_[(next_partition + k) % positions_.size()];
        p.next = p.offset;
        if (n >= batch_) continue;
        FetchOptions fo;
        fo.max_records = batch_ - n;
        auto fr = kafka_->fetch(p.topic, p.partition, p.offset, fo);
        if (!fr.ok()) {
          if (!fetch_failed) {
            spdlog::warn("kafka source {}: fetching {}[{}]: {}", name_, p.topic, p.partition,
                         fr.status().to_string());
          }
          fetch_failed = true;
          continue;
        }
        for (const RecordView& r : fr->records()) {
          // One event per line: newlines are only whitespace outside JSON strings (and invalid
          // inside them), so they are blanked rather than allowed to split a record.
          const size_t at = req.body.size();
          req.body.append(r.value);
          std::replace_if(
              req.body.begin() + static_cast<std::ptrdiff_t>(at), req.body.end(),
              [](char c) { return c == '\n' || c == '\r'; }, ' ');
          req.body.push_back('\n');
          req.event_positions.push_back(fmt::format("{}/{}/{}", p.topic, p.partition, r.offset));
          ++n;
        }
        p.next = fr->next_offset;
        p.end = fr->end_offset;
        lag += std::max<int64_t>(0, p.end - p.next);
      }
      next_partition = positions_.empty() ? 0 : (next_partition + 1) % positions_.size();
      lag_->set(static_cast<double>(lag));
      if (fetch_failed) errors_->inc();
      if (n == 0) {
        // Positions may still move (past transaction markers).
        commit_moved();
        if (!sleep_ms(fetch_failed ? std::max<int64_t>(opts_.poll_interval_ms, 500)
                                   : opts_.poll_interval_ms)) {
          return;
        }
        continue;
      }
      if (!deliver(std::move(req), n, &backoff)) return;
      records_->inc(n);
      commit_moved();
    }
  }

  // Submit until the engine acknowledges; false if stopping first (offsets then unchanged).
  bool deliver(IngestRequest req, size_t n, int64_t* backoff) {
    while (true) {
      IngestRequest attempt = req;
      IngestResult r = submit_and_wait(*engine_, std::move(attempt));
      if (r.status == IngestStatus::kOk) {
        *backoff = 0;
        if (r.rejected > 0) {
          errors_->inc(r.rejected);
          spdlog::warn(
              "kafka source {}: {} of {} records were rejected ({}{}) and {}", name_, r.rejected, n,
              r.errors.empty() ? "" : "first: ", r.errors.empty() ? "" : r.errors.front().reason,
              engine_->config().dead_letter_topic.empty() ? "not stored (no dead_letter_topic)"
                                                          : "dead-lettered");
        }
        return true;
      }
      errors_->inc();
      *backoff = std::min<int64_t>(*backoff == 0 ? 100 : *backoff * 2, 10'000);
      spdlog::warn("kafka source {}: ingestion refused {} records: {} (retrying in {} ms)", name_,
                   n, r.message.empty() ? "no reason given" : r.message, *backoff);
      if (!sleep_ms(*backoff)) return false;
    }
  }

  // Commit the offsets that moved (the batch is acknowledged). A failed commit is retried with
  // the next one; a restart before it ingests those records again (at-least-once).
  void commit_moved() {
    std::map<std::string, std::map<uint32_t, int64_t>> by_topic;
    for (Position& p : positions_) {
      if (p.next > p.offset) by_topic[p.topic][p.partition] = p.next;
    }
    for (const auto& [topic, offs] : by_topic) {
      Status s = kafka_->commit_offsets(opts_.group, topic, offs);
      if (!s.ok()) {
        errors_->inc();
        spdlog::warn("kafka source {}: committing offsets of {}: {}", name_, topic, s.to_string());
      }
    }
    for (Position& p : positions_) p.offset = std::max(p.offset, p.next);
  }

  const std::string name_;
  const std::string topic_;
  const KafkaSourceOptions opts_;
  DataIngestionEngine* engine_;
  size_t batch_ = 1000;
  std::unique_ptr<Log> kafka_;
  std::vector<Position> positions_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Counter* records_;
  Counter* errors_;
  Gauge* lag_;
};

}  // namespace

SourceType kafka_source_type() {
  SourceType t;
  t.type = "kafka";
  t.validate = [](const SourceConfig& cfg) {
    KafkaSourceOptions o;
    return read_options(cfg, &o);
  };
  t.create = [](const SourceConfig& cfg, SourceContext& ctx) -> Result<std::unique_ptr<Source>> {
    KafkaSourceOptions o;
    SPATE_RETURN_IF_ERROR(read_options(cfg, &o));
    if (ctx.engine == nullptr) return Internal("kafka source needs the ingestion engine");
    return std::unique_ptr<Source>(new KafkaSource(cfg, std::move(o), ctx));
  };
  return t;
}

}  // namespace spate::ingest
