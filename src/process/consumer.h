// GroupConsumer: a consumer group member over Spate's Log interface (embedded log today, Kafka
// later), the input side of the stream processor.
//
// Assignment is explicit, as the orchestrator scales replicas: the partitions of the subscribed
// topics, ordered by (topic, partition), are dealt round-robin to the group's `replicas`, and
// this member takes those whose position modulo `replicas` equals `replica`. Within a process
// the assigned partitions may be split further over worker threads by the caller.
//
// Contract:
//  - start positions: the group's committed offset of each assigned partition; where none was
//    committed, the start (`earliest`) or the end (`latest`) of the partition. A committed offset
//    below the partition's retained start is moved up to it (the data is gone; counted in
//    `skipped_by_retention()`).
//  - poll() returns up to `max_records` records from the assigned partitions, taking partitions
//    in turn so that none starves, waiting up to `max_wait_ms` when nothing is available. It
//    reads `isolation` (read_committed by default: output of open or aborted transactions is
//    never seen). A batch may hold no records when the position only moved past transaction
//    markers or aborted records: commit its next_offset like any other. Polled
//    records are not committed: commit() stores, durably, the next offsets of what the caller has
//    finished processing — never more than was polled — so after a crash processing resumes
//    after the last committed record (at-least-once; exactly-once adds transactions, see the
//    issue).
//  - lag() is, per assigned partition, the partition's end offset minus the committed offset.
//  - Not thread-safe: one thread polls and commits.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "spate/log.h"
#include "spate/status.h"

namespace spate::process {

struct ConsumerConfig {
  std::string group;
  std::vector<std::string> topics;
  uint32_t replica = 0;   // this member's index, 0 <= replica < replicas
  uint32_t replicas = 1;  // members of the group
  bool start_at_latest = false;  // where no offset was committed: end instead of start
  size_t max_records = 1000;     // per poll
  size_t max_bytes = 4 << 20;    // per poll
  int64_t max_wait_ms = 100;     // when nothing is available
  Isolation isolation = Isolation::kReadCommitted;  // never see uncommitted/aborted output
};

struct TopicPartition {
  std::string topic;
  uint32_t partition = 0;
  bool operator<(const TopicPartition& o) const {
    return topic != o.topic ? topic < o.topic : partition < o.partition;
  }
  bool operator==(const TopicPartition& o) const {
    return topic == o.topic && partition == o.partition;
  }
};

/// Records polled from one partition.
struct PolledBatch {
  TopicPartition tp;
  FetchResult records;  // records().front().offset .. next_offset - 1
};

class GroupConsumer {
 public:
  GroupConsumer(Log* log, ConsumerConfig config);

  /// Compute the assignment and the start positions. Errors: unknown topic, bad replica index.
  Status open();

  const std::vector<TopicPartition>& assignment() const { return assignment_; }

  /// Up to max_records records from assigned partitions (possibly several batches), waiting
  /// up to `max_wait_ms` (-1: the configured max_wait_ms) when there are none.
  Result<std::vector<PolledBatch>> poll(int64_t max_wait_ms = -1);

  /// Durably commit next offsets (offset after the last processed record) for partitions.
  /// Offsets beyond what was polled, or for unassigned partitions, are errors.
  Status commit(const std::map<TopicPartition, int64_t>& next_offsets);

  /// Record that `next_offsets` were committed elsewhere (with a log transaction).
  void mark_committed(const std::map<TopicPartition, int64_t>& next_offsets);

  /// Rewind the polling position of a partition to `offset` (e.g. to retry after an abort).
  Status seek(const TopicPartition& tp, int64_t offset);

  /// Per assigned partition: end offset - committed offset (>= 0).
  Result<std::map<TopicPartition, int64_t>> lag() const;

  int64_t position(const TopicPartition& tp) const;
  int64_t committed(const TopicPartition& tp) const;
  uint64_t skipped_by_retention() const { return skipped_by_retention_; }

 private:
  struct State {
    int64_t position = 0;   // next offset to poll
    int64_t committed = 0;  // next offset after the last committed record
  };

  Log* log_;
  ConsumerConfig cfg_;
  std::vector<TopicPartition> assignment_;
  std::map<TopicPartition, State> state_;
  size_t next_ = 0;  // round-robin start of the next poll
  double avg_record_bytes_ = 256;  // moving average, sizes the log reads
  uint64_t skipped_by_retention_ = 0;
};

}  // namespace spate::process
