// The Log interface on Apache Kafka through librdkafka (log: {kind: kafka}). This folder is the
// only place that includes librdkafka. See docs/kafka.md for the mapping and its limits.
//
// Handles:
//  - one idempotent producer for Log::append, whose delivery reports are served by a poller
//    thread and complete the waiting append;
//  - one consumer per isolation level for Log::fetch, using librdkafka's partition consumer
//    (consume_start/consume_batch): a fetch at the offset where the last one ended continues
//    the prefetched stream, any other offset restarts the partition there;
//  - one consumer handle per consumer group (never subscribed) for commit/committed offsets;
//  - one transactional producer per TransactionalProducer.
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "spate/log.h"

namespace spate {
namespace {

constexpr int kIsolations = 2;

std::string env_or(const std::string& v, const char* name) {
  if (!v.empty()) return v;
  const char* e = std::getenv(name);
  return e != nullptr ? std::string(e) : std::string();
}

Errc errc_of(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return Errc::kNotFound;
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
      return Errc::kAlreadyExists;
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:  // out of range with auto.offset.reset=error
      return Errc::kOutOfRange;
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR__FENCED:
      return Errc::kFenced;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
      return Errc::kInvalidArgument;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return Errc::kTimeout;
    default:
      // Transport, leadership, authorisation, full queues, timeouts of messages: the cluster
      // may answer later; callers retry or report 503.
      return Errc::kUnavailable;
  }
}

Status kafka_error(rd_kafka_resp_err_t err, std::string_view what) {
  return Status(errc_of(err), std::string(what) + ": " + rd_kafka_err2str(err));
}

void log_cb(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  const auto lv = level <= 3   ? spdlog::level::err
                  : level == 4 ? spdlog::level::warn
                  : level <= 6 ? spdlog::level::info
                               : spdlog::level::debug;
  spdlog::log(lv, "kafka {} {}: {}", rd_kafka_name(rk), fac, buf);
}

// A handle's configuration. `secret` values never appear in errors.
class Conf {
 public:
  Conf() : c_(rd_kafka_conf_new()) {}
  ~Conf() {
    if (c_ != nullptr) rd_kafka_conf_destroy(c_);
  }
  Conf(const Conf&) = delete;
  Conf& operator=(const Conf&) = delete;
  void set(const std::string& k, const std::string& v, bool secret = false) {
    if (v.empty() || !status_.ok()) return;
    char err[512];
    if (rd_kafka_conf_set(c_, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      status_ = ConfigError("log.kafka: librdkafka property " + k +
                            (secret ? std::string() : " = \"" + v + "\"") + ": " + err);
    }
  }
  rd_kafka_conf_t* get() { return c_; }
  // rd_kafka_new() took ownership.
  rd_kafka_conf_t* release() {
    rd_kafka_conf_t* c = c_;
    c_ = nullptr;
    return c;
  }
  const Status& status() const { return status_; }

 private:
  rd_kafka_conf_t* c_;
  Status status_;
};

void common_conf(const KafkaLogConfig& kc, Conf& c) {
  c.set("bootstrap.servers", kc.bootstrap_servers);
  c.set("client.id", kc.client_id);
  c.set("security.protocol", kc.security_protocol);
  c.set("sasl.mechanisms", kc.sasl_mechanism);
  c.set("sasl.username", kc.sasl_username);
  c.set("sasl.password", kc.sasl_password, true);
  c.set("ssl.ca.location", kc.ssl_ca_location);
  c.set("ssl.certificate.location", kc.ssl_certificate_location);
  c.set("ssl.key.location", kc.ssl_key_location);
  c.set("ssl.key.password", kc.ssl_key_password, true);
  c.set("socket.timeout.ms", std::to_string(std::max<int64_t>(kc.request_timeout_ms, 10)));
  c.set("log.connection.close", "false");
  rd_kafka_conf_set_log_cb(c.get(), log_cb);
}

void producer_conf(const KafkaLogConfig& kc, Conf& c) {
  common_conf(kc, c);
  c.set("enable.idempotence", kc.enable_idempotence ? "true" : "false");
  c.set("acks", kc.acks);
  c.set("linger.ms", std::to_string(kc.linger_ms));
  c.set("batch.size", std::to_string(kc.batch_size));
  c.set("compression.type", kc.compression_type);
  c.set("retries", std::to_string(kc.retries));
  c.set("max.in.flight.requests.per.connection",
        std::to_string(kc.max_in_flight_requests_per_connection));
  c.set("delivery.timeout.ms", std::to_string(kc.delivery_timeout_ms));
  c.set("request.timeout.ms", std::to_string(kc.request_timeout_ms));
  c.set("queue.buffering.max.messages", std::to_string(kc.queue_max_messages));
}

void apply_properties(const KafkaLogConfig& kc, Conf& c) {
  for (const auto& [k, v] : kc.properties) {
    const bool secret =
        k.find("password") != std::string::npos || k.find("secret") != std::string::npos;
    c.set(k, v, secret);
  }
}

Result<rd_kafka_t*> new_handle(rd_kafka_type_t type, Conf& c) {
  if (!c.status().ok()) return c.status();
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, c.get(), err, sizeof err);
  if (rk == nullptr) return ConfigError(std::string("log.kafka: ") + err);
  c.release();
  return rk;
}

// rd_kafka_error_t -> Status; destroys the error.
Status take_error(rd_kafka_error_t* e, std::string_view what) {
  if (e == nullptr) return Status::Ok();
  Status s(errc_of(rd_kafka_error_code(e)), std::string(what) + ": " + rd_kafka_error_string(e));
  rd_kafka_error_destroy(e);
  return s;
}

struct PartitionList {
  rd_kafka_topic_partition_list_t* l;
  explicit PartitionList(int n) : l(rd_kafka_topic_partition_list_new(n)) {}
  ~PartitionList() { rd_kafka_topic_partition_list_destroy(l); }
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
};

// Commit `offsets` of `topic` through consumer handle `rk` (of `group`), synchronously.
Status commit_through(rd_kafka_t* rk, std::string_view group, std::string_view topic,
                      const std::map<uint32_t, int64_t>& offsets) {
  if (offsets.empty()) return Status::Ok();
  PartitionList pl(static_cast<int>(offsets.size()));
  const std::string t(topic);
  for (const auto& [p, off] : offsets) {
    if (off < 0) return InvalidArgument("negative offset to commit");
    rd_kafka_topic_partition_list_add(pl.l, t.c_str(), static_cast<int32_t>(p))->offset = off;
  }
  rd_kafka_resp_err_t e = rd_kafka_commit(rk, pl.l, 0);
  for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < pl.l->cnt; ++i) e = pl.l->elems[i].err;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka_error(e, fmt::format("committing offsets of group {} on {}", group, topic));
  }
  return Status::Ok();
}

// The committed offset of topic[partition] for the group of consumer handle `rk`.
Result<std::optional<int64_t>> committed_through(rd_kafka_t* rk, std::string_view group,
                                                 std::string_view topic, uint32_t partition,
                                                 int timeout_ms) {
  PartitionList pl(1);
  rd_kafka_topic_partition_list_add(pl.l, std::string(topic).c_str(),
                                    static_cast<int32_t>(partition));
  rd_kafka_resp_err_t e = rd_kafka_committed(rk, pl.l, timeout_ms);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = pl.l->elems[0].err;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return kafka_error(e, fmt::format("reading committed offsets of group {}", group));
  }
  const int64_t off = pl.l->elems[0].offset;
  if (off < 0) return std::optional<int64_t>();
  return std::optional<int64_t>(off);
}

// What one append waits for: a delivery report per record. Shared by the append (which may
// stop waiting after delivery_timeout_ms: the idempotent producer never times out records
// already sent, so a request in flight when the brokers vanish waits for their return) and
// the delivery reports; the last of them frees it.
struct Delivery {
  explicit Delivery(size_t records) : pending(records), refs(records + 1) {}
  std::atomic<size_t> pending;
  std::atomic<size_t> refs;  // pending reports + the waiting append
  std::atomic<int64_t> first_offset{std::numeric_limits<int64_t>::max()};
  std::atomic<int> err{RD_KAFKA_RESP_ERR_NO_ERROR};
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;

  void report(rd_kafka_resp_err_t e, int64_t offset) {
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      int expected = RD_KAFKA_RESP_ERR_NO_ERROR;
      err.compare_exchange_strong(expected, e);
    } else {
      int64_t cur = first_offset.load(std::memory_order_relaxed);
      while (offset < cur && !first_offset.compare_exchange_weak(cur, offset)) {
      }
    }
    finish(1);
  }
  // n records are reported (or were never produced).
  void finish(size_t n) {
    if (pending.fetch_sub(n, std::memory_order_acq_rel) == n) {
      std::lock_guard lk(mu);
      done = true;
      cv.notify_all();
    }
    release(n);
  }
  // True if every record was reported within `ms`.
  bool wait(int64_t ms) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return done; });
  }
  void release(size_t n) {
    if (refs.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
  }
};

void dr_msg_cb(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  static_cast<Delivery*>(m->_private)->report(m->err, m->offset);
}

// Fills `vus` with the produce arguments of record r (topic handle, partition, payload, key,
// timestamp, headers, opaque).
void produce_args(std::vector<rd_kafka_vu_t>& vus, rd_kafka_topic_t* rkt, uint32_t partition,
                  const RecordIn& r, void* opaque, int flags) {
  vus.clear();
  rd_kafka_vu_t v{};
  v.vtype = RD_KAFKA_VTYPE_RKT;
  v.u.rkt = rkt;
  vus.push_back(v);
  v.vtype = RD_KAFKA_VTYPE_PARTITION;
  v.u.i32 = static_cast<int32_t>(partition);
  vus.push_back(v);
  v.vtype = RD_KAFKA_VTYPE_VALUE;
  v.u.mem.ptr = const_cast<char*>(r.value.data());
  v.u.mem.size = r.value.size();
  vus.push_back(v);
  if (r.key) {
    static const char kEmpty = 0;
    v.vtype = RD_KAFKA_VTYPE_KEY;
    v.u.mem.ptr = const_cast<char*>(r.key->empty() ? &kEmpty : r.key->data());
    v.u.mem.size = r.key->size();
    vus.push_back(v);
  }
  if (r.timestamp_ms != 0) {
    v.vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    v.u.i64 = r.timestamp_ms;
    vus.push_back(v);
  }
  for (uint32_t h = 0; h < r.header_count; ++h) {
    v.vtype = RD_KAFKA_VTYPE_HEADER;
    v.u.header.name = r.headers[h].key.data();  // NUL-terminated copies are made below
    v.u.header.val = r.headers[h].value.data();
    v.u.header.size = static_cast<ssize_t>(r.headers[h].value.size());
    vus.push_back(v);
  }
  v.vtype = RD_KAFKA_VTYPE_OPAQUE;
  v.u.ptr = opaque;
  vus.push_back(v);
  v.vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  v.u.i32 = flags;
  vus.push_back(v);
}

// Header names must be NUL-terminated for librdkafka; a record's names are copied into `names`
// and the HEADER arguments repointed at the copies.
void terminate_header_names(std::vector<rd_kafka_vu_t>& vus, std::vector<std::string>& names,
                            const RecordIn& r) {
  if (r.header_count == 0) return;
  names.resize(r.header_count);
  uint32_t h = 0;
  for (auto& v : vus) {
    if (v.vtype != RD_KAFKA_VTYPE_HEADER) continue;
    names[h].assign(r.headers[h].key);
    v.u.header.name = names[h].c_str();
    ++h;
  }
}

// A dynamic member of a consumer group: a subscribed consumer whose partitions are paused as
// soon as they are assigned (records are read with the partition consumer of KafkaLog::fetch);
// a thread polls it for rebalance events and to stay within max.poll.interval.ms.
class KafkaGroupMember final : public GroupMembership {
 public:
  KafkaGroupMember() = default;
  ~KafkaGroupMember() override { leave(); }

  Status start(const KafkaLogConfig& kc, std::string_view group,
               const std::vector<std::string>& topics, const GroupOptions& opts) {
    group_ = std::string(group);
    Conf c;
    common_conf(kc, c);
    c.set("group.id", group_);
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c.set("enable.partition.eof", "false");
    c.set("partition.assignment.strategy", opts.assignment_strategy);
    c.set("session.timeout.ms", std::to_string(opts.session_timeout_ms));
    c.set("heartbeat.interval.ms",
          std::to_string(std::max<int64_t>(opts.session_timeout_ms / 10, 100)));
    c.set("max.poll.interval.ms", std::to_string(opts.max_poll_interval_ms));
    apply_properties(kc, c);
    rd_kafka_conf_set_opaque(c.get(), this);
    rd_kafka_conf_set_rebalance_cb(
        c.get(), [](rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                    void* op) { static_cast<KafkaGroupMember*>(op)->rebalance(rk, err, parts); });
    SPATE_ASSIGN_OR_RETURN(rk_, new_handle(RD_KAFKA_CONSUMER, c));
    PartitionList sub(static_cast<int>(topics.size()));
    for (const std::string& t : topics) {
      rd_kafka_topic_partition_list_add(sub.l, t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    if (rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, sub.l); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return kafka_error(e, "joining group " + group_);
    }
    poller_ = std::thread([this] {
      while (!stop_.load()) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 100);
        if (m != nullptr) rd_kafka_message_destroy(m);  // paused partitions; errors are logged
      }
    });
    return Status::Ok();
  }

  GroupAssignment assignment() override {
    std::lock_guard lk(mu_);
    return assignment_;
  }

  Status commit(std::string_view topic, const std::map<uint32_t, int64_t>& offsets) override {
    if (rk_ == nullptr) return Unavailable("left the group");
    return commit_through(rk_, group_, topic, offsets);
  }

  Result<std::optional<int64_t>> committed(std::string_view topic, uint32_t partition) override {
    if (rk_ == nullptr) return Unavailable("left the group");
    return committed_through(rk_, group_, topic, partition, 10'000);
  }

  void leave() override {
    if (rk_ == nullptr) return;
    stop_.store(true);
    if (poller_.joinable()) poller_.join();
    (void)rd_kafka_consumer_close(rk_);  // leaves the group (runs the final revoke)
    // librdkafka before 2.3.0 asserts when a cooperative-sticky consumer that never received
    // an assignment is destroyed (librdkafka issue #4312; Debian 12 has 2.0.2). Such a handle,
    // already out of the group, is left to the process's exit instead of crashing it.
    if (synced_.load() || rd_kafka_version() >= 0x020300ff) rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }

 private:
  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    std::lock_guard lk(mu_);
    auto& cur = assignment_.partitions;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      synced_.store(true);  // the assignor has its state now (see leave())
      if (cooperative) {
        (void)take_error(rd_kafka_incremental_assign(rk, parts), "incremental assign");
      } else {
        (void)rd_kafka_assign(rk, parts);
        cur.clear();
      }
      (void)rd_kafka_pause_partitions(rk, parts);
      for (int i = 0; i < parts->cnt; ++i) {
        cur.push_back({parts->elems[i].topic, static_cast<uint32_t>(parts->elems[i].partition)});
      }
    } else {  // revoked (or lost)
      if (cooperative) {
        (void)take_error(rd_kafka_incremental_unassign(rk, parts), "incremental unassign");
        for (int i = 0; i < parts->cnt; ++i) {
          const std::string t = parts->elems[i].topic;
          const auto p = static_cast<uint32_t>(parts->elems[i].partition);
          std::erase_if(cur,
                        [&](const GroupPartition& g) { return g.topic == t && g.partition == p; });
        }
      } else {
        (void)rd_kafka_assign(rk, nullptr);
        cur.clear();
      }
    }
    if (parts->cnt == 0) return;
    ++assignment_.generation;
    spdlog::info("kafka group {}: {} {} partitions, {} assigned now", group_,
                 err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked", parts->cnt,
                 cur.size());
  }

  std::string group_;
  rd_kafka_t* rk_ = nullptr;
  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};  // an assignment (possibly empty) was received
  std::mutex mu_;
  GroupAssignment assignment_;
};

class KafkaLog;

class KafkaTxnProducer final : public TransactionalProducer {
 public:
  KafkaTxnProducer(KafkaLog* log, std::string id) : log_(log), id_(std::move(id)) {}
  ~KafkaTxnProducer() override {
    if (rk_ != nullptr) {
      if (open_ && !fenced_) (void)take_error(rd_kafka_abort_transaction(rk_, 5000), "abort");
      rd_kafka_destroy(rk_);
    }
  }
  Status init();
  Status begin() override;
  Result<int64_t> append(std::string_view topic, uint32_t partition, const RecordIn* records,
                         size_t count) override;
  Status send_offsets(std::string_view group, std::string_view topic,
                      const std::map<uint32_t, int64_t>& next_offsets) override;
  Status commit() override;
  Status abort() override;

 private:
  Status end_transaction(bool commit);
  // Classifies a transactional API error (and destroys it).
  Status txn_error(rd_kafka_error_t* e, std::string_view what);
  Status usable() const {
    if (fenced_) return Fenced("transactional id " + id_ + " is used by a newer producer");
    if (rk_ == nullptr) return Unavailable("transactional producer " + id_ + " is not initialised");
    return Status::Ok();
  }

  KafkaLog* log_;
  std::string id_;
  rd_kafka_t* rk_ = nullptr;
  bool open_ = false;
  bool fenced_ = false;
  bool fatal_ = false;  // a fatal error other than fencing: re-created on the next begin()
  std::vector<rd_kafka_vu_t> vus_;
  std::vector<std::string> names_;
};

class KafkaLog final : public Log {
 public:
  // The environment's settings are read once, here (handles are created lazily later).
  explicit KafkaLog(LogConfig cfg) : cfg_(std::move(cfg)), kc_(cfg_.kafka) {
    KafkaLogConfig& k = cfg_.kafka;
    k.bootstrap_servers = kafka_bootstrap_servers(k);
    k.security_protocol = env_or(k.security_protocol, "KAFKA_SECURITY_PROTOCOL");
    k.sasl_mechanism = env_or(k.sasl_mechanism, "KAFKA_SASL_MECHANISM");
    k.sasl_username = env_or(k.sasl_username, "KAFKA_SASL_USERNAME");
    k.sasl_password = env_or(k.sasl_password, "KAFKA_SASL_PASSWORD");
  }
  ~KafkaLog() override { (void)close(); }

  Status open() {
    if (kafka_bootstrap_servers(kc_).empty()) {
      return ConfigError(
          "log kind kafka needs kafka.bootstrap_servers or $KAFKA_BOOTSTRAP_SERVERS");
    }
    Conf c;
    producer_conf(kc_, c);
    rd_kafka_conf_set_dr_msg_cb(c.get(), dr_msg_cb);
    rd_kafka_conf_set_error_cb(c.get(), [](rd_kafka_t*, int err, const char* reason, void* op) {
      auto* self = static_cast<KafkaLog*>(op);
      if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        self->set_unreachable(std::string("all brokers are down: ") + reason);
      } else if (err != RD_KAFKA_RESP_ERR__TRANSPORT) {
        spdlog::warn("kafka: {}: {}", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)),
                     reason);
      }
    });
    rd_kafka_conf_set_opaque(c.get(), this);
    apply_properties(kc_, c);
    SPATE_ASSIGN_OR_RETURN(producer_, new_handle(RD_KAFKA_PRODUCER, c));
    poller_ = std::thread([this] {
      while (!stop_.load()) rd_kafka_poll(producer_, 100);
    });
    // The cluster must answer once before the log is usable.
    auto topics = all_topics();
    if (!topics.ok()) {
      return topics.status().with_context("connecting to Kafka at " + kafka_bootstrap_servers(kc_));
    }
    prober_ = std::thread([this] { probe_loop(); });
    return Status::Ok();
  }

  Status create_topic(const TopicSpec& spec) override {
    SPATE_RETURN_IF_ERROR(validate_topic_name(spec.name));
    const int parts = static_cast<int>(spec.partitions ? spec.partitions : cfg_.default_partitions);
    char err[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(
        spec.name.c_str(), parts, static_cast<int>(kc_.replication_factor), err, sizeof err);
    if (nt == nullptr) return InvalidArgument("topic " + spec.name + ": " + err);
    auto set_config = [&](const char* k, const std::string& v) {
      (void)rd_kafka_NewTopic_set_config(nt, k, v.c_str());
    };
    if (spec.retention) {
      set_config("retention.ms", std::to_string(spec.retention->ms));
      set_config("retention.bytes", std::to_string(spec.retention->bytes));
    }
    if (spec.compression) {
      set_config("compression.type", *spec.compression == Compression::kNone
                                         ? std::string("producer")
                                         : std::string(compression_name(*spec.compression)));
    }
    rd_kafka_queue_t* q = rd_kafka_queue_new(producer_);
    rd_kafka_AdminOptions_t* opts =
        rd_kafka_AdminOptions_new(producer_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    (void)rd_kafka_AdminOptions_set_request_timeout(opts, static_cast<int>(kc_.admin_timeout_ms),
                                                    err, sizeof err);
    (void)rd_kafka_AdminOptions_set_operation_timeout(opts, static_cast<int>(kc_.admin_timeout_ms),
                                                      err, sizeof err);
    rd_kafka_CreateTopics(producer_, &nt, 1, opts, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(kc_.admin_timeout_ms + 2000));
    Status st;
    if (ev == nullptr || rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      st = Unavailable("creating topic " + spec.name + ": " +
                       (ev ? rd_kafka_event_error_string(ev) : "no answer") +
                       " (brokers without the CreateTopics API, such as librdkafka's mock "
                       "cluster, need the topic created beforehand)");
    } else {
      size_t n = 0;
      const rd_kafka_topic_result_t** tr =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
      for (size_t i = 0; i < n; ++i) {
        const rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        const char* msg = rd_kafka_topic_result_error_string(tr[i]);
        st = Status(errc_of(e),
                    "creating topic " + spec.name + ": " + (msg ? msg : rd_kafka_err2str(e)));
      }
    }
    if (ev != nullptr) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    SPATE_RETURN_IF_ERROR(st);
    // Metadata catches up with a creation shortly after; wait for it (bounded).
    for (int i = 0; i < 50; ++i) {
      auto t = all_topics();
      if (t.ok() && t->count(spec.name)) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return Status::Ok();
  }

  Status ensure_topic(const TopicSpec& spec) override {
    SPATE_ASSIGN_OR_RETURN(auto topics, all_topics());
    if (topics.count(spec.name)) return Status::Ok();
    Status s = create_topic(spec);
    return s.code() == Errc::kAlreadyExists ? Status::Ok() : s;
  }

  std::vector<std::string> list_topics() const override {
    std::vector<std::string> out;
    auto t = const_cast<KafkaLog*>(this)->all_topics();
    if (!t.ok()) return out;
    for (const auto& [name, parts] : *t) out.push_back(name);
    return out;
  }

  Result<TopicInfo> describe_topic(std::string_view topic) const override {
    auto* self = const_cast<KafkaLog*>(this);
    SPATE_ASSIGN_OR_RETURN(auto topics, self->all_topics());
    auto it = topics.find(std::string(topic));
    if (it == topics.end()) return NotFound("topic " + std::string(topic) + " does not exist");
    TopicInfo info;
    info.name = it->first;
    info.partitions = it->second;
    info.retention = cfg_.retention;
    info.compression = cfg_.compression;
    std::vector<int64_t> starts;
    std::vector<int64_t> ends;
    SPATE_RETURN_IF_ERROR(self->list_offsets(info.name, info.partitions, -2, &starts));
    SPATE_RETURN_IF_ERROR(self->list_offsets(info.name, info.partitions, -1, &ends));
    for (uint32_t p = 0; p < info.partitions; ++p) {
      PartitionInfo pi;
      pi.partition = p;
      pi.start_offset = std::max<int64_t>(starts[p], 0);
      pi.end_offset = std::max<int64_t>(ends[p], 0);
      info.partition_info.push_back(pi);
    }
    return info;
  }

  Result<int64_t> append(std::string_view topic, uint32_t partition, const RecordIn* records,
                         size_t count) override {
    if (closed_.load()) return Unavailable("the log is closed");
    if (count == 0) return InvalidArgument("append of an empty batch");
    SPATE_ASSIGN_OR_RETURN(rd_kafka_topic_t * rkt, producer_topic(topic, partition));
    // Wait (bounded) for room for the whole batch, so that a full queue fails it before any
    // of it is sent.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kc_.queue_full_wait_ms);
    while (rd_kafka_outq_len(producer_) + static_cast<int64_t>(count) > kc_.queue_max_messages) {
      if (std::chrono::steady_clock::now() >= deadline) {
        append_errors_.fetch_add(1, std::memory_order_relaxed);
        return Unavailable(
            fmt::format("the Kafka producer queue is full ({} messages waiting for the brokers)",
                        rd_kafka_outq_len(producer_)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto* d = new Delivery(count);
    thread_local std::vector<rd_kafka_vu_t> vus;
    thread_local std::vector<std::string> names;
    size_t bytes = 0;
    Status failed;
    for (size_t i = 0; i < count; ++i) {
      produce_args(vus, rkt, partition, records[i], d, RD_KAFKA_MSG_F_COPY);
      terminate_header_names(vus, names, records[i]);
      for (;;) {
        rd_kafka_error_t* e = rd_kafka_produceva(producer_, vus.data(), vus.size());
        if (e == nullptr) break;
        if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
            std::chrono::steady_clock::now() < deadline) {
          rd_kafka_error_destroy(e);
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        failed = take_error(e, fmt::format("producing to {}[{}]", topic, partition));
        break;
      }
      if (!failed.ok()) {
        d->finish(count - i);  // the records not produced
        break;
      }
      bytes += records[i].value.size() + (records[i].key ? records[i].key->size() : 0);
    }
    const bool reported = d->wait(kc_.delivery_timeout_ms + 1000);
    const auto err = static_cast<rd_kafka_resp_err_t>(d->err.load());
    const int64_t first = d->first_offset.load();
    d->release(1);
    if (failed.ok() && !reported) {
      failed = Unavailable(fmt::format(
          "delivering to {}[{}]: no answer from the brokers within {} ms (the records may still "
          "be stored once they return)",
          topic, partition, kc_.delivery_timeout_ms));
    } else if (failed.ok() && err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failed = kafka_error(err, fmt::format("delivering to {}[{}]", topic, partition));
    }
    if (!failed.ok()) {
      append_errors_.fetch_add(1, std::memory_order_relaxed);
      return failed;
    }
    set_reachable();
    appends_.fetch_add(1, std::memory_order_relaxed);
    records_.fetch_add(count, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return first;
  }

  Result<FetchResult> fetch(std::string_view topic, uint32_t partition, int64_t offset,
                            const FetchOptions& opts) override {
    if (closed_.load()) return Unavailable("the log is closed");
    if (offset < 0) return OutOfRange("negative offset");
    SPATE_ASSIGN_OR_RETURN(Part * p, part(opts.isolation, topic, partition));
    std::lock_guard lk(p->mu);
    if (!p->started || p->next != offset) {
      if (p->started) rd_kafka_consume_stop(p->rkt, static_cast<int32_t>(partition));
      p->started = false;
      if (rd_kafka_consume_start(p->rkt, static_cast<int32_t>(partition), offset) == -1) {
        return kafka_error(rd_kafka_last_error(),
                           fmt::format("starting to fetch {}[{}]", topic, partition));
      }
      p->started = true;
      p->next = offset;
    }
    const size_t max = std::max<size_t>(1, opts.max_records);
    thread_local std::vector<rd_kafka_message_t*> msgs;
    if (msgs.size() < max) msgs.resize(max);
    const auto part32 = static_cast<int32_t>(partition);
    ssize_t n = rd_kafka_consume_batch(p->rkt, part32, 0, msgs.data(), max);
    if (n == 0 && opts.wait_ms > 0) {
      // consume_batch waits for a full batch; wait for one record, then take what is there.
      n = rd_kafka_consume_batch(p->rkt, part32, static_cast<int>(opts.wait_ms), msgs.data(), 1);
      if (n == 1 && max > 1) {
        const ssize_t more = rd_kafka_consume_batch(p->rkt, part32, 0, msgs.data() + 1, max - 1);
        if (more > 0) n += more;
      }
    }
    if (n < 0) {
      return kafka_error(rd_kafka_last_error(), fmt::format("fetching {}[{}]", topic, partition));
    }
    FetchResult out;
    size_t total = 0;
    size_t nheaders = 0;
    rd_kafka_resp_err_t first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (ssize_t i = 0; i < n; ++i) {
      const rd_kafka_message_t* m = msgs[i];
      if (m->err) continue;
      total += m->len + m->key_len;
      rd_kafka_headers_t* hs = nullptr;
      if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* val;
        size_t size;
        for (size_t h = 0; !rd_kafka_header_get_all(hs, h, &name, &val, &size); ++h) {
          total += std::strlen(name) + size;
          ++nheaders;
        }
      }
    }
    auto buf = std::make_unique<std::string>();
    buf->reserve(total);
    out.records_.reserve(static_cast<size_t>(n));
    out.headers_.reserve(nheaders);
    // Views are made from positions once the buffer is complete.
    struct Pos {
      size_t key, key_len, value, value_len;
    };
    struct HPos {
      size_t name, name_len, value, value_len;
    };
    thread_local std::vector<Pos> pos;
    thread_local std::vector<HPos> hpos;
    pos.clear();
    hpos.clear();
    int64_t next = offset;
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[i];
      if (m->err) {
        if (first_err == RD_KAFKA_RESP_ERR_NO_ERROR) first_err = m->err;
        continue;
      }
      RecordView rv;
      rv.offset = m->offset;
      rd_kafka_timestamp_type_t tt;
      rv.timestamp_ms = rd_kafka_message_timestamp(m, &tt);
      rv.has_key = m->key != nullptr;
      Pos ps{buf->size(), m->key_len, 0, m->len};
      if (m->key_len) buf->append(static_cast<const char*>(m->key), m->key_len);
      ps.value = buf->size();
      if (m->len) buf->append(static_cast<const char*>(m->payload), m->len);
      rv.header_begin = static_cast<uint32_t>(hpos.size());
      rd_kafka_headers_t* hs = nullptr;
      if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* val;
        size_t size;
        for (size_t h = 0; !rd_kafka_header_get_all(hs, h, &name, &val, &size); ++h) {
          HPos hp{buf->size(), std::strlen(name), 0, size};
          buf->append(name, hp.name_len);
          hp.value = buf->size();
          if (size) buf->append(static_cast<const char*>(val), size);
          hpos.push_back(hp);
          ++rv.header_count;
        }
      }
      out.records_.push_back(rv);
      pos.push_back(ps);
      next = m->offset + 1;
    }
    for (ssize_t i = 0; i < n; ++i) rd_kafka_message_destroy(msgs[i]);
    const char* base = buf->data();
    for (size_t i = 0; i < out.records_.size(); ++i) {
      out.records_[i].key = std::string_view(base + pos[i].key, pos[i].key_len);
      out.records_[i].value = std::string_view(base + pos[i].value, pos[i].value_len);
    }
    for (const HPos& hp : hpos) {
      out.headers_.push_back({std::string_view(base + hp.name, hp.name_len),
                              std::string_view(base + hp.value, hp.value_len)});
    }
    out.buffers_.push_back(std::move(buf));
    if (out.records_.empty() && first_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (errc_of(first_err) == Errc::kOutOfRange) {  // restart the partition next time
        rd_kafka_consume_stop(p->rkt, part32);
        p->started = false;
        // Below the retained start (retention ran): move up to it with an empty result, as
        // the embedded log does, instead of failing every fetch from here on.
        std::vector<int64_t> starts;
        std::vector<int64_t> ends;
        const std::string t(topic);
        if (list_offsets(t, partition + 1, -2, &starts).ok() &&
            list_offsets(t, partition + 1, -1, &ends).ok() && offset < starts[partition]) {
          FetchResult moved;
          moved.next_offset = starts[partition];
          moved.end_offset = std::max(ends[partition], moved.next_offset);
          moved.last_stable_offset = moved.end_offset;
          return moved;
        }
      }
      return kafka_error(first_err, fmt::format("fetching {}[{}] at {}", topic, partition, offset));
    }
    p->next = next;
    out.next_offset = next;
    int64_t lo = -1;
    int64_t hi = -1;
    rd_kafka_get_watermark_offsets(p->rk, p->topic.c_str(), part32, &lo, &hi);
    out.end_offset = std::max(hi, next);
    out.last_stable_offset = out.end_offset;
    if (!out.records_.empty()) set_reachable();
    return out;
  }

  Result<int64_t> offset_for_timestamp(std::string_view topic, uint32_t partition,
                                       int64_t ts_ms) override {
    SPATE_ASSIGN_OR_RETURN(rd_kafka_t * c, consumer(Isolation::kReadUncommitted));
    PartitionList pl(1);
    rd_kafka_topic_partition_list_add(pl.l, std::string(topic).c_str(),
                                      static_cast<int32_t>(partition))
        ->offset = std::max<int64_t>(ts_ms, 0);
    rd_kafka_resp_err_t e =
        rd_kafka_offsets_for_times(c, pl.l, static_cast<int>(kc_.request_timeout_ms));
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = pl.l->elems[0].err;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(e, "offset for timestamp");
    if (pl.l->elems[0].offset >= 0) return pl.l->elems[0].offset;
    std::vector<int64_t> ends;
    SPATE_RETURN_IF_ERROR(list_offsets(std::string(topic), partition + 1, -1, &ends));
    return ends[partition];
  }

  Status commit_offsets(std::string_view group, std::string_view topic,
                        const std::map<uint32_t, int64_t>& offsets) override {
    if (offsets.empty()) return Status::Ok();
    SPATE_ASSIGN_OR_RETURN(rd_kafka_t * g, group_handle(group));
    return commit_through(g, group, topic, offsets);
  }

  Result<std::optional<int64_t>> committed_offset(std::string_view group, std::string_view topic,
                                                  uint32_t partition) override {
    SPATE_ASSIGN_OR_RETURN(rd_kafka_t * g, group_handle(group));
    return committed_through(g, group, topic, partition, static_cast<int>(kc_.request_timeout_ms));
  }

  LogStats stats() const override {
    LogStats s;
    s.appends = appends_.load();
    s.records = records_.load();
    s.bytes = bytes_.load();
    s.write_groups = s.appends;
    s.append_errors = append_errors_.load();
    return s;
  }

  Status enforce_retention() override { return Status::Ok(); }

  Status close() override {
    if (closed_.exchange(true)) return Status::Ok();
    if (producer_ != nullptr) {
      // Deliver what is queued (bounded), then fail the rest so that every waiting append
      // returns.
      (void)rd_kafka_flush(producer_,
                           static_cast<int>(std::min<int64_t>(kc_.delivery_timeout_ms, 5000)));
      (void)rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      (void)rd_kafka_flush(producer_, 1000);
    }
    stop_.store(true);
    {
      std::lock_guard lk(probe_mu_);
      probe_cv_.notify_all();
    }
    if (poller_.joinable()) poller_.join();
    if (prober_.joinable()) prober_.join();
    std::lock_guard lk(handles_mu_);
    for (auto& [k, p] : parts_) {
      std::lock_guard pl(p->mu);
      if (p->started) rd_kafka_consume_stop(p->rkt, static_cast<int32_t>(std::get<2>(k)));
      rd_kafka_topic_destroy(p->rkt);
    }
    parts_.clear();
    for (auto& [name, rkt] : producer_topics_) rd_kafka_topic_destroy(rkt);
    producer_topics_.clear();
    for (rd_kafka_t*& c : consumers_) {
      if (c != nullptr) rd_kafka_destroy(c);
      c = nullptr;
    }
    for (auto& [g, h] : groups_) rd_kafka_destroy(h);
    groups_.clear();
    if (producer_ != nullptr) rd_kafka_destroy(producer_);
    producer_ = nullptr;
    return Status::Ok();
  }

  bool append_waits_for_disk() const override { return true; }

  Status health() const override {
    std::lock_guard lk(health_mu_);
    return unreachable_.empty() ? Status::Ok() : Unavailable(unreachable_);
  }

  Result<std::unique_ptr<GroupMembership>> join_group(std::string_view group,
                                                      const std::vector<std::string>& topics,
                                                      const GroupOptions& options) override {
    if (closed_.load()) return Unavailable("the log is closed");
    auto m = std::make_unique<KafkaGroupMember>();
    SPATE_RETURN_IF_ERROR(m->start(kc_, group, topics, options));
    return std::unique_ptr<GroupMembership>(std::move(m));
  }

  Result<std::unique_ptr<TransactionalProducer>> transactional_producer(
      std::string_view transactional_id) override {
    if (transactional_id.empty() || transactional_id.size() > 1000) {
      return InvalidArgument("a transactional id is 1-1000 bytes");
    }
    auto p = std::make_unique<KafkaTxnProducer>(this, std::string(transactional_id));
    SPATE_RETURN_IF_ERROR(p->init());
    return std::unique_ptr<TransactionalProducer>(std::move(p));
  }

  // Used by KafkaTxnProducer.
  const KafkaLogConfig& kafka_config() const { return kc_; }
  Status check_partition(std::string_view topic, uint32_t partition) {
    return producer_topic(topic, partition).status();
  }

 private:
  struct Part {
    std::mutex mu;
    rd_kafka_t* rk = nullptr;
    rd_kafka_topic_t* rkt = nullptr;
    std::string topic;
    bool started = false;
    int64_t next = -1;
  };

  // Topics and partition counts the cluster reports (internal topics left out).
  Result<std::map<std::string, uint32_t>> all_topics() {
    const struct rd_kafka_metadata* md = nullptr;
    rd_kafka_resp_err_t e =
        rd_kafka_metadata(producer_, 1, nullptr, &md, static_cast<int>(kc_.request_timeout_ms));
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      set_unreachable(std::string("metadata request failed: ") + rd_kafka_err2str(e));
      return kafka_error(e, "listing topics");
    }
    std::map<std::string, uint32_t> out;
    for (int i = 0; i < md->topic_cnt; ++i) {
      const auto& t = md->topics[i];
      if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.topic == nullptr || t.topic[0] == '_') continue;
      out[t.topic] = static_cast<uint32_t>(t.partition_cnt);
    }
    rd_kafka_metadata_destroy(md);
    set_reachable();
    {
      std::lock_guard lk(topics_mu_);
      known_ = out;
    }
    return out;
  }

  // Offsets of every partition at `which` (-1 end, -2 start, else a timestamp), one ListOffsets
  // round. librdkafka does not refresh a stale leader for this call by itself (after a leader
  // move it keeps answering "not leader"), so such errors refresh the topic's metadata and retry.
  Status list_offsets(const std::string& topic, uint32_t partitions, int64_t which,
                      std::vector<int64_t>* out) {
    SPATE_ASSIGN_OR_RETURN(rd_kafka_t * c, consumer(Isolation::kReadUncommitted));
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 6; ++attempt) {
      PartitionList pl(static_cast<int>(partitions));
      for (uint32_t p = 0; p < partitions; ++p) {
        rd_kafka_topic_partition_list_add(pl.l, topic.c_str(), static_cast<int32_t>(p))->offset =
            which;
      }
      e = rd_kafka_offsets_for_times(c, pl.l, static_cast<int>(kc_.request_timeout_ms));
      for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < pl.l->cnt; ++i) e = pl.l->elems[i].err;
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        out->assign(partitions, 0);
        for (int i = 0; i < pl.l->cnt; ++i) {
          (*out)[static_cast<size_t>(pl.l->elems[i].partition)] = pl.l->elems[i].offset;
        }
        return Status::Ok();
      }
      if (errc_of(e) != Errc::kUnavailable && errc_of(e) != Errc::kTimeout &&
          e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        break;
      }
      const struct rd_kafka_metadata* md = nullptr;  // refreshes the handle's leader cache
      if (rd_kafka_metadata(c, 1, nullptr, &md, static_cast<int>(kc_.request_timeout_ms)) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
    }
    return kafka_error(e, "listing offsets of " + topic);
  }

  Result<rd_kafka_topic_t*> producer_topic(std::string_view topic, uint32_t partition) {
    uint32_t parts = 0;
    {
      std::lock_guard lk(topics_mu_);
      auto it = known_.find(std::string(topic));
      if (it != known_.end()) parts = it->second;
    }
    if (parts == 0) {
      SPATE_ASSIGN_OR_RETURN(auto topics, all_topics());
      auto it = topics.find(std::string(topic));
      if (it == topics.end()) {
        if (!cfg_.auto_create_topics) {
          return NotFound("topic " + std::string(topic) + " does not exist");
        }
        TopicSpec spec;
        spec.name = std::string(topic);
        spec.partitions = cfg_.default_partitions;
        SPATE_RETURN_IF_ERROR(ensure_topic(spec));
        SPATE_ASSIGN_OR_RETURN(topics, all_topics());
        it = topics.find(std::string(topic));
        if (it == topics.end()) return NotFound("topic " + std::string(topic) + " does not exist");
      }
      parts = it->second;
    }
    if (partition >= parts) {
      return InvalidArgument(
          fmt::format("topic {} has {} partitions, not {}", topic, parts, partition + 1));
    }
    std::lock_guard lk(handles_mu_);
    auto it = producer_topics_.find(std::string(topic));
    if (it != producer_topics_.end()) return it->second;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer_, std::string(topic).c_str(), nullptr);
    if (rkt == nullptr) return kafka_error(rd_kafka_last_error(), "topic handle");
    producer_topics_.emplace(std::string(topic), rkt);
    return rkt;
  }

  Result<rd_kafka_t*> consumer(Isolation iso) {
    std::lock_guard lk(handles_mu_);
    return consumer_locked(iso);
  }
  Result<rd_kafka_t*> consumer_locked(Isolation iso) {
    if (closed_.load()) return Unavailable("the log is closed");
    rd_kafka_t*& c = consumers_[static_cast<int>(iso)];
    if (c != nullptr) return c;
    Conf conf;
    common_conf(kc_, conf);
    conf.set("isolation.level",
             iso == Isolation::kReadCommitted ? "read_committed" : "read_uncommitted");
    conf.set("enable.partition.eof", "false");
    conf.set("fetch.wait.max.ms", std::to_string(kc_.fetch_wait_max_ms));
    conf.set("queued.max.messages.kbytes", "16384");
    apply_properties(kc_, conf);
    SPATE_ASSIGN_OR_RETURN(c, new_handle(RD_KAFKA_CONSUMER, conf));
    return c;
  }

  Result<Part*> part(Isolation iso, std::string_view topic, uint32_t partition) {
    std::lock_guard lk(handles_mu_);
    auto key = std::make_tuple(static_cast<int>(iso), std::string(topic), partition);
    auto it = parts_.find(key);
    if (it != parts_.end()) return it->second.get();
    SPATE_ASSIGN_OR_RETURN(rd_kafka_t * c, consumer_locked(iso));
    rd_kafka_topic_conf_t* tc = rd_kafka_topic_conf_new();
    char err[256];
    (void)rd_kafka_topic_conf_set(tc, "auto.offset.reset", "error", err, sizeof err);
    (void)rd_kafka_topic_conf_set(tc, "auto.commit.enable", "false", err, sizeof err);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(c, std::get<1>(key).c_str(), tc);
    if (rkt == nullptr) return kafka_error(rd_kafka_last_error(), "topic handle");
    auto p = std::make_unique<Part>();
    p->rk = c;
    p->rkt = rkt;
    p->topic = std::get<1>(key);
    Part* raw = p.get();
    parts_.emplace(std::move(key), std::move(p));
    return raw;
  }

  Result<rd_kafka_t*> group_handle(std::string_view group) {
    std::lock_guard lk(handles_mu_);
    if (closed_.load()) return Unavailable("the log is closed");
    auto it = groups_.find(std::string(group));
    if (it != groups_.end()) return it->second;
    Conf conf;
    common_conf(kc_, conf);
    conf.set("group.id", std::string(group));
    conf.set("enable.auto.commit", "false");
    conf.set("enable.auto.offset.store", "false");
    apply_properties(kc_, conf);
    SPATE_ASSIGN_OR_RETURN(rd_kafka_t * g, new_handle(RD_KAFKA_CONSUMER, conf));
    groups_.emplace(std::string(group), g);
    return g;
  }

  void set_unreachable(std::string why) {
    std::lock_guard lk(health_mu_);
    if (unreachable_.empty()) spdlog::warn("kafka: cluster unreachable: {}", why);
    unreachable_ = std::move(why);
    has_unreachable_.store(true);
  }
  void set_reachable() {
    if (!has_unreachable_.load(std::memory_order_relaxed)) return;
    std::lock_guard lk(health_mu_);
    if (!unreachable_.empty()) spdlog::info("kafka: cluster reachable again");
    unreachable_.clear();
    has_unreachable_.store(false);
  }

  // Every second: one metadata request tells whether the cluster answers.
  void probe_loop() {
    std::unique_lock lk(probe_mu_);
    while (!stop_.load()) {
      probe_cv_.wait_for(lk, std::chrono::seconds(1));
      if (stop_.load()) break;
      lk.unlock();
      const struct rd_kafka_metadata* md = nullptr;
      const int timeout = static_cast<int>(std::min<int64_t>(kc_.request_timeout_ms, 3000));
      rd_kafka_resp_err_t e = rd_kafka_metadata(producer_, 0, nullptr, &md, timeout);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        set_reachable();
      } else {
        set_unreachable(std::string("metadata request failed: ") + rd_kafka_err2str(e));
      }
      lk.lock();
    }
  }

  LogConfig cfg_;
  const KafkaLogConfig& kc_;
  rd_kafka_t* producer_ = nullptr;
  std::thread poller_;
  std::thread prober_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> closed_{false};
  std::mutex probe_mu_;
  std::condition_variable probe_cv_;
  mutable std::mutex health_mu_;
  std::string unreachable_;
  std::atomic<bool> has_unreachable_{false};
  std::mutex topics_mu_;
  std::map<std::string, uint32_t> known_;
  std::mutex handles_mu_;
  rd_kafka_t* consumers_[kIsolations] = {nullptr, nullptr};
  std::map<std::tuple<int, std::string, uint32_t>, std::unique_ptr<Part>> parts_;
  std::map<std::string, rd_kafka_topic_t*> producer_topics_;
  std::map<std::string, rd_kafka_t*> groups_;
  std::atomic<uint64_t> appends_{0};
  std::atomic<uint64_t> records_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> append_errors_{0};
};

// ---- KafkaTxnProducer ----

Status KafkaTxnProducer::init() {
  const KafkaLogConfig& kc = log_->kafka_config();
  Conf c;
  producer_conf(kc, c);
  c.set("transactional.id", id_);
  c.set("transaction.timeout.ms", std::to_string(kc.transaction_timeout_ms));
  apply_properties(kc, c);
  SPATE_ASSIGN_OR_RETURN(rk_, new_handle(RD_KAFKA_PRODUCER, c));
  // On a real cluster this fences every earlier producer with the same id and aborts what it
  // left open.
  Status s =
      take_error(rd_kafka_init_transactions(rk_, static_cast<int>(kc.request_timeout_ms * 3)),
                 "initialising transactions for " + id_);
  if (!s.ok()) {
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }
  fatal_ = false;
  return s;
}

Status KafkaTxnProducer::txn_error(rd_kafka_error_t* e, std::string_view what) {
  if (e == nullptr) return Status::Ok();
  const bool fatal = rd_kafka_error_is_fatal(e);
  const bool needs_abort = rd_kafka_error_txn_requires_abort(e);
  const rd_kafka_resp_err_t code = rd_kafka_error_code(e);
  std::string msg = std::string(what) + ": " + rd_kafka_error_string(e);
  rd_kafka_error_destroy(e);
  if (fatal) {
    char buf[512];
    const rd_kafka_resp_err_t why = rd_kafka_fatal_error(rk_, buf, sizeof buf);
    if (errc_of(why) == Errc::kFenced || errc_of(code) == Errc::kFenced) {
      fenced_ = true;
      open_ = false;
      return Fenced(msg);
    }
    fatal_ = true;
    open_ = false;
    return Unavailable(msg + " (fatal; the producer is re-created on the next begin)");
  }
  if (errc_of(code) == Errc::kFenced) {
    fenced_ = true;
    open_ = false;
    return Fenced(msg);
  }
  if (needs_abort) return Unavailable(msg + " (the transaction must be aborted)");
  return Status(errc_of(code), msg);
}

Status KafkaTxnProducer::begin() {
  if (fatal_ && !fenced_) {
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
    rk_ = nullptr;
    SPATE_RETURN_IF_ERROR(init());
  }
  SPATE_RETURN_IF_ERROR(usable());
  if (open_) return InvalidArgument("a transaction is already open");
  SPATE_RETURN_IF_ERROR(txn_error(rd_kafka_begin_transaction(rk_), "begin transaction"));
  open_ = true;
  return Status::Ok();
}

Result<int64_t> KafkaTxnProducer::append(std::string_view topic, uint32_t partition,
                                         const RecordIn* records, size_t count) {
  SPATE_RETURN_IF_ERROR(usable());
  if (!open_) return InvalidArgument("append outside a transaction");
  SPATE_RETURN_IF_ERROR(log_->check_partition(topic, partition));
  const std::string t(topic);
  vus_.reserve(16);
  for (size_t i = 0; i < count; ++i) {
    produce_args(vus_, nullptr, partition, records[i], nullptr, RD_KAFKA_MSG_F_COPY);
    vus_[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus_[0].u.cstr = t.c_str();
    terminate_header_names(vus_, names_, records[i]);
    for (int waited = 0;; ++waited) {
      rd_kafka_error_t* e = rd_kafka_produceva(rk_, vus_.data(), vus_.size());
      if (e == nullptr) break;
      if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
          waited < log_->kafka_config().queue_full_wait_ms) {
        rd_kafka_error_destroy(e);
        rd_kafka_poll(rk_, 1);
        continue;
      }
      return txn_error(e, fmt::format("producing to {}[{}]", topic, partition));
    }
  }
  rd_kafka_poll(rk_, 0);
  return int64_t{-1};
}

Status KafkaTxnProducer::send_offsets(std::string_view group, std::string_view topic,
                                      const std::map<uint32_t, int64_t>& next_offsets) {
  SPATE_RETURN_IF_ERROR(usable());
  if (!open_) return InvalidArgument("send_offsets outside a transaction");
  if (next_offsets.empty()) return Status::Ok();
  PartitionList pl(static_cast<int>(next_offsets.size()));
  const std::string t(topic);
  for (const auto& [p, off] : next_offsets) {
    if (off < 0) return InvalidArgument("negative offset to commit");
    rd_kafka_topic_partition_list_add(pl.l, t.c_str(), static_cast<int32_t>(p))->offset = off;
  }
  rd_kafka_consumer_group_metadata_t* gm =
      rd_kafka_consumer_group_metadata_new(std::string(group).c_str());
  const int timeout = static_cast<int>(log_->kafka_config().request_timeout_ms);
  Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    rd_kafka_error_t* e = rd_kafka_send_offsets_to_transaction(rk_, pl.l, gm, timeout);
    if (e != nullptr && rd_kafka_error_is_retriable(e)) {
      s = take_error(e, "send offsets to transaction");
      continue;
    }
    s = txn_error(e, "send offsets to transaction");
    break;
  }
  rd_kafka_consumer_group_metadata_destroy(gm);
  return s;
}

// Commit or abort the open transaction; retriable errors are retried (the outcome of a failed
// call is unknown, and calling again is how librdkafka resolves it).
Status KafkaTxnProducer::end_transaction(bool commit) {
  const char* what = commit ? "commit transaction" : "abort transaction";
  const int timeout = static_cast<int>(log_->kafka_config().delivery_timeout_ms);
  Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    rd_kafka_error_t* e = commit ? rd_kafka_commit_transaction(rk_, timeout)
                                 : rd_kafka_abort_transaction(rk_, timeout);
    if (e == nullptr) {
      open_ = false;
      return Status::Ok();
    }
    if (!rd_kafka_error_is_retriable(e)) return txn_error(e, what);
    s = take_error(e, what);
  }
  return s;
}

Status KafkaTxnProducer::commit() {
  SPATE_RETURN_IF_ERROR(usable());
  if (!open_) return InvalidArgument("commit outside a transaction");
  return end_transaction(true);
}

Status KafkaTxnProducer::abort() {
  if (fenced_) return usable();
  if (rk_ == nullptr || fatal_) {
    open_ = false;
    return Status::Ok();  // a fatal producer's transaction is aborted by its successor
  }
  if (!open_) return Status::Ok();
  return end_transaction(false);
}

}  // namespace

std::string kafka_bootstrap_servers(const KafkaLogConfig& config) {
  return env_or(config.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS");
}

Result<std::unique_ptr<Log>> open_kafka_log(const LogConfig& config) {
  auto log = std::make_unique<KafkaLog>(config);
  SPATE_RETURN_IF_ERROR(log->open());
  return std::unique_ptr<Log>(std::move(log));
}

}  // namespace spate
