// Window assigners on event time (milliseconds): which window(s) and panes an event belongs to,
// and which windows close when the watermark moves.
//
// Time semantics (shared with watermark.h): a window is the half-open interval [start, end).
// The watermark W asserts that no more events with event_time < W are expected, so a window is
// complete — its result may be emitted — once W >= end, and it is closed — its state is dropped,
// and later events for it go to the late-data output — once W >= end + allowed_lateness
// (close_time()). Events arriving between the two update the window and re-emit it.
//
// - SlidingWindows(size, slide, offset): windows [offset + k·slide, offset + k·slide + size).
//   Tumbling is slide == size. State is kept per pane, pane = gcd(size, slide): every window is
//   the union of size/pane consecutive panes, so a window's aggregate is the merge of its panes
//   and sliding never recomputes from raw events; each event updates exactly one pane. A pane
//   can be freed when the last window containing it closes (last_window_of_pane()).
//   slide > size (gapped hopping) is allowed: events in the gaps belong to no window.
// - SessionSet<State>: per key, sessions [first event, last event + gap); an event within `gap`
//   of a session joins it, and an event bridging two sessions merges them (their states merge).
//   With max_length, a join that would make a session longer than max_length seals the
//   session(s) it touches instead and the event starts a new one (for out-of-order input the
//   split then depends on arrival order; without max_length the result is order-independent).
// - CountWindows(n, slide): per key, by arrival: window j holds the key's events number
//   [j·slide, j·slide + n) (0-based), panes of gcd(n, slide) events; no lateness.
// - kGlobalWindow: one window for everything, closed only by an explicit trigger.
//
// Contract: assigners are immutable values (thread-safe to share); SessionSet is a plain
// per-key value, not synchronized. Nothing here allocates per event except SessionSet when a
// new session opens (a vector slot). Event times are expected within ±2^62 ms; window bounds
// and close times saturate at the int64 range instead of overflowing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "spate/status.h"

namespace spate::analytics {

struct TimeWindow {
  int64_t start = 0;
  int64_t end = 0;  // exclusive
  friend bool operator==(const TimeWindow&, const TimeWindow&) = default;
  friend auto operator<=>(const TimeWindow&, const TimeWindow&) = default;
};

inline constexpr TimeWindow kGlobalWindow{std::numeric_limits<int64_t>::min(),
                                          std::numeric_limits<int64_t>::max()};

/// a + b and a − b clamped to the int64 range.
inline int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) {
    return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return r;
}
inline int64_t sat_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) {
    return b < 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return r;
}
/// ⌊a / b⌋ for b > 0 (rounds towards −∞, unlike '/').
inline int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/// When a window's state is dropped: the watermark reaching end + allowed_lateness.
inline int64_t close_time(const TimeWindow& w, int64_t allowed_lateness) {
  return sat_add(w.end, allowed_lateness);
}
/// The window's result can be emitted (no on-time event can still arrive).
inline bool is_complete(const TimeWindow& w, int64_t watermark) {
  return watermark >= w.end;
}
/// The window is closed: state dropped, later events are late data.
inline bool is_closed(const TimeWindow& w, int64_t watermark, int64_t allowed_lateness) {
  return watermark >= close_time(w, allowed_lateness);
}

class SlidingWindows {
 public:
  /// size > 0, slide > 0; kInvalidArgument otherwise.
  static Result<SlidingWindows> make(int64_t size, int64_t slide, int64_t offset = 0);
  static Result<SlidingWindows> tumbling(int64_t size, int64_t offset = 0) {
    return make(size, size, offset);
  }

  int64_t size() const { return size_; }
  int64_t slide() const { return slide_; }
  int64_t pane() const { return pane_; }
  int64_t panes_per_window() const { return size_ / pane_; }

  /// Start of the pane holding t (panes are [offset + k·pane, offset + (k+1)·pane)).
  int64_t pane_start(int64_t t) const { return offset_ + floor_div(t - offset_, pane_) * pane_; }

  /// Calls f(TimeWindow) for every window containing t, by ascending start. At most
  /// ⌈size/slide⌉ windows; none for t in a gap when slide > size.
  template <typename F>
  void for_each_window(int64_t t, F&& f) const {
    const int64_t last = offset_ + floor_div(t - offset_, slide_) * slide_;  // latest start <= t
    // Earliest start s with s + size > t, i.e. s > t - size.
    int64_t first = last;
    while (first - slide_ > t - size_) first -= slide_;
    for (int64_t s = first; s <= last; s += slide_) {
      if (s + size_ > t) f(TimeWindow{s, s + size_});
    }
  }

  /// The window with the latest start that contains the pane starting at pane_start (the
  /// pane's state is needed until that window closes); nullopt for a pane in a gap.
  std::optional<TimeWindow> last_window_of_pane(int64_t pane_start) const {
    const int64_t s = offset_ + floor_div(pane_start - offset_, slide_) * slide_;
    if (s + size_ <= pane_start) return std::nullopt;
    return TimeWindow{s, s + size_};
  }

  /// Calls f(TimeWindow) for every window with end in (lo, hi], by ascending end. With
  /// lo = old watermark − lateness and hi = new watermark − lateness these are exactly the
  /// windows that close as the watermark moves from old to new. The caller bounds lo (e.g. by
  /// its oldest pane with state) and hi (by the last window of its newest pane): the call is
  /// O((hi − lo) / slide).
  template <typename F>
  void for_each_window_ending_in(int64_t lo, int64_t hi, F&& f) const {
    if (hi <= lo) return;
    // Ends are offset + size + k·slide; the first > lo.
    const int64_t base = offset_ + size_;
    int64_t e = base + (floor_div(lo - base, slide_) + 1) * slide_;
    for (; e <= hi; e = sat_add(e, slide_)) {
      f(TimeWindow{e - size_, e});
      if (e == std::numeric_limits<int64_t>::max()) break;
    }
  }

 private:
  SlidingWindows(int64_t size, int64_t slide, int64_t offset, int64_t pane)
      : size_(size), slide_(slide), offset_(offset), pane_(pane) {}
  int64_t size_;
  int64_t slide_;
  int64_t offset_;
  int64_t pane_;
};

struct SessionConfig {
  int64_t gap_ms = 0;         // > 0
  int64_t max_length_ms = 0;  // 0: unbounded; else >= gap_ms
  Status validate() const;
};

/// The open sessions of one key, each with an aggregate State. State needs merge(const State&)
/// (its result, e.g. a Status, is ignored: states of one configuration always merge).
template <typename State>
class SessionSet {
 public:
  struct Session {
    TimeWindow window;
    bool sealed = false;  // reached max_length: never joined again
    State state;
  };

  /// config must be valid.
  explicit SessionSet(const SessionConfig& config, State prototype = State())
      : config_(config), prototype_(std::move(prototype)) {}

  /// Places an event at time t (merging sessions it bridges) and calls update(State&) on its
  /// session. Returns that session's window. Lateness is the caller's: see covers().
  template <typename F>
  TimeWindow add(int64_t t, F&& update) {
    const TimeWindow proto{t, sat_add(t, config_.gap_ms)};
    // Sessions are sorted by start; the unsealed ones are disjoint.
    size_t first = sessions_.size();
    size_t last = 0;
    TimeWindow merged = proto;
    for (size_t i = 0; i < sessions_.size(); ++i) {
      const Session& s = sessions_[i];
      if (s.sealed || !(s.window.start < proto.end && proto.start < s.window.end)) continue;
      first = std::min(first, i);
      last = i;
      merged.start = std::min(merged.start, s.window.start);
      merged.end = std::max(merged.end, s.window.end);
    }
    if (first != sessions_.size() && config_.max_length_ms > 0 &&
        // end >= start: the unsigned difference is exact (the signed one can overflow).
        static_cast<uint64_t>(merged.end) - static_cast<uint64_t>(merged.start) >
            static_cast<uint64_t>(config_.max_length_ms)) {
      for (size_t i = first; i <= last; ++i) {
        const Session& s = sessions_[i];
        if (s.window.start < proto.end && proto.start < s.window.end) sessions_[i].sealed = true;
      }
      first = sessions_.size();
      merged = proto;
    }
    size_t at;
    if (first == sessions_.size()) {
      // New session, inserted in start order.
      auto pos = std::upper_bound(sessions_.begin(), sessions_.end(), proto.start,
                                  [](int64_t v, const Session& s) { return v < s.window.start; });
      at = static_cast<size_t>(pos - sessions_.begin());
      sessions_.insert(pos, Session{proto, false, prototype_});
    } else {
      at = first;
      // Fold the other overlapping unsealed sessions (between first and last) into `first`.
      for (size_t i = last; i > first; --i) {
        Session& s = sessions_[i];
        if (s.sealed || !(s.window.start < merged.end && merged.start < s.window.end)) continue;
        (void)sessions_[first].state.merge(s.state);
        sessions_.erase(sessions_.begin() + static_cast<long>(i));
      }
      sessions_[first].window = merged;
      // The start may have moved before a sealed session's: restore start order.
      while (at > 0 && sessions_[at - 1].window.start > merged.start) {
        std::swap(sessions_[at - 1], sessions_[at]);
        --at;
      }
    }
    update(sessions_[at].state);
    return sessions_[at].window;
  }

  /// True if t falls inside an open session's window (then a late t still has a home).
  bool covers(int64_t t) const {
    for (const Session& s : sessions_) {
      if (s.window.start <= t && t < s.window.end) return true;
    }
    return false;
  }

  /// Removes the sessions closed at this watermark (close_time <= watermark) and calls
  /// f(const TimeWindow&, State&&) for each, by ascending start.
  template <typename F>
  void pop_closed(int64_t watermark, int64_t allowed_lateness, F&& f) {
    size_t kept = 0;
    for (size_t i = 0; i < sessions_.size(); ++i) {
      if (is_closed(sessions_[i].window, watermark, allowed_lateness)) {
        f(sessions_[i].window, std::move(sessions_[i].state));
      } else {
        if (kept != i) sessions_[kept] = std::move(sessions_[i]);
        ++kept;
      }
    }
    sessions_.erase(sessions_.begin() + static_cast<long>(kept), sessions_.end());
  }

  const std::vector<Session>& sessions() const { return sessions_; }
  /// The sessions with mutable states (for the caller's bookkeeping, e.g. "emitted"); windows
  /// must not be changed.
  std::vector<Session>& mutable_sessions() { return sessions_; }
  bool empty() const { return sessions_.empty(); }

 private:
  SessionConfig config_;
  State prototype_;
  std::vector<Session> sessions_;
};

class CountWindows {
 public:
  /// n > 0, slide in (0, n] (0 means n: tumbling); kInvalidArgument otherwise.
  static Result<CountWindows> make(uint64_t n, uint64_t slide = 0);

  uint64_t size() const { return n_; }
  uint64_t slide() const { return slide_; }
  uint64_t pane() const { return pane_; }
  /// Pane index of the key's k-th event (0-based): panes are k / pane.
  uint64_t pane_of(uint64_t k) const { return k / pane_; }
  /// Calls f(uint64_t j) for every window j containing event k, ascending.
  template <typename F>
  void for_each_window(uint64_t k, F&& f) const {
    const uint64_t last = k / slide_;
    const uint64_t first = k + 1 > n_ ? (k + 1 - n_ + slide_ - 1) / slide_ : 0;
    for (uint64_t j = first; j <= last; ++j) f(j);
  }
  /// The window that event k completes (its n-th event), if any.
  std::optional<uint64_t> completes(uint64_t k) const {
    if (k + 1 < n_ || (k + 1 - n_) % slide_ != 0) return std::nullopt;
    return (k + 1 - n_) / slide_;
  }
  /// Panes [first, last] that make up window j.
  std::pair<uint64_t, uint64_t> panes_of(uint64_t j) const {
    return {j * slide_ / pane_, (j * slide_ + n_) / pane_ - 1};
  }

 private:
  CountWindows(uint64_t n, uint64_t slide, uint64_t pane) : n_(n), slide_(slide), pane_(pane) {}
  uint64_t n_;
  uint64_t slide_;
  uint64_t pane_;
};

}  // namespace spate::analytics
