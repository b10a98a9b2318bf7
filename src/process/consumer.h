// GroupConsumer: a consumer group member over Spate's Log interface (embedded log today, Kafka
// later), the input side of the stream processor.
//
// With `group_membership` on a log that has a group coordinator (Kafka), the cluster assigns
// the partitions (cooperative rebalancing: members joining or leaving move only the partitions
// they must); poll() picks up changes, a revoked partition's uncommitted work is dropped here and
// processed again by its new owner (at-least-once), and commits go through the membership.
// Otherwise (the embedded and remote logs, or group_membership off):
// assignment is explicit, as the orchestrator scales replicas: the partitions of the subscribed
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

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
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
  bool group_membership = false;  // cluster-assigned partitions where the log has a coordinator
  GroupOptions group_options;
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
  /// True if the cluster assigns the partitions (see the top of this file).
  bool dynamic() const { return membership_ != nullptr; }
  /// Number of assigned partitions; safe to read from any thread.
  size_t assigned_count() const { return assigned_count_.load(std::memory_order_relaxed); }
  /// Leave the group now (dynamic membership), handing the partitions to the other members.
  void leave();

  /// Up to max_records records from assigned partitions (possibly several batches), waiting
  /// up to `max_wait_ms` (-1: the configured max_wait_ms) when there are none.
  Result<std::vector<PolledBatch>> poll(int64_t max_wait_ms = -1);

  /// Durably commit next offsets (offset after the last processed record) for partitions.
  /// Offsets beyond what was polled, or for unassigned partitions, are errors.
  Status commit(const std::map<TopicPartition, int64_t>& next_offsets);

  /// Commit offsets of one topic as this member (through the membership if dynamic, else the
  /// log) without the checks of commit(); for a committer thread: safe to call concurrently
  /// with the polling thread's calls.
  Status commit_through(std::string_view topic, const std::map<uint32_t, int64_t>& offsets);

  /// Record that `next_offsets` were committed elsewhere (with a log transaction).
  void mark_committed(const std::map<TopicPartition, int64_t>& next_offsets);

  /// Rewind the polling position of a partition to `offset` (e.g. to retry after an abort).
  Status seek(const TopicPartition& tp, int64_t offset);

  /// Per assigned partition: end offset (as of the last fetch; asked of the log before the
  /// first) - committed offset (>= 0).
  Result<std::map<TopicPartition, int64_t>> lag() const;

  int64_t position(const TopicPartition& tp) const;
  int64_t committed(const TopicPartition& tp) const;
  uint64_t skipped_by_retention() const { return skipped_by_retention_; }

 private:
  // Dynamic membership: apply the membership's assignment if it changed.
  Status refresh_assignment();
  Status add_partition(const TopicPartition& tp, std::optional<int64_t> committed);

  struct State {
    int64_t position = 0;   // next offset to poll
    int64_t committed = 0;  // next offset after the last committed record
    int64_t end = -1;       // the partition's end offset at the last fetch (-1: none yet)
  };

  Log* log_;
  ConsumerConfig cfg_;
  std::vector<TopicPartition> assignment_;
  std::map<TopicPartition, State> state_;
  size_t next_ = 0;  // round-robin start of the next poll
  double avg_record_bytes_ = 256;  // moving average, sizes the log reads
  uint64_t skipped_by_retention_ = 0;
  std::unique_ptr<GroupMembership> membership_;
  uint64_t generation_ = 0;
  std::atomic<size_t> assigned_count_{0};
};

}  // namespace spate::process
