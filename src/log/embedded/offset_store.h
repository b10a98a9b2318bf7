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
#pragma once

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
  Status append_record_locked(const std::string& rec, const char* what);
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
};

}  // namespace spate
