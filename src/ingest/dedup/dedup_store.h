// Deduplication stores. An event's dedup key (a hash of configured fields, or of the whole
// payload) is claimed before the event is appended and committed only once the append is
// durable, so that:
//  - a duplicate of a stored event is never stored again (kDuplicate within the TTL), and
//  - an event is never dropped as a duplicate of one that was not stored: while the first copy
//    is being appended the key is in flight (kInFlight — the caller asks the client to retry),
//    and a failed append releases the claim.
// Thread-safe. The embedded store keeps keys in memory (bounded by max_keys; expired keys go
// first, then the oldest) and survives restarts through a snapshot plus a replay of the
// `spate.dedup` headers the log holds since the snapshot (ingest/dedup/README in
// docs/ingestion.md).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "spate/log.h"
#include "spate/status.h"

namespace spate::ingest {

struct DedupKey {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const DedupKey& o) const { return lo == o.lo && hi == o.hi; }
  std::string hex() const;
  static bool from_hex(std::string_view s, DedupKey* out);
};

enum class DedupState : uint8_t { kNew, kDuplicate, kInFlight };

struct DedupStats {
  uint64_t keys = 0;
  uint64_t evicted = 0;
};

class DedupStore {
 public:
  virtual ~DedupStore() = default;
  /// For each key: kNew (now claimed, in flight), kDuplicate (stored within the TTL) or
  /// kInFlight (claimed by another request that has not finished). An error means the store
  /// could not be asked (the caller applies on_store_error).
  virtual Status claim(const DedupKey* keys, size_t n, int64_t now_ms, DedupState* out) = 0;
  /// The claimed keys are durable in the log: remember them for the TTL.
  virtual void commit(const DedupKey* keys, size_t n, int64_t now_ms) = 0;
  /// The append failed: forget the claims.
  virtual void release(const DedupKey* keys, size_t n) = 0;
  virtual DedupStats stats() const = 0;
  /// Persist what is needed to survive a restart (embedded: snapshot). Called periodically and
  /// on stop.
  virtual Status checkpoint(Log& log) = 0;
};

struct EmbeddedDedupOptions {
  int64_t ttl_ms = 24LL * 3600 * 1000;
  size_t max_keys = 10'000'000;
  std::string dir;  // snapshot directory ("" = no persistence)
};

/// Open the embedded store: load the snapshot in opts.dir and replay the `spate.dedup` headers
/// appended to `log` since it was taken.
Result<std::unique_ptr<DedupStore>> open_embedded_dedup(const EmbeddedDedupOptions& opts, Log& log);

}  // namespace spate::ingest
