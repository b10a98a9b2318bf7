// The Redis dedup store (contract in dedup_store.h; user documentation in docs/ingestion.md,
// "Deduplication"). hiredis (synchronous API) is only included here.
#include <hiredis/hiredis.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <unordered_map>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/fs.h"
#include "config/redis_url.h"
#include "ingest/dedup/dedup_store.h"
#include "ingest/dedup/redis_connect.h"
#include "spate/ingestion.h"

namespace spate::ingest {
namespace {

constexpr char kStored[] = "stored";
constexpr std::string_view kInflightPrefix = "inflight:";
constexpr char kCheckpointFile[] = "redis-dedup.checkpoint";
constexpr char kCheckpointMagic[] = "SPRD1\n";
constexpr size_t kChunk = 1000;          // keys per pipelined round trip (replay, pending)
constexpr size_t kMaxIdle = 64;          // idle connections kept in the pool
constexpr int64_t kMinBackoffMs = 50;    // fail fast after a failed connect, doubling ...
constexpr int64_t kMaxBackoffMs = 1000;  // ... up to this
constexpr size_t kInflightShards = 16;

// Deletes the key only while it still holds the claim's token: a claim that expired and was
// taken by another request is not released by mistake.
constexpr char kReleaseScript[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

int64_t steady_ms() { return system_clock()->steady_ns() / 1'000'000; }

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

std::string_view reply_str(const redisReply* r) { return {r->str, r->len}; }

// A warning at most every 10 s per kind, with the count of those suppressed in between.
class Throttled {
 public:
  void warn(const std::string& what) {
    std::lock_guard lk(mu_);
    int64_t now = steady_ms();
    if (now - last_ms_ < 10'000) {
      ++suppressed_;
      return;
    }
    if (suppressed_ > 0) {
      spdlog::warn("dedup store redis: {} ({} similar messages suppressed)", what, suppressed_);
    } else {
      spdlog::warn("dedup store redis: {}", what);
    }
    last_ms_ = now;
    suppressed_ = 0;
  }

 private:
  std::mutex mu_;
  int64_t last_ms_ = -1'000'000;
  uint64_t suppressed_ = 0;
};

struct KeyHash {
  size_t operator()(const DedupKey& k) const { return static_cast<size_t>(k.lo ^ (k.hi * 31)); }
};

// A connection from the pool. set_get: the server takes SET ... NX GET (Redis >= 7).
struct Conn {
  redisContext* ctx = nullptr;
  bool set_get = false;
  bool reused = false;
  uint64_t epoch = 0;
};

// A committed key that could not be written yet.
struct Pending {
  DedupKey key;
  int64_t expires_ms;  // wall clock
};

// Checkpoint: "SPRD1\n", lines "topic end0 end1 ...", then a CRC32C of everything before.
std::string encode_checkpoint(const std::map<std::string, std::vector<int64_t>>& offsets) {
  std::string out = kCheckpointMagic;
  for (const auto& [topic, ends] : offsets) {
    out += topic;
    for (int64_t o : ends) out += " " + std::to_string(o);
    out += "\n";
  }
  uint32_t crc = crc32c::value(out.data(), out.size());
  out.append(reinterpret_cast<const char*>(&crc), 4);
  return out;
}

// False if the file is not a valid checkpoint (then the whole log is replayed).
bool decode_checkpoint(const std::string& d, std::map<std::string, std::vector<int64_t>>* out) {
  const size_t magic = std::strlen(kCheckpointMagic);
  if (d.size() < magic + 4 || d.compare(0, magic, kCheckpointMagic) != 0) return false;
  uint32_t crc;
  std::memcpy(&crc, d.data() + d.size() - 4, 4);
  if (crc32c::value(d.data(), d.size() - 4) != crc) return false;
  std::istringstream in(d.substr(magic, d.size() - 4 - magic));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    std::string topic;
    ls >> topic;
    int64_t o;
    auto& v = (*out)[topic];
    while (ls >> o) v.push_back(o);
  }
  return true;
}

class RedisDedup final : public DedupStore {
 public:
  RedisDedup(RedisDedupOptions o, config::RedisUrl url)
      : opts_(std::move(o)), url_(std::move(url)), where_(url_.describe()) {
    if (url_.password.empty()) url_.password = opts_.password;
    std::random_device rd;
    uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                  static_cast<uint64_t>(system_clock()->steady_ns());
    DedupKey as_hex;
    as_hex.hi = id;
    token_prefix_ = std::string(kInflightPrefix) + as_hex.hex().substr(0, 16) + ":";
    claim_ttl_ = std::to_string(opts_.claim_ttl_ms);
  }

  ~RedisDedup() override {
    for (Conn& c : idle_) redisFree(c.ctx);
  }

  // ---- DedupStore ----

  Status claim(const DedupKey* keys, size_t n, int64_t now_ms, DedupState* out) override {
    if (n == 0) return Status::Ok();
    const uint64_t seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
    const std::string token = token_prefix_ + std::to_string(seq);
    KeyBuf kb(opts_.key_prefix, keys, n);
    std::vector<Pending> carried = take_pending();
    const std::string carried_keys = carried_key_text(carried);
    std::vector<std::string> carried_px = px_of(carried, now_ms);
    Status st = round_trip(
        [&](Conn& c) {
          size_t replies = append_pending(c, carried, carried_keys, carried_px);
          for (size_t i = 0; i < n; ++i) {
            if (c.set_get) {
              const char* argv[] = {"SET", kb.key(i), token.data(), "NX", "PX",
                                    claim_ttl_.data(), "GET"};
              const size_t len[] = {3, kb.len(), token.size(), 2, 2, claim_ttl_.size(), 3};
              redisAppendCommandArgv(c.ctx, 7, argv, len);
              replies += 1;
            } else {
              const char* set[] = {"SET", kb.key(i), token.data(), "NX", "PX", claim_ttl_.data()};
              const size_t set_len[] = {3, kb.len(), token.size(), 2, 2, claim_ttl_.size()};
              redisAppendCommandArgv(c.ctx, 6, set, set_len);
              const char* get[] = {"GET", kb.key(i)};
              const size_t get_len[] = {3, kb.len()};
              redisAppendCommandArgv(c.ctx, 2, get, get_len);
              replies += 2;
            }
          }
          return replies;
        },
        [&](const Conn& c, size_t i, const redisReply* r) -> Status {
          if (i < carried.size()) return expect_ok(r, "SET (pending commit)");
          i -= carried.size();
          if (r->type == REDIS_REPLY_ERROR) return Unavailable("redis " + where_ + ": " + std::string(reply_str(r)));
          if (c.set_get) {
            out[i] = classify(r, token);
            return Status::Ok();
          }
          const size_t k = i / 2;
          if (i % 2 == 0) {  // SET NX: OK = claimed, nil = the key exists (its value follows)
            out[k] = r->type == REDIS_REPLY_STATUS ? DedupState::kNew : DedupState::kInFlight;
          } else if (out[k] != DedupState::kNew) {
            // Nil here: the key vanished between SET and GET; answer "retry".
            out[k] = r->type == REDIS_REPLY_NIL ? DedupState::kInFlight : classify(r, token);
          }
          return Status::Ok();
        });
    if (!st.ok()) {
      put_back_pending(std::move(carried));
      return st;
    }
    committed_.fetch_add(carried.size(), std::memory_order_relaxed);
    // Remember this process's open claims (release needs the token; checkpoint waits for them).
    const uint64_t gen = gen_.load(std::memory_order_acquire);
    const int64_t at = steady_ms();
    for (size_t i = 0; i < n; ++i) {
      if (out[i] != DedupState::kNew) continue;
      InflightShard& s = inflight_shard(keys[i]);
      std::lock_guard lk(s.mu);
      s.map[keys[i]] = OpenClaim{gen, seq, at};
    }
    return Status::Ok();
  }

  void commit(const DedupKey* keys, size_t n, int64_t now_ms) override {
    if (n == 0) return;
    std::vector<Pending> batch = take_pending();
    const int64_t expires = now_ms + opts_.ttl_ms;
    for (size_t i = 0; i < n; ++i) batch.push_back({keys[i], expires});
    Status st = write_stored(batch, now_ms);
    if (!st.ok()) {
      commit_errors_.fetch_add(1, std::memory_order_relaxed);
      log_.warn("commit of " + std::to_string(n) + " key(s) failed, kept for retry: " +
                st.to_string());
      put_back_pending(std::move(batch));
    } else {
      committed_.fetch_add(n, std::memory_order_relaxed);
    }
    // Only now (written or pending) the keys stop holding back the checkpoint.
    for (size_t i = 0; i < n; ++i) forget_claim(keys[i]);
  }

  void release(const DedupKey* keys, size_t n) override {
    std::vector<std::pair<const DedupKey*, std::string>> mine;
    for (size_t i = 0; i < n; ++i) {
      std::optional<OpenClaim> c = forget_claim(keys[i]);
      if (c) mine.emplace_back(&keys[i], token_prefix_ + std::to_string(c->seq));
    }
    if (mine.empty()) return;
    std::vector<DedupKey> ks;
    for (const auto& m : mine) ks.push_back(*m.first);
    KeyBuf kb(opts_.key_prefix, ks.data(), ks.size());
    Status st = round_trip(
        [&](Conn& c) {
          for (size_t i = 0; i < mine.size(); ++i) {
            const char* argv[] = {"EVAL", kReleaseScript, "1", kb.key(i), mine[i].second.data()};
            const size_t len[] = {4, sizeof(kReleaseScript) - 1, 1, kb.len(), mine[i].second.size()};
            redisAppendCommandArgv(c.ctx, 5, argv, len);
          }
          return mine.size();
        },
        [&](const Conn&, size_t, const redisReply* r) -> Status {
          if (r->type == REDIS_REPLY_ERROR) return Unavailable("EVAL: " + std::string(reply_str(r)));
          return Status::Ok();
        });
    if (!st.ok()) {
      release_errors_.fetch_add(1, std::memory_order_relaxed);
      log_.warn("release of " + std::to_string(mine.size()) + " claim(s) failed (they expire in " +
                claim_ttl_ + " ms): " + st.to_string());
    }
  }

  DedupStats stats() const override {
    DedupStats s;
    s.counts_keys = false;
    s.committed = committed_.load(std::memory_order_relaxed);
    s.commit_errors = commit_errors_.load(std::memory_order_relaxed);
    s.release_errors = release_errors_.load(std::memory_order_relaxed);
    std::lock_guard lk(pending_mu_);
    s.pending = pending_.size();
    return s;
  }

  // Writes the end offsets before which every appended key is in Redis. Offsets read now are
  // safe once no claim made before they were read is still open (the records it covers are
  // appended after their claim returned), and nothing is pending; otherwise they wait as the
  // candidate for a later call.
  Status checkpoint(Log& log) override {
    std::lock_guard ck(checkpoint_mu_);
    flush_pending();
    auto ends = end_offsets(log);
    const uint64_t gen = gen_.fetch_add(1, std::memory_order_acq_rel);
    if (safe_up_to(gen)) {
      candidate_.reset();
      return write_checkpoint(ends);
    }
    Status st = Status::Ok();
    if (candidate_ && safe_up_to(candidate_->gen)) {
      st = write_checkpoint(candidate_->ends);
      candidate_.reset();
    }
    if (!candidate_) candidate_ = Candidate{std::move(ends), gen};
    return st;
  }

  // ---- open ----

  // Replays the keys appended since the checkpoint into Redis as stored, then checkpoints.
  Status open(Log& log) {
    {  // connect now: a wrong URL, password or db is an error at start, not at the first event
      SPATE_ASSIGN_OR_RETURN(Conn c, acquire());
      give_back(c);
    }
    std::map<std::string, std::vector<int64_t>> from;
    if (!opts_.dir.empty()) {
      auto data = default_fs()->read_file(path_join(opts_.dir, kCheckpointFile));
      if (data.ok() && !decode_checkpoint(*data, &from)) {
        from.clear();
        spdlog::warn("dedup store redis: {} is damaged; replaying the whole log",
                     path_join(opts_.dir, kCheckpointFile));
      }
    }
    auto ends = end_offsets(log);  // the replay below reaches at least these
    const int64_t now = system_clock()->now_ms();
    std::vector<Pending> batch;
    Status st = Status::Ok();
    uint64_t replayed = 0;
    auto flush = [&] {
      if (st.ok() && !batch.empty()) st = write_stored(batch, now);
      replayed += batch.size();
      batch.clear();
    };
    SPATE_RETURN_IF_ERROR(
        for_each_record_since(log, from, [&](const FetchResult& fr, const RecordView& r) {
          for (const RecordHeader& h : fr.headers_of(r)) {
            DedupKey k;
            if (h.key != "spate.dedup" || !DedupKey::from_hex(h.value, &k)) continue;
            // The TTL left, counted from the record's timestamp (the append time unless
            // timestamp_field set an event time); a timestamp in the future or unset: full TTL.
            int64_t expires = now + opts_.ttl_ms;
            if (r.timestamp_ms > 0 && r.timestamp_ms <= now) expires = r.timestamp_ms + opts_.ttl_ms;
            if (expires <= now) continue;
            batch.push_back({k, expires});
            if (batch.size() >= kChunk) flush();
          }
        }));
    flush();
    if (!st.ok()) return st.with_context("replaying the log's dedup keys into redis " + where_);
    if (replayed > 0) {
      spdlog::info("dedup store redis: replayed {} key(s) appended since the last checkpoint into {}",
                   replayed, where_);
    }
    if (!opts_.dir.empty()) SPATE_RETURN_IF_ERROR(write_checkpoint(ends));
    return Status::Ok();
  }

 private:
  struct OpenClaim {
    uint64_t gen;     // checkpoint generation at claim time
    uint64_t seq;     // the claim's token number
    int64_t at_ms;    // steady clock
  };
  struct InflightShard {
    std::mutex mu;
    std::unordered_map<DedupKey, OpenClaim, KeyHash> map;
  };
  struct Candidate {
    std::map<std::string, std::vector<int64_t>> ends;
    uint64_t gen;
  };

  // The Redis keys of a batch in one buffer: prefix + 32 hex digits each.
  class KeyBuf {
   public:
    KeyBuf(const std::string& prefix, const DedupKey* keys, size_t n) : len_(prefix.size() + 32) {
      buf_.resize(len_ * n);
      for (size_t i = 0; i < n; ++i) {
        char* p = &buf_[i * len_];
        std::memcpy(p, prefix.data(), prefix.size());
        keys[i].to_hex(p + prefix.size());
      }
    }
    const char* key(size_t i) const { return buf_.data() + i * len_; }
    size_t len() const { return len_; }

   private:
    size_t len_;
    std::string buf_;
  };

  InflightShard& inflight_shard(const DedupKey& k) { return inflight_[k.hi % kInflightShards]; }

  std::optional<OpenClaim> forget_claim(const DedupKey& k) {
    InflightShard& s = inflight_shard(k);
    std::lock_guard lk(s.mu);
    auto it = s.map.find(k);
    if (it == s.map.end()) return std::nullopt;
    OpenClaim c = it->second;
    s.map.erase(it);
    return c;
  }

  // No pending commit, none lost, and no claim of generation <= gen still open. A claim older
  // than claim_ttl no longer counts (Redis forgot it too; e.g. a request refused after its
  // claim): it is dropped here.
  bool safe_up_to(uint64_t gen) {
    if (lost_.load(std::memory_order_acquire)) return false;
    {
      std::lock_guard lk(pending_mu_);
      if (!pending_.empty()) return false;
    }
    const int64_t stale_before = steady_ms() - opts_.claim_ttl_ms;
    bool safe = true;
    for (InflightShard& s : inflight_) {
      std::lock_guard lk(s.mu);
      for (auto it = s.map.begin(); it != s.map.end();) {
        if (it->second.at_ms < stale_before) {
          it = s.map.erase(it);
          continue;
        }
        if (it->second.gen <= gen) safe = false;
        ++it;
      }
    }
    return safe;
  }

  Status write_checkpoint(const std::map<std::string, std::vector<int64_t>>& ends) {
    if (opts_.dir.empty()) return Status::Ok();
    SPATE_RETURN_IF_ERROR(default_fs()->create_dirs(opts_.dir));
    return default_fs()->write_file_atomic(path_join(opts_.dir, kCheckpointFile),
                                           encode_checkpoint(ends));
  }

  // ---- pending commits ----

  std::vector<Pending> take_pending() {
    std::vector<Pending> out;
    std::lock_guard lk(pending_mu_);
    const size_t n = std::min(pending_.size(), kChunk);
    out.assign(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
    return out;
  }

  void put_back_pending(std::vector<Pending> keys) {
    if (keys.empty()) return;
    std::lock_guard lk(pending_mu_);
    pending_.insert(pending_.begin(), keys.begin(), keys.end());
    if (pending_.size() > opts_.max_pending) {
      // Over the bound: forget the oldest. They are still in the log, and the checkpoint stops
      // advancing for the rest of this process, so the next start replays them into Redis.
      const size_t drop = pending_.size() - opts_.max_pending;
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(drop));
      if (!lost_.exchange(true)) {
        spdlog::error("dedup store redis: more than {} commits pending while {} is unreachable; "
                      "the oldest are dropped from memory and the checkpoint is frozen, so the "
                      "next start replays them from the log",
                      opts_.max_pending, where_);
      }
    }
  }

  void flush_pending() {
    while (true) {
      std::vector<Pending> batch = take_pending();
      if (batch.empty()) return;
      Status st = write_stored(batch, system_clock()->now_ms());
      if (!st.ok()) {
        put_back_pending(std::move(batch));
        return;
      }
      committed_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
  }

  static std::string carried_key_text(const std::vector<Pending>& p) {
    std::string out;
    for (const Pending& x : p) out += x.key.hex();
    return out;
  }

  std::vector<std::string> px_of(const std::vector<Pending>& p, int64_t now_ms) const {
    std::vector<std::string> out;
    out.reserve(p.size());
    for (const Pending& x : p) out.push_back(std::to_string(std::max<int64_t>(1, x.expires_ms - now_ms)));
    return out;
  }

  // Appends `SET k stored PX left` for each carried pending key; returns the reply count.
  size_t append_pending(Conn& c, const std::vector<Pending>& p, const std::string& hex,
                        const std::vector<std::string>& px) {
    std::string key;
    for (size_t i = 0; i < p.size(); ++i) {
      key = opts_.key_prefix;
      key.append(hex, i * 32, 32);
      const char* argv[] = {"SET", key.data(), kStored, "PX", px[i].data()};
      const size_t len[] = {3, key.size(), sizeof(kStored) - 1, 2, px[i].size()};
      redisAppendCommandArgv(c.ctx, 5, argv, len);
    }
    return p.size();
  }

  // One round trip of `SET k stored PX left` (keys whose TTL has passed are skipped).
  Status write_stored(const std::vector<Pending>& keys, int64_t now_ms) {
    std::vector<Pending> live;
    live.reserve(keys.size());
    for (const Pending& p : keys) {
      if (p.expires_ms > now_ms) live.push_back(p);
    }
    if (live.empty()) return Status::Ok();
    const std::string hex = carried_key_text(live);
    const std::vector<std::string> px = px_of(live, now_ms);
    return round_trip([&](Conn& c) { return append_pending(c, live, hex, px); },
                      [&](const Conn&, size_t, const redisReply* r) { return expect_ok(r, "SET"); });
  }

  Status expect_ok(const redisReply* r, const char* what) const {
    if (r->type == REDIS_REPLY_STATUS) return Status::Ok();
    return Unavailable("redis " + where_ + ": " + what + ": " +
                       (r->type == REDIS_REPLY_ERROR ? std::string(reply_str(r)) : "unexpected reply"));
  }

  DedupState classify(const redisReply* r, const std::string& token) const {
    if (r->type == REDIS_REPLY_NIL) return DedupState::kNew;  // SET ... NX GET: it was set
    if (r->type != REDIS_REPLY_STRING) return DedupState::kInFlight;
    std::string_view v = reply_str(r);
    if (v == token) return DedupState::kNew;  // our own claim (a retried round trip)
    if (v.substr(0, kInflightPrefix.size()) == kInflightPrefix) return DedupState::kInFlight;
    // "stored" — or a value some other writer put under our prefix: the key is taken either
    // way, and claiming it would overwrite foreign data.
    return DedupState::kDuplicate;
  }

  // ---- connections ----

  // One pipelined round trip: `build` appends the commands and returns how many replies to
  // read; each reply goes to `on_reply` (all are read, so the connection stays in sync; the
  // first error wins). A failure on a reused connection (the server may have restarted since)
  // is retried once on a fresh one; the commands used here are idempotent for that.
  Status round_trip(const std::function<size_t(Conn&)>& build,
                    const std::function<Status(const Conn&, size_t, const redisReply*)>& on_reply) {
    for (int attempt = 0;; ++attempt) {
      SPATE_ASSIGN_OR_RETURN(Conn c, acquire());
      const size_t n = build(c);
      Status first = Status::Ok();
      bool io_failed = false;
      bool timed_out = false;
      std::string io_error;
      for (size_t i = 0; i < n; ++i) {
        void* raw = nullptr;
        if (redisGetReply(c.ctx, &raw) != REDIS_OK || raw == nullptr) {
          timed_out = c.ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
          io_failed = true;
          io_error = c.ctx->errstr[0] != '\0' ? c.ctx->errstr : "connection lost";
          break;
        }
        ReplyPtr r(static_cast<redisReply*>(raw));
        Status s = on_reply(c, i, r.get());
        if (first.ok() && !s.ok()) first = std::move(s);
      }
      if (!io_failed) {
        give_back(c);
        return first;
      }
      const bool reused = c.reused;
      drop(c);
      if (timed_out) {
        return Timeout("redis " + where_ + ": no reply within " + std::to_string(opts_.timeout_ms) +
                       " ms");
      }
      if (reused && attempt == 0) continue;
      return Unavailable("redis " + where_ + ": " + io_error);
    }
  }

  Result<Conn> acquire() {
    {
      std::lock_guard lk(pool_mu_);
      if (!idle_.empty()) {
        Conn c = idle_.back();
        idle_.pop_back();
        c.reused = true;
        return c;
      }
      if (steady_ms() < retry_at_ms_) return Unavailable(last_error_ + " (retrying shortly)");
    }
    return connect();
  }

  void give_back(Conn c) {
    std::unique_lock lk(pool_mu_);
    if (c.epoch == epoch_ && idle_.size() < kMaxIdle) {
      idle_.push_back(c);
      return;
    }
    lk.unlock();
    redisFree(c.ctx);
  }

  // A connection failed: so did, most likely, every idle one (e.g. Redis restarted).
  void drop(Conn c) {
    redisFree(c.ctx);
    std::vector<Conn> stale;
    {
      std::lock_guard lk(pool_mu_);
      ++epoch_;
      stale.swap(idle_);
    }
    for (Conn& s : stale) redisFree(s.ctx);
  }

  Status connect_failed(redisContext* ctx, std::string what) {
    if (ctx != nullptr) redisFree(ctx);
    std::string msg = "redis " + where_ + ": " + what;
    std::lock_guard lk(pool_mu_);
    last_error_ = msg;
    retry_at_ms_ = steady_ms() + backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
    return Unavailable(std::move(msg));
  }

  // A blocking command on a fresh connection (AUTH, SELECT, INFO).
  static ReplyPtr command(redisContext* ctx, std::initializer_list<std::string_view> args) {
    return ReplyPtr(redis_command(ctx, args).release());
  }

  Result<Conn> connect() {
    auto opened = redis_open(url_, opts_.timeout_ms);
    if (!opened.ok()) return connect_failed(nullptr, opened.status().message());
    redisContext* ctx = *opened;
    Conn c;
    c.ctx = ctx;
    if (opts_.use_set_get) {
      // SET ... NX GET needs Redis >= 7. An INFO that fails (e.g. not allowed by an ACL) means
      // the two-command claim, which works everywhere.
      ReplyPtr r = command(ctx, {"INFO", "server"});
      if (!r) return connect_failed(ctx, std::string("INFO: ") + ctx->errstr);
      if (r->type == REDIS_REPLY_STRING) {
        std::string_view info = reply_str(r.get());
        size_t p = info.find("redis_version:");
        if (p != std::string_view::npos) c.set_get = std::atoi(info.data() + p + 14) >= 7;
      }
    }
    std::lock_guard lk(pool_mu_);
    c.epoch = epoch_;
    backoff_ms_ = kMinBackoffMs;
    retry_at_ms_ = 0;
    return c;
  }

  RedisDedupOptions opts_;
  config::RedisUrl url_;
  const std::string where_;  // host:port/db for messages, never the password
  std::string token_prefix_;  // "inflight:<16 hex of this store>:"
  std::string claim_ttl_;
  std::atomic<uint64_t> next_seq_{1};

  std::mutex pool_mu_;  // guards the fields below up to last_error_
  std::vector<Conn> idle_;
  uint64_t epoch_ = 0;
  int64_t retry_at_ms_ = 0;
  int64_t backoff_ms_ = kMinBackoffMs;
  std::string last_error_;

  mutable std::mutex pending_mu_;
  std::deque<Pending> pending_;
  std::atomic<bool> lost_{false};

  std::array<InflightShard, kInflightShards> inflight_;
  std::atomic<uint64_t> gen_{0};
  std::mutex checkpoint_mu_;
  std::optional<Candidate> candidate_;

  std::atomic<uint64_t> committed_{0};
  std::atomic<uint64_t> commit_errors_{0};
  std::atomic<uint64_t> release_errors_{0};
  Throttled log_;
};

}  // namespace

Result<std::unique_ptr<DedupStore>> open_redis_dedup(const RedisDedupOptions& opts, Log& log) {
  config::RedisUrl url;
  if (std::string e = config::parse_redis_url(opts.url.empty() ? "redis://127.0.0.1:6379/0" : opts.url, &url);
      !e.empty()) {
    return InvalidArgument("redis url: " + e);
  }
  if (opts.ttl_ms <= 0 || opts.claim_ttl_ms <= 0 || opts.timeout_ms <= 0) {
    return InvalidArgument("redis dedup: ttl, claim_ttl and timeout must be positive");
  }
  // hiredis writes with write(2): a server that closed the connection mid-pipeline would raise
  // SIGPIPE, whose default action ends the process. Ignore it unless the program handles it.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    std::signal(SIGPIPE, SIG_IGN);
  }
  auto store = std::make_unique<RedisDedup>(opts, std::move(url));
  SPATE_RETURN_IF_ERROR(store->open(log));
  return std::unique_ptr<DedupStore>(std::move(store));
}

}  // namespace spate::ingest
