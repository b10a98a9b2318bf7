// Log: Spate's partitioned, durable record log — the backbone between ingestion, processors and
// analytics. The embedded implementation (src/log/embedded) stores segments on local disk; a
// Kafka implementation (later) speaks to a cluster. Both honour this contract.
//
// Contract:
//  - A topic has N partitions; each partition is an ordered sequence of records with strictly
//    monotonic offsets starting at 0. Offsets are dense except where transaction markers sit:
//    a control (COMMIT/ABORT marker) record occupies an offset but is never returned to any
//    reader, so consumers must always continue from FetchResult::next_offset, never from
//    "last offset + 1" arithmetic over a partition. A record is key (optional), value bytes,
//    headers and an event timestamp (ms since epoch).
//  - append() writes one batch to one partition and returns the offset of its first record only
//    once the batch is durable under the configured fsync policy; the batch's records get
//    consecutive offsets. Concurrent appends to one partition are grouped into one write and one
//    fsync (group commit). On failure nothing of the batch is visible to readers.
//  - fetch() returns records at offsets >= the requested offset (at most max_records / roughly
//    max_bytes), optionally waiting up to wait_ms for new records to arrive. With
//    Isolation::kReadCommitted it returns only records below the partition's last stable offset
//    (LSO: first offset of the earliest still-open transaction, else the end offset) and never
//    records of aborted transactions. A fetch may return zero records with next_offset moved
//    forward (it skipped markers or aborted batches); callers just fetch again from there.
//  - Committed consumer-group offsets are stored durably (commit returns once fsynced), either
//    directly (commit_offsets) or atomically with a transaction (TransactionalProducer).
//  - Transactions (exactly-once): see TransactionalProducer. After open_embedded_log() returns,
//    no transaction is open: every transaction a crash left unresolved has been committed (if
//    its commit record reached the coordinator) or aborted.
//  - All Log methods are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spate/status.h"

namespace spate {

class FileSystem;
class Clock;

enum class FsyncPolicy { kAlways, kInterval, kNever };
enum class Compression { kNone = 0, kLz4 = 1, kZstd = 2 };

std::string_view compression_name(Compression c);
std::string_view fsync_policy_name(FsyncPolicy p);

/// Retention of a topic: whole segments older than ms or beyond bytes (per partition) are deleted.
/// -1 disables a limit.
struct RetentionConfig {
  int64_t ms = 7LL * 24 * 3600 * 1000;
  int64_t bytes = -1;
};

/// A topic's definition. Zero/empty fields inherit the log's defaults.
struct TopicSpec {
  std::string name;
  uint32_t partitions = 1;
  std::optional<RetentionConfig> retention;
  std::optional<Compression> compression;
};

/// Settings of `log: {kind: kafka}` (pipeline key `log.kafka`). Names follow the reference
/// design's Kafka config; `properties` passes any further librdkafka property through verbatim
/// (set last, so it wins). Secrets (sasl_password, ssl_key_password) are never logged or shown.
struct KafkaLogConfig {
  std::string bootstrap_servers;  // host:port,...; empty = $KAFKA_BOOTSTRAP_SERVERS
  std::string client_id = "spate";
  // Producer.
  std::string acks = "all";  // all | 1 | 0 (idempotence needs all)
  bool enable_idempotence = true;
  int64_t linger_ms = 1;  // appends wait for their acks: a long linger only adds latency
  int64_t batch_size = 1 << 20;  // bytes per partition batch (librdkafka batch.size)
  std::string compression_type = "lz4";  // none | gzip | snappy | lz4 | zstd
  int64_t retries = 2147483647;  // bounded in time by delivery_timeout_ms
  int64_t max_in_flight_requests_per_connection = 5;
  int64_t delivery_timeout_ms = 30'000;  // an append fails (and is not acknowledged) after this
  int64_t request_timeout_ms = 10'000;
  int64_t queue_max_messages = 100'000;  // producer queue bound; full = append fails (HTTP 503)
  int64_t queue_full_wait_ms = 1'000;    // wait this long for room before failing an append
  // Consumer (fetch) and admin.
  int64_t fetch_wait_max_ms = 100;
  int64_t admin_timeout_ms = 10'000;  // CreateTopics etc.; brokers without the admin API time out
  int64_t replication_factor = -1;    // of created topics; -1 = the broker's default
  int64_t transaction_timeout_ms = 60'000;
  // Security: empty = $KAFKA_SECURITY_PROTOCOL, $KAFKA_SASL_MECHANISM, $KAFKA_SASL_USERNAME,
  // $KAFKA_SASL_PASSWORD.
  std::string security_protocol;  // PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
  std::string sasl_mechanism;     // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
  std::string sasl_username;
  std::string sasl_password;
  std::string ssl_ca_location;
  std::string ssl_certificate_location;
  std::string ssl_key_location;
  std::string ssl_key_password;
  std::vector<std::pair<std::string, std::string>> properties;
};

/// Configuration of the log (pipeline file key `log:`).
/// How far opening (recovering) an embedded log has got.
struct LogOpenProgress {
  size_t topics_done = 0;      // topics whose partitions are being or have been opened
  size_t topics_total = 0;
  size_t partitions_done = 0;  // partitions opened so far
  uint64_t bytes_done = 0;     // bytes of the segments of those partitions
  int64_t elapsed_ms = 0;      // since the open started
};

struct LogConfig {
  std::string kind = "embedded";  // embedded | remote (another process's log) | kafka
  std::string data_dir;           // set from the pipeline's data_dir
  std::string url;                // kind remote: http://HOST:PORT of the process owning the log
  int64_t remote_timeout_ms = 10'000;       // kind remote: bound per call
  int64_t remote_connect_wait_ms = 30'000;  // kind remote: wait this long for the owner at start
  uint64_t segment_bytes = 128ULL << 20;
  int64_t segment_ms = 24LL * 3600 * 1000;
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  int64_t fsync_interval_ms = 50;
  uint32_t index_interval_bytes = 4096;
  Compression compression = Compression::kNone;
  RetentionConfig retention;
  int64_t retention_check_interval_ms = 60'000;
  uint32_t default_partitions = 1;
  bool auto_create_topics = true;  // append/produce to a missing topic creates it
  KafkaLogConfig kafka;            // kind kafka
  /// Embedded: called on the opening thread after each partition has been opened (and its
  /// segments recovered) while the log opens, so that a long recovery can show progress.
  std::function<void(const LogOpenProgress&)> on_open_progress;
  FileSystem* fs = nullptr;        // nullptr = default_fs(); tests inject faults here
  Clock* clock = nullptr;          // nullptr = system_clock()
};

struct RecordHeader {
  std::string_view key;
  std::string_view value;
};

/// A record to append; views must stay valid for the duration of append().
struct RecordIn {
  std::optional<std::string_view> key;
  std::string_view value;
  int64_t timestamp_ms = 0;  // 0 = the log assigns the append time
  const RecordHeader* headers = nullptr;
  uint32_t header_count = 0;
};

/// A record returned by fetch(); views point into the owning FetchResult.
struct RecordView {
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  bool has_key = false;
  std::string_view key;
  std::string_view value;
  uint32_t header_begin = 0;  // index into FetchResult::headers()
  uint32_t header_count = 0;
};

class FetchResult {
 public:
  const std::vector<RecordView>& records() const { return records_; }
  /// Headers of record r.
  std::vector<RecordHeader> headers_of(const RecordView& r) const {
    return {headers_.begin() + r.header_begin, headers_.begin() + r.header_begin + r.header_count};
  }
  /// The offset to fetch next.
  int64_t next_offset = 0;
  /// The partition's end offset (next offset to be assigned) at fetch time.
  int64_t end_offset = 0;
  /// The partition's last stable offset at fetch time (== end_offset when no transaction is open).
  int64_t last_stable_offset = 0;

  // Filled by implementations.
  std::vector<std::unique_ptr<std::string>> buffers_;
  std::vector<RecordView> records_;
  std::vector<RecordHeader> headers_;
};

struct PartitionInfo {
  uint32_t partition = 0;
  int64_t start_offset = 0;  // first offset still retained
  int64_t end_offset = 0;    // next offset to be assigned
  uint64_t size_bytes = 0;
  uint32_t segments = 0;
};

struct TopicInfo {
  std::string name;
  uint32_t partitions = 0;
  RetentionConfig retention;
  Compression compression = Compression::kNone;
  std::vector<PartitionInfo> partition_info;
};

/// Cumulative counters of a log since it was opened (for metrics).
struct LogStats {
  uint64_t appends = 0;          // successful append() calls
  uint64_t records = 0;          // records appended
  uint64_t bytes = 0;            // bytes written to segments (encoded batches)
  uint64_t write_groups = 0;     // group-commit writes (each covers one or more appends)
  uint64_t fsyncs = 0;           // segment fsyncs (group commit, interval flush, roll, close)
  double fsync_seconds = 0;      // time spent in those fsyncs
  uint64_t append_errors = 0;    // appends that failed (write, fsync, no space)
  uint64_t recovered_truncated_bytes = 0;  // bytes cut from torn/corrupt tails when opened
};

/// What a fetch may see of transactional data.
///  - kReadUncommitted: every data record up to the end offset, including records of open and
///    aborted transactions (markers are still never returned).
///  - kReadCommitted: only records below the last stable offset, never aborted ones.
enum class Isolation { kReadUncommitted, kReadCommitted };

struct FetchOptions {
  size_t max_records = 1000;
  size_t max_bytes = 1 << 20;
  /// Wait this long for data when none is available at `offset` (read_committed: until the LSO
  /// moves past `offset`, e.g. when a commit marker lands).
  int64_t wait_ms = 0;
  Isolation isolation = Isolation::kReadUncommitted;
};

/// A transactional producer: writes to several partitions plus consumer-group offsets that
/// become visible (to read_committed readers) and durable atomically, or not at all.
///
/// Contract:
///  - Use from one thread at a time. Destroy it before the Log that created it is destroyed
///    (after Log::close() its calls return kUnavailable and destruction is safe).
///  - begin() opens a transaction (one at a time; begin() while one is open is kInvalidArgument).
///  - append() writes a batch inside the open transaction (same semantics as Log::append, the
///    records are visible to read_uncommitted readers at once, to read_committed readers only
///    after commit()).
///  - send_offsets() records consumer offsets that are committed with the transaction (same
///    validation as Log::commit_offsets; later calls for the same group/topic/partition win).
///  - commit() returns once the transaction is durable (under the fsync policy: its data is
///    fsynced first unless `fsync: never`; the commit record is always fsynced) and visible to
///    read_committed readers. If commit() fails after its commit point the transaction is still
///    committed (recovery or the next call finishes it); before it, it is aborted on the next
///    begin()/abort() or on the next open of the log.
///  - abort(): the transaction's records are never visible to read_committed readers and its
///    offsets are not committed.
///  - Every call returns kFenced once a newer producer with the same transactional id was created;
///    that newer creation aborted this producer's open transaction.
///  - Destroying a producer with an open transaction aborts it (best effort).
class TransactionalProducer {
 public:
  virtual ~TransactionalProducer() = default;
  virtual Status begin() = 0;
  virtual Result<int64_t> append(std::string_view topic, uint32_t partition,
                                 const RecordIn* records, size_t count) = 0;
  /// Consumer offsets committed atomically with the transaction's outputs.
  virtual Status send_offsets(std::string_view group, std::string_view topic,
                              const std::map<uint32_t, int64_t>& next_offsets) = 0;
  virtual Status commit() = 0;
  virtual Status abort() = 0;
};

/// A partition of a group member's assignment.
struct GroupPartition {
  std::string topic;
  uint32_t partition = 0;
};

struct GroupAssignment {
  uint64_t generation = 0;  // grows with every change of `partitions`
  std::vector<GroupPartition> partitions;
};

/// Options of a dynamic group membership (Log::join_group).
struct GroupOptions {
  int64_t session_timeout_ms = 45'000;      // no heartbeat for this long = the member is gone
  int64_t max_poll_interval_ms = 300'000;   // bound on the time between two assignment() calls
  std::string assignment_strategy = "cooperative-sticky";  // or range, roundrobin (eager)
};

/// A member of a consumer group whose partitions the cluster assigns (Kafka's group protocol).
/// The member reads its partitions with Log::fetch and commits through commit() — as the member,
/// so that a cluster can reject commits of a member that has been replaced.
///
/// Contract:
///  - assignment() is the current assignment; it changes when members join or leave (with the
///    cooperative protocol, only the partitions that move). Call it at least every
///    max_poll_interval_ms. A revoked partition is no longer this member's: stop reading it;
///    work on it that is not yet committed is processed again by its new owner (at-least-once).
///  - commit()/committed() store and read the group's committed offsets.
///  - leave() (also on destruction) hands the partitions to the other members at once.
///  - Thread-safe.
class GroupMembership {
 public:
  virtual ~GroupMembership() = default;
  virtual GroupAssignment assignment() = 0;
  virtual Status commit(std::string_view topic, const std::map<uint32_t, int64_t>& offsets) = 0;
  virtual Result<std::optional<int64_t>> committed(std::string_view topic, uint32_t partition) = 0;
  virtual void leave() = 0;
};

class Log {
 public:
  virtual ~Log() = default;

  virtual Status create_topic(const TopicSpec& spec) = 0;
  /// Create the topic if missing; if it exists, succeed (partition count is not changed).
  virtual Status ensure_topic(const TopicSpec& spec) = 0;
  virtual std::vector<std::string> list_topics() const = 0;
  virtual Result<TopicInfo> describe_topic(std::string_view topic) const = 0;

  /// Append a batch to one partition. Returns the first offset assigned.
  virtual Result<int64_t> append(std::string_view topic, uint32_t partition,
                                 const RecordIn* records, size_t count) = 0;
  virtual Result<FetchResult> fetch(std::string_view topic, uint32_t partition, int64_t offset,
                                    const FetchOptions& opts) = 0;
  /// First offset whose record timestamp is >= ts (end offset if none).
  virtual Result<int64_t> offset_for_timestamp(std::string_view topic, uint32_t partition,
                                               int64_t ts_ms) = 0;

  /// Durably store a consumer group's next offsets for some partitions of a topic.
  virtual Status commit_offsets(std::string_view group, std::string_view topic,
                                const std::map<uint32_t, int64_t>& offsets) = 0;
  /// Committed next offset of group/topic/partition (directly or through a committed
  /// transaction), or nullopt if never committed.
  virtual Result<std::optional<int64_t>> committed_offset(std::string_view group,
                                                          std::string_view topic,
                                                          uint32_t partition) = 0;
  virtual LogStats stats() const = 0;
  /// Delete segments beyond retention now (also runs periodically in the background).
  virtual Status enforce_retention() = 0;
  /// Flush and fsync everything, stop background work. Idempotent.
  virtual Status close() = 0;
  /// True if append() may wait for the disk (an fsync per append, `fsync: always`). Callers
  /// that must not block for long (HTTP I/O threads) then hand appends to threads of their own.
  virtual bool append_waits_for_disk() const { return true; }
  /// OK while what stores the log is reachable; kUnavailable with the reason otherwise (a Kafka
  /// cluster that answered no request lately). `/ready` answers 503 while it is not OK.
  virtual Status health() const { return Status::Ok(); }

  /// Join consumer group `group` for `topics` with cluster-assigned partitions. Logs without a
  /// group coordinator (embedded, remote) return kUnimplemented: their consumers use explicit
  /// assignment (GroupConsumer's replica/replicas).
  virtual Result<std::unique_ptr<GroupMembership>> join_group(
      std::string_view group, const std::vector<std::string>& topics, const GroupOptions& options) {
    (void)group;
    (void)topics;
    (void)options;
    return Status(Errc::kUnimplemented, "this log has no group coordinator");
  }

  /// A producer for `transactional_id` (1-1000 bytes). Creating one fences (kFenced on every
  /// later call) any earlier producer with the same id and aborts its open transaction.
  /// Implementations without transactions return Errc::kUnimplemented.
  virtual Result<std::unique_ptr<TransactionalProducer>> transactional_producer(
      std::string_view transactional_id) {
    (void)transactional_id;
    return Status(Errc::kUnimplemented, "this log does not support transactions");
  }
};

/// OK if `name` is a valid topic name: 1-200 characters of [a-zA-Z0-9._-], not "." or "..".
Status validate_topic_name(std::string_view name);

/// Open (creating if needed) an embedded log in config.data_dir, recovering from any crash.
Result<std::unique_ptr<Log>> open_embedded_log(const LogConfig& config);

/// Open a log on an Apache Kafka cluster (config.kafka; src/log/kafka, docs/kafka.md). Returns
/// once the cluster answered a metadata request, or kUnavailable after request_timeout_ms.
/// Differences from the contract above, all inherent to Kafka:
///  - append() returns once every record is acknowledged under `acks`, or fails after
///    delivery_timeout_ms. A failed append may have stored some of its records (at-least-once;
///    the producer's idempotence prevents duplicates from its own retries). Concurrent appends
///    to one partition may interleave, so a batch's offsets need not be consecutive; the result
///    is the lowest offset of the batch.
///  - TransactionalProducer::append() returns -1 (offsets are known after commit()).
///  - enforce_retention() is a no-op (the brokers enforce retention); stats() counts appends.
///  - last_stable_offset in a FetchResult equals end_offset (librdkafka does not expose the LSO).
Result<std::unique_ptr<Log>> open_kafka_log(const LogConfig& config);

/// The config of the bootstrap servers actually used: config.bootstrap_servers, else
/// $KAFKA_BOOTSTRAP_SERVERS, else "" (an error at open).
std::string kafka_bootstrap_servers(const KafkaLogConfig& config);

}  // namespace spate
