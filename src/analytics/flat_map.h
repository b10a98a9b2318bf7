// FlatMap: an ordered map kept as a sorted vector of (key, value) pairs, for the analytics
// engine's per-key window state (a handful of panes per key, almost always appended at the end
// or found at the back). Contiguous storage: one allocation per key instead of one tree node
// per pane, and no pointer chasing on the per-event path. Internal to src/analytics.
//
// Contract: the std::map subset the engine uses (begin/end/size/empty, find, lower_bound,
// try_emplace, operator[], emplace, erase of one element), with the same ordering; iterators
// and references are invalidated by any insertion or erasure (unlike std::map).
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

namespace spate::analytics {

template <typename K, typename V>
class FlatMap {
 public:
  using value_type = std::pair<K, V>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  iterator begin() { return v_.begin(); }
  iterator end() { return v_.end(); }
  const_iterator begin() const { return v_.begin(); }
  const_iterator end() const { return v_.end(); }
  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }
  void clear() { v_.clear(); }
  void reserve(size_t n) { v_.reserve(n); }

  /// The first element whose key is not less than k.
  iterator lower_bound(const K& k) {
    // The common cases first: k at or past the back.
    if (v_.empty() || v_.back().first < k) return v_.end();
    if (v_.back().first == k) return v_.end() - 1;
    return std::lower_bound(v_.begin(), v_.end(), k,
                            [](const value_type& e, const K& x) { return e.first < x; });
  }
  const_iterator lower_bound(const K& k) const {
    return const_cast<FlatMap*>(this)->lower_bound(k);
  }
  iterator find(const K& k) {
    auto it = lower_bound(k);
    return it != v_.end() && it->first == k ? it : v_.end();
  }
  const_iterator find(const K& k) const { return const_cast<FlatMap*>(this)->find(k); }

  /// Inserts (k, V(args...)) unless k is present; the element and whether it was inserted.
  template <typename... Args>
  std::pair<iterator, bool> try_emplace(const K& k, Args&&... args) {
    auto it = lower_bound(k);
    if (it != v_.end() && it->first == k) return {it, false};
    it = v_.emplace(it, std::piecewise_construct, std::forward_as_tuple(k),
                    std::forward_as_tuple(std::forward<Args>(args)...));
    return {it, true};
  }
  std::pair<iterator, bool> emplace(const K& k, V v) { return try_emplace(k, std::move(v)); }
  V& operator[](const K& k) { return try_emplace(k).first->second; }

  /// Erases one element; the iterator after it.
  iterator erase(iterator it) { return v_.erase(it); }

 private:
  std::vector<value_type> v_;
};

}  // namespace spate::analytics
