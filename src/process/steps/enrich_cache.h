// LookupCache: the enrich step's bounded cache of looked-up values (one per step instance, so
// one per worker thread).
//
// Contract:
//  - LRU, at most max_entries entries (0: nothing is cached); inserting into a full cache
//    evicts the least recently used entry. get() of an entry marks it used.
//  - A found value (JSON text) expires ttl_ms after it was put, a miss (nullopt) after
//    negative_ttl_ms (0: misses are not cached). An expired entry is a miss and is removed.
//  - Time comes from the injected Clock (steady_ns), so tests can move it.
//  - Not thread-safe (one thread uses a cache); the counters are atomics that any thread may
//    read (status_json).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/clock.h"

namespace spate::process {

class LookupCache {
 public:
  struct Config {
    size_t max_entries = 100'000;
    int64_t ttl_ms = 60'000;
    int64_t negative_ttl_ms = 10'000;
  };
  enum class Probe : uint8_t { kMiss, kHit, kNegativeHit };
  struct Counters {
    std::atomic<uint64_t> hits{0}, negative_hits{0}, misses{0}, evictions{0}, expirations{0};
    std::atomic<uint64_t> entries{0};
  };

  LookupCache(Config c, const Clock* clock) : cfg_(c), clock_(clock) {}

  /// kHit: *value = the cached JSON text; kNegativeHit: a cached miss; kMiss: look it up.
  Probe get(const std::string& key, std::string* value) {
    auto it = index_.find(key);
    if (it == index_.end()) {
      counters_.misses.fetch_add(1, std::memory_order_relaxed);
      return Probe::kMiss;
    }
    Entry& e = *it->second;
    if (now_ms() >= e.expires_ms) {
      lru_.erase(it->second);
      index_.erase(it);
      counters_.expirations.fetch_add(1, std::memory_order_relaxed);
      counters_.misses.fetch_add(1, std::memory_order_relaxed);
      counters_.entries.store(index_.size(), std::memory_order_relaxed);
      return Probe::kMiss;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    if (!e.value) {
      counters_.negative_hits.fetch_add(1, std::memory_order_relaxed);
      return Probe::kNegativeHit;
    }
    counters_.hits.fetch_add(1, std::memory_order_relaxed);
    *value = *e.value;
    return Probe::kHit;
  }

  /// Cache `value` (nullopt: not found) for `key`. Returns how many entries were evicted.
  size_t put(const std::string& key, std::optional<std::string> value) {
    const int64_t ttl = value ? cfg_.ttl_ms : cfg_.negative_ttl_ms;
    if (cfg_.max_entries == 0 || ttl <= 0) return 0;
    const int64_t expires = now_ms() + ttl;
    if (auto it = index_.find(key); it != index_.end()) {
      it->second->value = std::move(value);
      it->second->expires_ms = expires;
      lru_.splice(lru_.begin(), lru_, it->second);
      return 0;
    }
    size_t evicted = 0;
    while (index_.size() >= cfg_.max_entries) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
      ++evicted;
    }
    lru_.push_front(Entry{key, std::move(value), expires});
    index_.emplace(key, lru_.begin());
    counters_.evictions.fetch_add(evicted, std::memory_order_relaxed);
    counters_.entries.store(index_.size(), std::memory_order_relaxed);
    return evicted;
  }

  size_t size() const { return index_.size(); }
  const Counters& counters() const { return counters_; }

 private:
  struct Entry {
    std::string key;
    std::optional<std::string> value;
    int64_t expires_ms;
  };
  int64_t now_ms() const { return clock_->steady_ns() / 1'000'000; }

  Config cfg_;
  const Clock* clock_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  Counters counters_;
};

}  // namespace spate::process
