// KeyTable: the analytics engine's group-by keys -> KeyState. Internal to src/analytics.
//
// An open-addressing index (linear probing, power-of-two capacity, at most half full) of
// (hash, KeyState*) entries over KeyStates owned in a dense vector. A lookup touches one index
// entry (16 bytes, the index of 10,000 keys fits in L2) and then the KeyState it names, where a
// node-based map first walks a bucket list through other keys' nodes. Erasure shifts later
// entries back (no tombstones) and moves the last owned KeyState into the freed place.
//
// Contract: KeyState addresses are stable while the key is in the table (the engine's timers
// hold them); find/insert/erase are O(1) expected; all() lists the states in no particular
// order. Not thread-safe (the engine's worker thread owns it).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "analytics/engine_state.h"
#include "base/hash.h"

namespace spate::analytics {

class KeyTable {
 public:
  static uint64_t hash(std::string_view key) { return hash64(key); }

  size_t size() const { return owned_.size(); }
  bool empty() const { return owned_.empty(); }
  const std::vector<std::unique_ptr<KeyState>>& all() const { return owned_; }

  /// The state of `key` (whose hash(key) is h), or nullptr.
  KeyState* find(std::string_view key, uint64_t h) const {
    if (index_.empty()) return nullptr;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Entry& e = index_[i];
      if (e.ks == nullptr) return nullptr;
      if (e.hash == h && e.ks->key == key) return e.ks;
    }
  }
  KeyState* find(std::string_view key) const { return find(key, hash(key)); }

  /// Inserts ks under ks.key (which must not be present; h = hash(ks.key)); its stable address.
  KeyState* insert(KeyState&& ks, uint64_t h) {
    if ((owned_.size() + 1) * 2 > index_.size()) grow();
    auto p = std::make_unique<KeyState>(std::move(ks));
    KeyState* raw = p.get();
    raw->table_pos = owned_.size();
    owned_.push_back(std::move(p));
    place(Entry{h, raw});
    return raw;
  }

  /// Removes ks (a state of this table, inserted with hash h) and destroys it.
  void erase(KeyState* ks) { erase(ks, hash(ks->key)); }
  void erase(KeyState* ks, uint64_t h) {
    size_t i = h & mask_;
    while (index_[i].ks != ks) i = (i + 1) & mask_;
    // Backward-shift deletion: move later entries of the probe run into the hole.
    for (size_t j = (i + 1) & mask_; index_[j].ks != nullptr; j = (j + 1) & mask_) {
      const size_t home = index_[j].hash & mask_;
      // Entry j may move to i if i lies cyclically in [home, j).
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        index_[i] = index_[j];
        i = j;
      }
    }
    index_[i] = Entry{};
    const size_t pos = ks->table_pos;
    if (pos + 1 != owned_.size()) {
      owned_[pos] = std::move(owned_.back());
      owned_[pos]->table_pos = pos;
    }
    owned_.pop_back();
  }

  void clear() {
    owned_.clear();
    index_.clear();
    mask_ = 0;
  }

 private:
  struct Entry {
    uint64_t hash = 0;
    KeyState* ks = nullptr;
  };

  void place(Entry e) {
    size_t i = e.hash & mask_;
    while (index_[i].ks != nullptr) i = (i + 1) & mask_;
    index_[i] = e;
  }

  void grow() {
    const size_t cap = index_.empty() ? 64 : index_.size() * 2;
    std::vector<Entry> old = std::move(index_);
    index_.assign(cap, Entry{});
    mask_ = cap - 1;
    for (const Entry& e : old) {
      if (e.ks != nullptr) place(e);
    }
  }

  std::vector<Entry> index_;
  size_t mask_ = 0;
  std::vector<std::unique_ptr<KeyState>> owned_;
};

}  // namespace spate::analytics
