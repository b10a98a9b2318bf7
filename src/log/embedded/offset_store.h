// OffsetStore: durable committed offsets of consumer groups (group, topic, partition) -> offset.
//
// Contract: thread-safe. commit() appends one CRC-protected record to `offsets.log` and fsyncs
// before returning; on open the file is replayed up to the first torn/corrupt record, which is
// truncated away. The file is compacted (rewritten atomically) when it grows well past the live
// state.
//
// It is also the transaction coordinator's durable record: register_producer() maps a
// transactional id to (producer id, epoch); commit_txn() writes ONE record "transaction
// (producer id, txn seq) committed, with these group offsets" and fsyncs it — that record is the
// commit point of a transaction.
//
// Concurrent commits are grouped (group commit): records queued while one fsync runs are
// written together with the next single append + fsync. Each call still returns only once its
// own record is durable, and its state (offsets, producer, committed txn) is applied — in file
// order — only then; if the write or fsync fails, every record of that group fails and is cut
// from the file.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/fs.h"
#include "spate/status.h"

namespace spate {

class OffsetStore {
 public:
  OffsetStore(FileSystem* fs, std::string dir);
  Status open();
  Status commit(std::string_view group, std::string_view topic,
                const std::map<uint32_t, int64_t>& offsets);
  std::optional<int64_t> get(std::string_view group, std::string_view topic,
                             uint32_t partition) const;

  struct ProducerEntry {
    int64_t producer_id = 0;
    int32_t epoch = 0;
  };
  struct TxnOffset {
    std::string group, topic;
    uint32_t partition = 0;
    int64_t offset = 0;
  };
  Status register_producer(std::string_view transactional_id, ProducerEntry e);
  std::optional<ProducerEntry> producer(std::string_view transactional_id) const;
  /// Largest producer id ever registered (-1 if none).
  int64_t max_producer_id() const;
  /// The commit point of a transaction: one record, fsynced; then the offsets are applied.
  Status commit_txn(int64_t producer_id, int64_t txn_seq, const std::vector<TxnOffset>& offsets);
  /// txn_seq of the producer's last committed transaction.
  std::optional<int64_t> last_committed_txn(int64_t producer_id) const;
  Status close();

 private:
  struct Waiter;
  Status append_grouped(const std::string& rec, const char* what,
                        const std::function<void()>& apply);
  static std::string frame(const std::string& body);
  static std::string encode_producer(std::string_view tid, ProducerEntry e);
  static std::string encode_txn(int64_t producer_id, int64_t txn_seq,
                                const std::vector<TxnOffset>& offsets);
  Status compact_locked();
  static std::string encode(std::string_view group, std::string_view topic,
                            const std::map<uint32_t, int64_t>& offsets);

  FileSystem* fs_;
  std::string dir_, path_;
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, uint32_t>, int64_t> offsets_;
  std::map<std::string, ProducerEntry, std::less<>> producers_;
  std::map<int64_t, int64_t> committed_txns_;  // producer id -> last committed txn seq
  std::unique_ptr<WritableFile> file_;
  std::deque<Waiter*> queue_;      // guarded by mu_: records waiting; the front one leads
  bool leader_active_ = false;     // guarded by mu_: a leader writes file_ without mu_
  std::condition_variable idle_cv_;  // leader_active_ went false
};

}  // namespace spate
