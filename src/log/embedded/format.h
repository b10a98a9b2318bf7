// On-disk format of the embedded log: record batches, index entries. See docs/log-format.md.
//
// Contract: pure encoding/decoding functions, thread-safe. decode functions never trust their
// input: every length is bounds-checked and a bad batch yields Errc::kCorruption, never UB.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "spate/log.h"
#include "spate/status.h"

namespace spate::logfmt {

// Batch header layout (little-endian):
//   0  i64 base_offset
//   8  u32 batch_length        bytes that follow this field (header rest + payload)
//  12  u32 crc32c              over bytes [16, 12 + batch_length)
//  16  u8  magic (kMagic)
//  17  u8  attributes          bits 0-1: compression (0 none, 1 lz4, 2 zstd),
//                              bit 2: transactional, bit 3: control (marker)
//  18  u16 reserved (0)
//  20  u32 record_count
//  24  i64 first_timestamp
//  32  i64 max_timestamp
//  40  u32 raw_payload_size    payload size before compression
//  44  payload: record_count records (possibly compressed)
// If bit 2 or 3 is set, a 16-byte extension sits between the header and the payload (covered by
// the CRC, counted in batch_length, not in raw_payload_size):
//  44  i64 producer_id
//  52  i64 txn_seq             identifies the transaction (epoch << 32 | counter)
//  60  payload
inline constexpr size_t kHeaderSize = 44;
inline constexpr size_t kTxnExtSize = 16;
inline constexpr uint8_t kAttrTransactional = 0x04;
inline constexpr uint8_t kAttrControl = 0x08;
inline constexpr size_t kLengthFieldEnd = 12;
inline constexpr uint8_t kMagic = 0x53;  // 'S', format version 1
inline constexpr uint32_t kMaxBatchBytes = 256u << 20;

struct BatchHeader {
  int64_t base_offset = 0;
  uint32_t batch_length = 0;
  uint32_t crc = 0;
  uint8_t magic = 0;
  uint8_t attributes = 0;
  uint32_t record_count = 0;
  int64_t first_timestamp = 0;
  int64_t max_timestamp = 0;
  uint32_t raw_payload_size = 0;
  // From the extension (parse_ext), only for transactional/control batches.
  int64_t producer_id = -1;
  int64_t txn_seq = -1;

  bool has_ext() const { return (attributes & (kAttrTransactional | kAttrControl)) != 0; }
  bool is_control() const { return (attributes & kAttrControl) != 0; }
  bool is_transactional() const { return (attributes & kAttrTransactional) != 0; }
  size_t header_size() const { return has_ext() ? kHeaderSize + kTxnExtSize : kHeaderSize; }
  uint64_t total_size() const { return kLengthFieldEnd + static_cast<uint64_t>(batch_length); }
  int64_t last_offset() const { return base_offset + static_cast<int64_t>(record_count) - 1; }
  Compression compression() const { return static_cast<Compression>(attributes & 0x3); }
};

inline void put_u32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void put_i64(char* p, int64_t v) { std::memcpy(p, &v, 8); }
inline uint32_t get_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline int64_t get_i64(const char* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

/// Encode records into a complete batch in `out` (replacing its contents) with base_offset 0;
/// the log patches the base offset with set_base_offset() when it assigns offsets. Timestamps of
/// 0 are replaced by `now_ms`. Reuses out's capacity (no allocation in steady state).
/// `scratch` is a reusable buffer for compression.
/// Transaction identity written into the batch extension.
struct TxnTag {
  int64_t producer_id = 0;
  int64_t txn_seq = 0;
  bool control = false;  // a marker batch (else transactional data)
};

Status encode_batch(const RecordIn* records, size_t count, int64_t now_ms, Compression compression,
                    std::string* out, std::string* scratch, const TxnTag* txn = nullptr);

/// A control batch holding one marker record (value "\x01" COMMIT, "\x00" ABORT).
Status encode_marker(int64_t producer_id, int64_t txn_seq, bool commit, int64_t now_ms,
                     std::string* out);

/// Fill h's extension fields from a batch of which at least h.header_size() bytes are at p.
inline void parse_ext(const char* p, BatchHeader* h) {
  if (!h->has_ext()) return;
  h->producer_id = get_i64(p + kHeaderSize);
  h->txn_seq = get_i64(p + kHeaderSize + 8);
}

/// True if the complete, CRC-checked control batch is a COMMIT marker (false: ABORT).
Result<bool> marker_is_commit(const char* batch, const BatchHeader& h);

inline void set_base_offset(char* batch, int64_t base) { put_i64(batch, base); }

/// Parse the fixed header from at least kHeaderSize bytes. Checks magic and lengths (not CRC).
Status parse_header(const char* p, size_t avail, BatchHeader* h);

/// Verify the CRC of a complete batch (h.total_size() bytes at p).
bool crc_ok(const char* p, const BatchHeader& h);

/// Decode the records of a complete, CRC-checked batch. Views point into `batch` or, for
/// compressed batches, into a buffer appended to `buffers`. Records with offset < min_offset
/// are skipped.
Status decode_records(const char* batch, const BatchHeader& h, int64_t min_offset,
                      FetchResult* out, size_t max_records);

// Index entries.
inline constexpr size_t kIndexEntrySize = 8;       // u32 relative offset, u32 position
inline constexpr size_t kTimeIndexEntrySize = 16;  // i64 max timestamp so far, u32 rel offset, u32 position

}  // namespace spate::logfmt
