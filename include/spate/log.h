// Log: Spate's partitioned, durable record log — the backbone between ingestion, processors and
// analytics. The embedded implementation (src/log/embedded) stores segments on local disk; a
// Kafka implementation (later) speaks to a cluster. Both honour this contract.
//
// Contract:
//  - A topic has N partitions; each partition is an ordered sequence of records with dense,
//    monotonic offsets starting at 0. A record is key (optional), value bytes, headers and an
//    event timestamp (ms since epoch).
//  - append() writes one batch to one partition and returns the offset of its first record only
//    once the batch is durable under the configured fsync policy; the batch's records get
//    consecutive offsets. Concurrent appends to one partition are grouped into one write and one
//    fsync (group commit). On failure nothing of the batch is visible to readers.
//  - fetch() returns records at offsets >= the requested offset (at most max_records / roughly
//    max_bytes), optionally waiting up to wait_ms for new records to arrive.
//  - Committed consumer-group offsets are stored durably (commit returns once fsynced).
//  - All methods are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

/// Configuration of the log (pipeline file key `log:`).
struct LogConfig {
  std::string kind = "embedded";  // embedded | kafka (later)
  std::string data_dir;           // set from the pipeline's data_dir
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

struct FetchOptions {
  size_t max_records = 1000;
  size_t max_bytes = 1 << 20;
  int64_t wait_ms = 0;  // wait this long for data when none is available at `offset`
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
  /// Committed next offset of group/topic/partition, or nullopt if never committed.
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
};

/// OK if `name` is a valid topic name: 1-200 characters of [a-zA-Z0-9._-], not "." or "..".
Status validate_topic_name(std::string_view name);

/// Open (creating if needed) an embedded log in config.data_dir, recovering from any crash.
Result<std::unique_ptr<Log>> open_embedded_log(const LogConfig& config);

}  // namespace spate
