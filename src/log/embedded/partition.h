// Partition: one partition of an embedded-log topic — a directory of segments.
//
// Contract:
//  - open() recovers: the active (last) segment is scanned batch by batch; a torn or corrupt
//    tail (short batch, bad CRC, offset discontinuity) is truncated to the last good batch and
//    its indexes are rebuilt. Older segments are trusted (they were fsynced when rolled) unless
//    their index files are inconsistent, in which case those indexes are rebuilt.
//  - append() is thread-safe; concurrent appends are grouped (one leader writes every queued
//    batch with one writev and, under FsyncPolicy::kAlways, one fdatasync). It returns the base
//    offset only after the batch is durable under the policy; records become visible to fetch()
//    at the same moment. A failed write is rolled back (file truncated); a failed fsync puts the
//    partition into a failed state where every append returns the error (the data on disk is
//    then unknown until the log is reopened and recovered).
//  - fetch() is thread-safe and lock-free with respect to appends except for a short snapshot of
//    the segment list. A fetch sees a prefix of the partition. Control (marker) batches are
//    never returned; read_committed fetches stop at the last stable offset and skip batches of
//    aborted transactions.
//  - Transactions: append_txn() writes a transactional batch; the first one of a producer opens
//    its transaction in this partition (the LSO stays at its offset). append_marker() writes a
//    COMMIT/ABORT marker that closes it; an ABORT also records the aborted range in
//    `aborted.idx` (rewritten atomically). Both take effect for readers atomically with the
//    batch becoming visible. open() restores open transactions (from the `<base>.txnsnap`
//    snapshot written when the active segment was rolled, plus a scan of the active segment)
//    and aborted ranges; the log then resolves the open ones (see embedded_log.cc).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/fs.h"
#include "spate/log.h"

namespace spate {

namespace logfmt {
struct TxnTag;
struct BatchHeader;
}

/// Counters shared by the partitions of one log; relaxed atomics, updated once per write group.
struct LogCounters {
  std::atomic<uint64_t> appends{0}, records{0}, bytes{0}, write_groups{0}, fsyncs{0},
      fsync_ns{0}, append_errors{0}, truncated_bytes{0};
};

struct PartitionOptions {
  uint64_t segment_bytes = 128ULL << 20;
  int64_t segment_ms = 24LL * 3600 * 1000;
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  uint32_t index_interval_bytes = 4096;
  Compression compression = Compression::kNone;
  RetentionConfig retention;
  FileSystem* fs = nullptr;
  Clock* clock = nullptr;
  LogCounters* counters = nullptr;  // required
};

struct RecoveryStats {
  uint64_t truncated_bytes = 0;
  uint32_t rebuilt_indexes = 0;
  uint64_t scanned_bytes = 0;
};

/// A transaction open in one partition.
struct OpenTxn {
  int64_t producer_id = 0;
  int64_t txn_seq = 0;
  int64_t first_offset = 0;
};

class Partition {
 public:
  Partition(std::string dir, uint32_t id, PartitionOptions opts);
  ~Partition();
  Partition(const Partition&) = delete;
  Partition& operator=(const Partition&) = delete;

  Status open();
  Result<int64_t> append(const RecordIn* records, size_t count);
  Result<FetchResult> fetch(int64_t offset, const FetchOptions& opts);
  Result<int64_t> offset_for_timestamp(int64_t ts_ms);

  /// Append a transactional batch of (producer_id, txn_seq).
  Result<int64_t> append_txn(const RecordIn* records, size_t count, int64_t producer_id,
                             int64_t txn_seq);
  /// Append a COMMIT or ABORT marker for the producer's open transaction. Returns its offset.
  Result<int64_t> append_marker(int64_t producer_id, int64_t txn_seq, bool commit);
  /// Make everything appended before the call durable now (whatever the dirty flag says):
  /// fsyncs the active segment unless an fsync that began after those appends has already
  /// completed (concurrent callers share one fsync). Thread-safe.
  Status sync_now();
  /// First offset of the earliest open transaction, else the end offset.
  int64_t last_stable_offset() const;
  std::vector<OpenTxn> open_transactions() const;

  /// fsync the active segment if anything was written since the last sync.
  Status sync_if_dirty();
  /// Delete whole segments beyond retention (never the active one). Returns segments deleted.
  Result<int> enforce_retention();
  Status close();

  PartitionInfo info() const;
  int64_t end_offset() const { return end_offset_.load(std::memory_order_acquire); }
  const RecoveryStats& recovery_stats() const { return recovery_; }

 private:
  struct Segment;
  struct Writer;

  Status recover_segment(Segment& seg, bool is_active);
  Status rebuild_indexes(Segment& seg, uint64_t valid_size);
  Status open_segment_files(Segment& seg, bool for_write);
  Result<std::shared_ptr<Segment>> create_segment(int64_t base_offset);
  Status roll_locked();
  Status write_group(std::vector<Writer*>& group);
  Status timed_sync(WritableFile& f);
  std::vector<std::shared_ptr<Segment>> snapshot() const;
  // Aborted ranges [first, marker] per producer id, sorted by first.
  using AbortedMap = std::map<int64_t, std::vector<std::pair<int64_t, int64_t>>>;
  Status read_segment(const std::shared_ptr<Segment>& seg, int64_t offset, int64_t limit,
                      const AbortedMap* aborted, const FetchOptions& opts, FetchResult* out,
                      size_t* bytes);
  Result<int64_t> submit(std::string* batch, uint32_t count, const logfmt::TxnTag* txn,
                         bool marker_commit);
  // Leader, after a group with transactional/control batches was written: update txn state.
  void apply_txn_effects(std::vector<Writer*>& group);
  // Recovery: account for one CRC-checked transactional/control batch of the active segment.
  Status recover_txn_batch(const char* batch, const logfmt::BatchHeader& h);
  Status persist_aborted();
  Status load_txn_state(int64_t active_base);
  void lso_and_end(int64_t* lso, int64_t* end, std::shared_ptr<const AbortedMap>* aborted) const;
  static bool is_aborted(const AbortedMap& m, int64_t producer_id, int64_t offset);

  std::string dir_;
  uint32_t id_;
  PartitionOptions opts_;
  FileSystem* fs_;
  Clock* clock_;

  // Segment list: guarded by segments_mu_ (shared for readers, exclusive for roll/retention).
  mutable std::shared_mutex segments_mu_;
  std::vector<std::shared_ptr<Segment>> segments_;

  // Group commit queue: guarded by mu_.
  std::mutex mu_;
  std::deque<Writer*> writers_;
  Status failed_;  // sticky write/sync failure

  std::atomic<int64_t> end_offset_{0};
  std::atomic<bool> dirty_{false};
  std::mutex sync_mu_;  // serialises background sync with the leader's sync
  // Guarded by sync_mu_: the segment (base offset) and size that the last fsync of sync_now()
  // or sync_if_dirty() covered (bytes written before it began), so that a sync_now() whose
  // data it covered skips its own.
  int64_t synced_base_ = -1;
  uint64_t synced_size_ = 0;

  // Tail waiters.
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;

  // Transactions: guarded by txn_mu_ (never held while waiting for I/O).
  mutable std::mutex txn_mu_;
  std::map<int64_t, OpenTxn> open_txns_;  // by producer id
  std::atomic<bool> any_open_{false};     // !open_txns_.empty(), for lock-free readers
  std::shared_ptr<const AbortedMap> aborted_;  // copy-on-write; readers take a snapshot
  bool aborted_dirty_ = false;                 // leader-owned: aborted.idx lags aborted_
  bool has_snapshot_ = false;                  // leader-owned: active segment has a .txnsnap

  RecoveryStats recovery_;
  std::atomic<bool> closed_{false};  // written under mu_, read by tail waiters
};

}  // namespace spate
