// Deduplication stores. An event's dedup key (a hash of configured fields, or of the whole
// payload) is claimed before the event is appended and committed only once the append is
// durable, so that:
//  - a duplicate of a stored event is never stored again (kDuplicate within the TTL), and
//  - an event is never dropped as a duplicate of one that was not stored: while the first copy
//    is being appended the key is in flight (kInFlight — the caller asks the client to retry),
//    and a failed append releases the claim.
// Thread-safe. Two stores: embedded and Redis (open_* below). The embedded store keeps keys in memory (bounded by max_keys; expired keys go
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
  /// The 32 lowercase hex digits of hex(), written to out[0..31] (no allocation).
  void to_hex(char* out) const;
  static bool from_hex(std::string_view s, DedupKey* out);
};

enum class DedupState : uint8_t { kNew, kDuplicate, kInFlight };

struct DedupStats {
  uint64_t keys = 0;          // keys held (embedded); see counts_keys
  uint64_t evicted = 0;       // embedded: keys dropped before their TTL (max_keys)
  bool counts_keys = true;    // false: `keys` is unknown (Redis: a shared database)
  uint64_t committed = 0;     // keys this process wrote as stored (redis)
  uint64_t pending = 0;       // committed keys not yet written to the store, to be retried (redis)
  uint64_t commit_errors = 0;   // commit round trips that failed (their keys became pending)
  uint64_t release_errors = 0;  // release round trips that failed (the claims expire by claim_ttl)
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

struct RedisDedupOptions {
  std::string url = "redis://127.0.0.1:6379/0";  // config/redis_url.h forms (may hold a password)
  std::string password;                 // AUTH password when the URL has none (never logged)
  std::string key_prefix = "spate:dedup:";
  int64_t ttl_ms = 24LL * 3600 * 1000;  // a committed key is a duplicate for this long
  int64_t claim_ttl_ms = 30'000;        // a claim not committed or released expires after this
  int64_t timeout_ms = 1000;            // connect timeout and per-round-trip timeout
  std::string dir;                      // checkpoint directory ("" = replay the whole log on open)
  size_t max_pending = 1'000'000;       // committed keys kept for retry while Redis is unreachable
  bool use_set_get = true;  // SET NX GET when the server is >= 7; false forces SET NX + GET (tests)
};

/// The Redis store: keys live in Redis as `<key_prefix><DedupKey::hex()>`, shared by every
/// replica that uses the same database and prefix.
///  - claim: one pipelined round trip for the batch, `SET k inflight:<token> NX PX claim_ttl GET`
///    (Redis >= 7; older servers: SET NX followed by GET in the same pipeline). Nil → kNew,
///    an `inflight:` value → kInFlight (our own token → kNew, so a retried round trip is
///    idempotent), anything else → kDuplicate. A failed round trip returns kUnavailable or
///    kTimeout; the caller applies on_store_error. Claims that reached Redis before the failure
///    expire after claim_ttl.
///  - commit: `SET k stored PX ttl`. If Redis cannot be reached the keys are kept (at most
///    max_pending) and written by the next claim, commit or checkpoint round trip; failures are
///    logged (rate-limited) and counted (stats().commit_errors, .pending).
///  - release: deletes the key only if it still holds this claim's token (EVAL of a 2-line Lua
///    script). A failure is logged and counted; the claim then expires after claim_ttl.
///  - Crash window (durable append, commit never reached Redis): checkpoint() writes the log's
///    end offsets to `<dir>/redis-dedup.checkpoint`, but only offsets before which every
///    appended key is known to be in Redis (no pending commits, no claim of that time still
///    open). open_redis_dedup() replays the `spate.dedup` headers appended since then into
///    Redis as stored, with the TTL left from the record's timestamp.
/// Connections: a pool (one per concurrent caller, created on demand, reused; no lock is held
/// during a round trip), AUTH [user] password and SELECT db on connect, connect and command
/// timeouts; a connection that failed is dropped together with the idle ones (a restarted Redis
/// closed them all) and the round trip is retried once on a fresh connection if the failed one
/// was reused. After a failed connect, calls fail fast for a short, growing backoff (50 ms to
/// 1 s). Thread-safe; secrets are never logged. Sets SIGPIPE to ignored if it has the default
/// action (a write to a connection the server closed would otherwise end the process).
/// Fails (kUnavailable, kInvalidArgument for a bad URL) if Redis cannot be reached, the AUTH or
/// SELECT fails, or the replay cannot be written.
Result<std::unique_ptr<DedupStore>> open_redis_dedup(const RedisDedupOptions& opts, Log& log);

}  // namespace spate::ingest
