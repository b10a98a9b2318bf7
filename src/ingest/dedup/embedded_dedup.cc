#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/fs.h"
#include "ingest/dedup/dedup_store.h"
#include "spate/ingestion.h"

namespace spate::ingest {

void DedupKey::to_hex(char* out) const {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = kHex[(hi >> (4 * i)) & 15];
    out[31 - i] = kHex[(lo >> (4 * i)) & 15];
  }
}

std::string DedupKey::hex() const {
  std::string out(32, '0');
  to_hex(out.data());
  return out;
}

bool DedupKey::from_hex(std::string_view s, DedupKey* out) {
  if (s.size() != 32) return false;
  auto parse = [](std::string_view h, uint64_t* v) {
    uint64_t x = 0;
    for (char c : h) {
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      x = (x << 4) | static_cast<uint64_t>(d);
    }
    *v = x;
    return true;
  };
  return parse(s.substr(0, 16), &out->hi) && parse(s.substr(16), &out->lo);
}

namespace {

// Open-addressing hash table from DedupKey to an int64 (expiry or in-flight marker), linear
// probing with backward-shift deletion, load factor <= 1/2. Keys are already uniform hashes
// (xxh3-128), so `lo` is the probe start; a lookup is typically one cache miss (24-byte slots),
// against two or three for std::unordered_map's buckets and nodes. The all-zero key marks an
// empty slot; callers never use it (a zero hash becomes lo = 1, see the engine).
class KeyTable {
 public:
  KeyTable() : slots_(16) {}

  int64_t* find(const DedupKey& k) {
    for (size_t i = home(k);; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.lo == k.lo && s.hi == k.hi) return &s.value;
      if (empty(s)) return nullptr;
    }
  }
  const int64_t* find(const DedupKey& k) const { return const_cast<KeyTable*>(this)->find(k); }

  /// The value slot of `k`, inserted (with value `v`) if absent; *inserted says which.
  int64_t* find_or_insert(const DedupKey& k, int64_t v, bool* inserted) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    for (size_t i = home(k);; i = (i + 1) & mask()) {
      Slot& s = slots_[i];
      if (s.lo == k.lo && s.hi == k.hi) {
        *inserted = false;
        return &s.value;
      }
      if (empty(s)) {
        s = {k.lo, k.hi, v};
        ++size_;
        *inserted = true;
        return &s.value;
      }
    }
  }

  void erase(const DedupKey& k) {
    size_t i = home(k);
    for (;; i = (i + 1) & mask()) {
      if (slots_[i].lo == k.lo && slots_[i].hi == k.hi) break;
      if (empty(slots_[i])) return;
    }
    // Backward shift: move later members of the probe run into the hole when their home
    // position does not lie cyclically in (hole, j].
    size_t hole = i;
    for (size_t j = (i + 1) & mask(); !empty(slots_[j]); j = (j + 1) & mask()) {
      const size_t h = home({slots_[j].lo, slots_[j].hi});
      const bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
      if (!stays) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

  size_t size() const { return size_; }

  /// Start loading the cache line where `k`'s probe begins (a hint; no effect on contents).
  void prefetch(const DedupKey& k) const { __builtin_prefetch(&slots_[home(k)]); }

  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (!empty(s)) f(DedupKey{s.lo, s.hi}, s.value);
    }
  }

 private:
  struct Slot {
    uint64_t lo = 0;
    uint64_t hi = 0;
    int64_t value = 0;
  };
  static bool empty(const Slot& s) { return s.lo == 0 && s.hi == 0; }
  size_t mask() const { return slots_.size() - 1; }
  size_t home(const DedupKey& k) const { return static_cast<size_t>(k.lo) & mask(); }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    size_ = 0;
    bool ins;
    for (const Slot& s : old) {
      if (!empty(s)) find_or_insert({s.lo, s.hi}, s.value, &ins);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// The all-zero key is the table's empty marker: keys never are zero (the engine maps a zero
// hash to lo = 1), but keys from a caller or a snapshot are normalized the same way.
inline DedupKey normalized(DedupKey k) {
  if (k.lo == 0 && k.hi == 0) k.lo = 1;
  return k;
}

constexpr size_t kShards = 16;
// A claimed, not yet committed key holds -(1 + g) instead of an expiry, g being the checkpoint
// generation in which it was claimed (see checkpoint()).
inline bool in_flight(int64_t v) { return v < 0; }
inline int64_t in_flight_value(uint64_t gen) { return -1 - static_cast<int64_t>(gen); }
inline uint64_t generation_of(int64_t v) { return static_cast<uint64_t>(-1 - v); }

class EmbeddedDedup final : public DedupStore {
 public:
  explicit EmbeddedDedup(EmbeddedDedupOptions o) : opts_(std::move(o)) {}

  Status claim(const DedupKey* keys, size_t n, int64_t now_ms, DedupState* out) override {
    const int64_t claimed = in_flight_value(generation_.load(std::memory_order_acquire));
    for_each_by_shard(keys, n, [&](Shard& s, size_t i) {
      bool inserted = false;
      int64_t* v = s.map.find_or_insert(normalized(keys[i]), claimed, &inserted);
      if (!inserted) {
        if (in_flight(*v)) {
          out[i] = DedupState::kInFlight;
          return;
        }
        if (*v > now_ms) {
          out[i] = DedupState::kDuplicate;
          return;
        }
        *v = claimed;  // expired: claim it again
      }
      out[i] = DedupState::kNew;
    });
    return Status::Ok();
  }

  void commit(const DedupKey* keys, size_t n, int64_t now_ms) override {
    const int64_t expiry = now_ms + opts_.ttl_ms;
    for_each_by_shard(keys, n, [&](Shard& s, size_t i) { insert_locked(s, keys[i], expiry, now_ms); });
  }

  void release(const DedupKey* keys, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      Shard& s = shard(keys[i]);
      std::lock_guard lk(s.mu);
      const DedupKey k = normalized(keys[i]);
      const int64_t* v = s.map.find(k);
      if (v != nullptr && in_flight(*v)) s.map.erase(k);
    }
  }

  DedupStats stats() const override {
    DedupStats st;
    for (const Shard& s : shards_) {
      std::lock_guard lk(s.mu);
      st.keys += s.map.size();
      st.evicted += s.evicted;
    }
    return st;
  }

  // Snapshot: "SPDD1\n", then the log's end offsets as text lines "topic p0 p1 ...", a blank
  // line, then binary entries (u64 hi, u64 lo, i64 expiry), then a CRC32C of the whole.
  //
  // The replay on start must cover every key that is durable in the log but not in the
  // snapshot. Keys committed before the scan below are in it; a key still in flight during the
  // scan may already be durable and be committed later, so the replay must start at or before
  // its record: each checkpoint bumps the generation and then reads the end offsets, and a key
  // claimed in generation g was claimed after checkpoint g-1 read its offsets, so its record
  // lies after those. The snapshot records the offsets of generation (oldest in-flight g) - 1,
  // or this checkpoint's own when nothing was in flight.
  Status checkpoint(Log& log) override {
    if (opts_.dir.empty()) return Status::Ok();
    const uint64_t gen = generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
    offsets_by_gen_.emplace_back(gen, end_offsets(log));
    while (offsets_by_gen_.size() > kKeptGenerations) offsets_by_gen_.pop_front();
    std::string entries;
    uint64_t oldest_in_flight = UINT64_MAX;
    int64_t now = system_clock()->now_ms();
    for (const Shard& s : shards_) {
      std::lock_guard lk(s.mu);
      s.map.for_each([&](const DedupKey& k, int64_t exp) {
        if (in_flight(exp)) {
          oldest_in_flight = std::min(oldest_in_flight, generation_of(exp));
          return;
        }
        if (exp <= now) return;
        char b[24];
        std::memcpy(b, &k.hi, 8);
        std::memcpy(b + 8, &k.lo, 8);
        std::memcpy(b + 16, &exp, 8);
        entries.append(b, 24);
      });
    }
    // Offsets to replay from; none known (older than what is kept): the whole log.
    static const std::map<std::string, std::vector<int64_t>> kFromStart;
    const std::map<std::string, std::vector<int64_t>>* from = &offsets_by_gen_.back().second;
    if (oldest_in_flight != UINT64_MAX) {
      from = &kFromStart;
      for (const auto& [g, offsets] : offsets_by_gen_) {
        // Generation 0's offsets were read at open, before any claim.
        if (g + 1 == oldest_in_flight || (g == 0 && oldest_in_flight == 0)) from = &offsets;
      }
    }
    std::string out = "SPDD1\n";
    for (const auto& [topic, offsets] : *from) {
      out += topic;
      for (int64_t o : offsets) out += " " + std::to_string(o);
      out += "\n";
    }
    out += "\n";
    out += entries;
    uint32_t crc = crc32c::value(out.data(), out.size());
    out.append(reinterpret_cast<const char*>(&crc), 4);
    SPATE_RETURN_IF_ERROR(default_fs()->create_dirs(opts_.dir));
    return default_fs()->write_file_atomic(path_join(opts_.dir, "dedup.snapshot"), out);
  }

  Status load(Log& log) {
    std::map<std::string, std::vector<int64_t>> from;
    if (!opts_.dir.empty()) {
      auto data = default_fs()->read_file(path_join(opts_.dir, "dedup.snapshot"));
      if (data.ok() && data->size() >= 10) {
        const std::string& d = *data;
        uint32_t crc;
        std::memcpy(&crc, d.data() + d.size() - 4, 4);
        if (crc32c::value(d.data(), d.size() - 4) == crc && d.compare(0, 6, "SPDD1\n") == 0) {
          size_t pos = 6;
          while (pos < d.size()) {
            size_t nl = d.find('\n', pos);
            if (nl == std::string::npos) break;
            std::string line = d.substr(pos, nl - pos);
            pos = nl + 1;
            if (line.empty()) break;
            std::istringstream in(line);
            std::string topic;
            in >> topic;
            int64_t o;
            while (in >> o) from[topic].push_back(o);
          }
          int64_t now = system_clock()->now_ms();
          for (; pos + 24 <= d.size() - 4; pos += 24) {
            DedupKey k;
            int64_t exp;
            std::memcpy(&k.hi, d.data() + pos, 8);
            std::memcpy(&k.lo, d.data() + pos + 8, 8);
            std::memcpy(&exp, d.data() + pos + 16, 8);
            if (exp > now) insert(k, exp, now);
          }
        }
        // A corrupt snapshot is ignored: the replay below then covers the whole log.
      }
    }
    // Keys claimed from now on have their records after the current end: generation 0's offsets.
    offsets_by_gen_.clear();
    offsets_by_gen_.emplace_back(0, end_offsets(log));
    // Replay: every stored event since the snapshot carries its key in `spate.dedup`.
    int64_t now = system_clock()->now_ms();
    return for_each_record_since(log, from, [&](const FetchResult& fr, const RecordView& r) {
      for (const RecordHeader& h : fr.headers_of(r)) {
        DedupKey k;
        if (h.key == "spate.dedup" && DedupKey::from_hex(h.value, &k)) {
          if (r.timestamp_ms + opts_.ttl_ms > now || r.timestamp_ms <= 0) {
            insert(k, std::max(now, r.timestamp_ms) + opts_.ttl_ms, now);
          }
        }
      }
    });
  }

 private:
  struct Shard {
    mutable std::mutex mu;
    KeyTable map;  // key -> expiry ms (or in flight)
    std::deque<std::pair<int64_t, DedupKey>> order;      // committed keys by expiry
    uint64_t evicted = 0;
  };

  static size_t shard_index(const DedupKey& k) { return k.hi % kShards; }
  Shard& shard(const DedupKey& k) { return shards_[shard_index(k)]; }

  // Run f(shard, i) for every key, shard by shard under one lock each, keys of a shard in their
  // order, prefetching the table slots of the keys a few steps ahead: the lookups of a batch
  // then overlap their cache misses instead of paying them one after another.
  template <typename F>
  void for_each_by_shard(const DedupKey* keys, size_t n, F&& f) {
    constexpr size_t kAhead = 8;
    thread_local std::vector<uint32_t> order;
    thread_local std::array<uint32_t, kShards + 1> start;
    start.fill(0);
    for (size_t i = 0; i < n; ++i) ++start[shard_index(keys[i]) + 1];
    for (size_t sh = 0; sh < kShards; ++sh) start[sh + 1] += start[sh];
    order.resize(n);
    std::array<uint32_t, kShards> fill{};
    for (size_t i = 0; i < n; ++i) {
      const size_t sh = shard_index(keys[i]);
      order[start[sh] + fill[sh]++] = static_cast<uint32_t>(i);
    }
    for (size_t sh = 0; sh < kShards; ++sh) {
      if (start[sh] == start[sh + 1]) continue;
      Shard& s = shards_[sh];
      std::lock_guard lk(s.mu);
      for (uint32_t j = start[sh]; j < start[sh + 1]; ++j) {
        if (j + kAhead < start[sh + 1]) s.map.prefetch(normalized(keys[order[j + kAhead]]));
        f(s, order[j]);
      }
    }
  }

  void insert(const DedupKey& key, int64_t expiry, int64_t now) {
    Shard& s = shard(key);
    std::lock_guard lk(s.mu);
    insert_locked(s, key, expiry, now);
  }

  void insert_locked(Shard& s, const DedupKey& key, int64_t expiry, int64_t now) {
    const DedupKey k = normalized(key);
    bool inserted = false;
    *s.map.find_or_insert(k, expiry, &inserted) = expiry;
    s.order.emplace_back(expiry, k);
    const size_t cap = std::max<size_t>(1, opts_.max_keys / kShards);
    while (!s.order.empty() && (s.order.front().first <= now || s.map.size() > cap)) {
      auto [exp, key] = s.order.front();
      s.order.pop_front();
      const int64_t* v = s.map.find(key);
      // Only erase if this queue entry is the key's current expiry (it may have been renewed).
      if (v != nullptr && *v == exp) {
        if (exp > now) ++s.evicted;
        s.map.erase(key);
      }
    }
  }

  static constexpr size_t kKeptGenerations = 64;

  EmbeddedDedupOptions opts_;
  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> generation_{0};
  // End offsets read by each recent checkpoint (checkpoint() is called by one thread at a time).
  std::deque<std::pair<uint64_t, std::map<std::string, std::vector<int64_t>>>> offsets_by_gen_;
};

}  // namespace

Result<std::unique_ptr<DedupStore>> open_embedded_dedup(const EmbeddedDedupOptions& opts, Log& log) {
  auto store = std::make_unique<EmbeddedDedup>(opts);
  SPATE_RETURN_IF_ERROR(store->load(log));
  return std::unique_ptr<DedupStore>(std::move(store));
}

}  // namespace spate::ingest
