#include "analytics/patterns.h"

#include <algorithm>
#include <string>

#include "analytics/codec_internal.h"

namespace spate::analytics {

namespace {

constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();

int64_t sat_add(int64_t a, int64_t b) {  // b >= 0
  return a > kMaxI64 - b ? kMaxI64 : a + b;
}

// a − b in ms as a double, wrapping (not undefined) for differences beyond int64.
double diff_ms(int64_t a, int64_t b) {
  return static_cast<double>(
      static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ThresholdState

Status ThresholdConfig::validate() const {
  if (for_windows < 1) return InvalidArgument("threshold: for_windows must be >= 1");
  if (for_ms < 0) {
    return InvalidArgument("threshold: for_ms must be >= 0, got " + std::to_string(for_ms));
  }
  return Status::Ok();
}

ThresholdState::ThresholdState(const ThresholdConfig& config) : config_(config) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

ThresholdState::Transition ThresholdState::observe(int64_t t, bool breach,
                                                   std::optional<bool> resolved) {
  if (firing_) {
    if (breach && consecutive_ < std::numeric_limits<uint32_t>::max()) ++consecutive_;
    const bool resolve = resolved.has_value() ? *resolved : !breach;
    if (!resolve) return Transition::kNone;
    firing_ = false;
    consecutive_ = 0;
    return Transition::kResolve;
  }
  if (!breach) {
    consecutive_ = 0;
    return Transition::kNone;
  }
  if (consecutive_ == 0) run_start_ = t;
  if (consecutive_ < std::numeric_limits<uint32_t>::max()) ++consecutive_;
  if (consecutive_ < config_.for_windows) return Transition::kNone;
  // t - run_start_ without overflow: t >= run_start_ is required for a duration anyway.
  if (config_.for_ms > 0 &&
      (t < run_start_ || static_cast<uint64_t>(t) - static_cast<uint64_t>(run_start_) <
                             static_cast<uint64_t>(config_.for_ms))) {
    return Transition::kNone;
  }
  firing_ = true;
  fired_at_ = t;
  return Transition::kFire;
}

void ThresholdState::encode(std::string* out) const {
  codec::Writer w(out);
  w.header('H', 1);
  w.u8(firing_ ? 1 : 0);
  w.varint(consecutive_);
  w.svarint(run_start_);
  w.svarint(fired_at_);
}

Result<ThresholdState> ThresholdState::decode(std::string_view in, const ThresholdConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  if (!r.header('H', 1)) return Corruption("threshold: bad header");
  ThresholdState s(config);
  const uint8_t firing = r.u8();
  const uint64_t consecutive = r.varint();
  s.run_start_ = r.svarint();
  s.fired_at_ = r.svarint();
  if (!r.done()) return Corruption("threshold: truncated or trailing bytes");
  if (firing > 1 || consecutive > std::numeric_limits<uint32_t>::max()) {
    return Corruption("threshold: inconsistent values");
  }
  s.firing_ = firing == 1;
  s.consecutive_ = static_cast<uint32_t>(consecutive);
  return s;
}

// ---------------------------------------------------------------------------------------------
// TrendState

Status TrendConfig::validate() const {
  if (windows < 2 || windows > 65536) {
    return InvalidArgument("trend: windows must be in [2, 65536], got " + std::to_string(windows));
  }
  return Status::Ok();
}

TrendState::TrendState(const TrendConfig& config)
    : config_(config), t_(config.windows), y_(config.windows) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

std::optional<TrendFit> TrendState::observe(int64_t t, double y) {
  if (!std::isfinite(y)) {
    ++rejected_;
    return std::nullopt;
  }
  const uint32_t cap = config_.windows;
  if (size_ < cap) {
    const uint32_t i = (head_ + size_) % cap;
    t_[i] = t;
    y_[i] = y;
    ++size_;
  } else {
    t_[head_] = t;
    y_[head_] = y;
    head_ = (head_ + 1) % cap;
  }
  return fit();
}

std::optional<TrendFit> TrendState::fit() const {
  const uint32_t cap = config_.windows;
  if (size_ < cap) return std::nullopt;
  const int64_t ref = t_[(head_ + size_ - 1) % cap];  // the newest point
  // Offsets from the newest point, in ms (exact in int64, then small doubles).
  double mean_x = 0, mean_y = 0;
  for (uint32_t k = 0; k < size_; ++k) {
    const uint32_t i = (head_ + k) % cap;
    mean_x += diff_ms(t_[i], ref);
    mean_y += y_[i];
  }
  const double n = static_cast<double>(size_);
  mean_x /= n;
  mean_y /= n;
  double sxx = 0, sxy = 0, syy = 0;
  for (uint32_t k = 0; k < size_; ++k) {
    const uint32_t i = (head_ + k) % cap;
    const double dx = diff_ms(t_[i], ref) - mean_x;
    const double dy = y_[i] - mean_y;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (!(sxx > 0)) return std::nullopt;  // all times equal: no slope
  TrendFit f;
  const double slope_ms = sxy / sxx;
  f.slope_per_second = slope_ms * 1000.0;
  f.intercept = mean_y + slope_ms * (0.0 - mean_x);  // at offset 0 = the newest point
  if (syy > 0) {
    const double r2 = (sxy * sxy) / (sxx * syy);
    // NaN when the sums overflow (|y| near the double range): inf / inf.
    f.r2 = std::isnan(r2) ? 0.0 : std::clamp(r2, 0.0, 1.0);
  } else {
    f.r2 = 1.0;
  }
  f.n = size_;
  return f;
}

void TrendState::encode(std::string* out) const {
  codec::Writer w(out);
  w.header('R', 1);
  w.varint(config_.windows);
  w.varint(rejected_);
  w.varint(size_);
  for (uint32_t k = 0; k < size_; ++k) {
    const uint32_t i = (head_ + k) % config_.windows;
    w.svarint(t_[i]);
    w.f64(y_[i]);
  }
}

Result<TrendState> TrendState::decode(std::string_view in, const TrendConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  if (!r.header('R', 1)) return Corruption("trend: bad header");
  const uint64_t windows = r.varint();
  if (!r.ok()) return Corruption("trend: truncated");
  if (windows != config.windows) return InvalidArgument("trend: encoded with another window count");
  TrendState s(config);
  s.rejected_ = r.varint();
  const uint64_t size = r.varint();
  if (!r.ok() || size > windows) return Corruption("trend: bad size");
  for (uint64_t k = 0; k < size; ++k) {
    s.t_[k] = r.svarint();
    s.y_[k] = r.f64();
    if (!std::isfinite(s.y_[k])) return Corruption("trend: non-finite value");
  }
  if (!r.done()) return Corruption("trend: truncated or trailing bytes");
  s.size_ = static_cast<uint32_t>(size);
  return s;
}

// ---------------------------------------------------------------------------------------------
// CoMoments

void CoMoments::merge(const CoMoments& o) {
  rejected += o.rejected;
  if (o.n == 0) return;
  if (n == 0) {
    const uint64_t rej = rejected;
    *this = o;
    rejected = rej;
    return;
  }
  const double na = static_cast<double>(n);
  const double nb = static_cast<double>(o.n);
  const double nt = na + nb;
  const double dx = o.mean_x - mean_x;
  const double dy = o.mean_y - mean_y;
  const double f = na * nb / nt;
  m2x += o.m2x + dx * dx * f;
  m2y += o.m2y + dy * dy * f;
  cxy += o.cxy + dx * dy * f;
  mean_x += dx * (nb / nt);
  mean_y += dy * (nb / nt);
  n += o.n;
}

double CoMoments::pearson() const {
  if (n < 2 || !(m2x > 0) || !(m2y > 0)) return std::numeric_limits<double>::quiet_NaN();
  return std::clamp(cxy / std::sqrt(m2x * m2y), -1.0, 1.0);
}

double CoMoments::covariance() const {
  return n > 1 ? cxy / static_cast<double>(n - 1) : std::numeric_limits<double>::quiet_NaN();
}

double CoMoments::covariance_population() const {
  return n > 0 ? cxy / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

void CoMoments::encode(std::string* out) const {
  codec::Writer w(out);
  w.header('C', 1);
  w.varint(n);
  w.varint(rejected);
  for (double v : {mean_x, mean_y, m2x, m2y, cxy}) w.f64(v);
}

Result<CoMoments> CoMoments::decode(std::string_view in) {
  codec::Reader r(in);
  if (!r.header('C', 1)) return Corruption("comoments: bad header");
  CoMoments c;
  c.n = r.varint();
  c.rejected = r.varint();
  for (double* v : {&c.mean_x, &c.mean_y, &c.m2x, &c.m2y, &c.cxy}) *v = r.f64();
  if (!r.done()) return Corruption("comoments: truncated or trailing bytes");
  const bool finite = std::isfinite(c.mean_x) && std::isfinite(c.mean_y) && std::isfinite(c.m2x) &&
                      std::isfinite(c.m2y) && std::isfinite(c.cxy);
  if (!finite || c.m2x < 0 || c.m2y < 0 ||
      (c.n == 0 && (c.mean_x != 0 || c.mean_y != 0 || c.m2x != 0 || c.m2y != 0 || c.cxy != 0))) {
    return Corruption("comoments: inconsistent values");
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// PairHistory

PairHistory::PairHistory(const TrendConfig& config)
    : config_(config), x_(config.windows), y_(config.windows) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

CoMoments PairHistory::observe(double x, double y) {
  if (!std::isfinite(x) || !std::isfinite(y)) {
    ++rejected_;
    return moments();
  }
  const uint32_t cap = config_.windows;
  if (size_ < cap) {
    const uint32_t i = (head_ + size_) % cap;
    x_[i] = x;
    y_[i] = y;
    ++size_;
  } else {
    x_[head_] = x;
    y_[head_] = y;
    head_ = (head_ + 1) % cap;
  }
  return moments();
}

CoMoments PairHistory::moments() const {
  CoMoments c;
  for (uint32_t k = 0; k < size_; ++k) {
    const uint32_t i = (head_ + k) % config_.windows;
    c.add(x_[i], y_[i]);
  }
  return c;
}

void PairHistory::encode(std::string* out) const {
  codec::Writer w(out);
  w.header('P', 1);
  w.varint(config_.windows);
  w.varint(rejected_);
  w.varint(size_);
  for (uint32_t k = 0; k < size_; ++k) {
    const uint32_t i = (head_ + k) % config_.windows;
    w.f64(x_[i]);
    w.f64(y_[i]);
  }
}

Result<PairHistory> PairHistory::decode(std::string_view in, const TrendConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  if (!r.header('P', 1)) return Corruption("pairs: bad header");
  const uint64_t windows = r.varint();
  if (!r.ok()) return Corruption("pairs: truncated");
  if (windows != config.windows) return InvalidArgument("pairs: encoded with another window count");
  PairHistory s(config);
  s.rejected_ = r.varint();
  const uint64_t size = r.varint();
  if (!r.ok() || size > windows) return Corruption("pairs: bad size");
  for (uint64_t k = 0; k < size; ++k) {
    s.x_[k] = r.f64();
    s.y_[k] = r.f64();
    if (!std::isfinite(s.x_[k]) || !std::isfinite(s.y_[k])) {
      return Corruption("pairs: non-finite value");
    }
  }
  if (!r.done()) return Corruption("pairs: truncated or trailing bytes");
  s.size_ = static_cast<uint32_t>(size);
  return s;
}

// ---------------------------------------------------------------------------------------------
// SequenceState

Status SequenceConfig::validate() const {
  if (steps > 32)
    return InvalidArgument("sequence: at most 32 steps, got " + std::to_string(steps));
  if (steps < (not_followed_by ? 3u : 2u)) {
    return InvalidArgument(
        "sequence: needs at least 2 positive steps (plus the absent step "
        "with not_followed_by), got steps=" +
        std::to_string(steps));
  }
  if (within_ms <= 0) {
    return InvalidArgument("sequence: within_ms must be > 0, got " + std::to_string(within_ms));
  }
  if (max_partial_matches < 1) return InvalidArgument("sequence: max_partial_matches must be >= 1");
  if (max_buffered_events < 1) return InvalidArgument("sequence: max_buffered_events must be >= 1");
  return Status::Ok();
}

size_t SequenceState::Runs::push(uint64_t tag) {
  tag_.push_back(tag);
  t_.resize(t_.size() + stride_, 0);
  ref_.resize(ref_.size() + stride_, 0);
  return tag_.size() - 1;
}

void SequenceState::Runs::erase_front() {
  tag_.erase(tag_.begin());
  t_.erase(t_.begin(), t_.begin() + stride_);
  ref_.erase(ref_.begin(), ref_.begin() + stride_);
}

template <typename Keep>
void SequenceState::Runs::retain(Keep keep) {
  size_t out = 0;
  const size_t n = size();
  for (size_t i = 0; i < n; ++i) {
    if (!keep(i)) continue;
    if (out != i) {
      tag_[out] = tag_[i];
      std::copy_n(&t_[i * stride_], stride_, &t_[out * stride_]);
      std::copy_n(&ref_[i * stride_], stride_, &ref_[out * stride_]);
    }
    ++out;
  }
  tag_.resize(out);
  t_.resize(out * stride_);
  ref_.resize(out * stride_);
}

SequenceState::SequenceState(const SequenceConfig& config)
    : config_(config),
      positive_(config.positive_steps()),
      partial_(config.positive_steps()),
      held_(config.positive_steps()) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

int64_t SequenceState::deadline(int64_t start) const {
  return sat_add(start, config_.within_ms);
}

bool SequenceState::add(int64_t t, uint32_t step_mask, uint64_t event_ref) {
  const uint32_t all = config_.steps == 32 ? ~0u : (1u << config_.steps) - 1;
  step_mask &= all;
  if (step_mask == 0) return true;  // relevant to no step
  if (t < watermark_) {
    ++late_;
    return false;
  }
  if (events_.size() >= config_.max_buffered_events) {
    ++overflowed_;
    return false;
  }
  events_.push_back(Event{t, next_seq_++, step_mask, event_ref});
  return true;
}

void SequenceState::emit(const int64_t* times, const uint64_t* refs, const Callback& on_match) {
  SequenceMatch m;
  m.start_t = times[0];
  m.end_t = times[positive_ - 1];
  m.step_times = std::span<const int64_t>(times, positive_);
  m.step_refs = std::span<const uint64_t>(refs, positive_);
  on_match(m);
}

void SequenceState::process(const Event& e, const Callback& on_match, size_t* emitted) {
  // 1. Expire partial matches this event is too late for (they are in start order).
  while (partial_.size() > 0 && e.t >= deadline(partial_.start(0))) {
    partial_.erase_front();
    ++expired_;
  }
  // 2. An absent-step event suppresses the matches held for their deadline.
  if (config_.not_followed_by && (e.mask >> (config_.steps - 1)) & 1u) {
    held_.retain([&](size_t i) {
      if (e.t < deadline(held_.start(i))) {
        ++suppressed_;
        return false;
      }
      return true;
    });
  }
  // 3. Advance every partial match whose next step this event satisfies.
  partial_.retain([&](size_t i) {
    const uint64_t next = partial_.tag(i);
    if (!((e.mask >> next) & 1u)) return true;
    partial_.times(i)[next] = e.t;
    partial_.refs(i)[next] = e.ref;
    if (next + 1 < positive_) {
      partial_.set_tag(i, next + 1);
      return true;
    }
    if (config_.not_followed_by) {
      if (held_.size() >= config_.max_partial_matches) {
        held_.erase_front();
        ++dropped_;
      }
      const size_t h = held_.push(next_completion_++);
      std::copy_n(partial_.times(i), positive_, held_.times(h));
      std::copy_n(partial_.refs(i), positive_, held_.refs(h));
    } else {
      emit(partial_.times(i), partial_.refs(i), on_match);
      ++*emitted;
    }
    return false;
  });
  // 4. A step-0 event starts a partial match.
  if (e.mask & 1u) {
    if (partial_.size() >= config_.max_partial_matches) {
      partial_.erase_front();
      ++dropped_;
    }
    const size_t p = partial_.push(1);
    partial_.times(p)[0] = e.t;
    partial_.refs(p)[0] = e.ref;
  }
}

size_t SequenceState::advance(int64_t watermark, const Callback& on_match) {
  if (watermark <= watermark_) return 0;
  watermark_ = watermark;
  size_t emitted = 0;
  // Events below the watermark, in (t, arrival) order. The rest stay buffered.
  auto final_end = std::partition(events_.begin(), events_.end(),
                                  [&](const Event& e) { return e.t < watermark; });
  std::sort(events_.begin(), final_end,
            [](const Event& a, const Event& b) { return a.t != b.t ? a.t < b.t : a.seq < b.seq; });
  for (auto it = events_.begin(); it != final_end; ++it) process(*it, on_match, &emitted);
  events_.erase(events_.begin(), final_end);
  // Partial matches that no event at t >= watermark can complete.
  while (partial_.size() > 0 && deadline(partial_.start(0)) <= watermark) {
    partial_.erase_front();
    ++expired_;
  }
  // Held matches whose deadline passed, in (deadline, completion) order.
  if (held_.size() > 0) {
    std::vector<size_t>& due = due_;
    due.clear();
    for (size_t i = 0; i < held_.size(); ++i) {
      if (deadline(held_.start(i)) <= watermark) due.push_back(i);
    }
    std::sort(due.begin(), due.end(), [&](size_t a, size_t b) {
      const int64_t da = deadline(held_.start(a)), db = deadline(held_.start(b));
      return da != db ? da < db : held_.tag(a) < held_.tag(b);
    });
    for (size_t i : due) emit(held_.times(i), held_.refs(i), on_match);
    emitted += due.size();
    held_.retain([&](size_t i) { return deadline(held_.start(i)) > watermark; });
  }
  return emitted;
}

std::optional<int64_t> SequenceState::next_deadline() const {
  std::optional<int64_t> d;
  auto consider = [&](int64_t v) {
    if (!d || v < *d) d = v;
  };
  // advance(W) processes events with t < W: the first W that does is t + 1.
  for (const Event& e : events_) consider(sat_add(e.t, 1));
  if (partial_.size() > 0) consider(deadline(partial_.start(0)));
  for (size_t i = 0; i < held_.size(); ++i) consider(deadline(held_.start(i)));
  return d;
}

void SequenceState::encode(std::string* out) const {
  codec::Writer w(out);
  w.header('Q', 1);
  w.varint(config_.steps);
  w.u8(config_.not_followed_by ? 1 : 0);
  w.svarint(config_.within_ms);
  w.svarint(watermark_);
  w.varint(next_seq_);
  w.varint(next_completion_);
  for (uint64_t c : {dropped_, expired_, suppressed_, late_, overflowed_}) w.varint(c);
  w.varint(events_.size());
  for (const Event& e : events_) {
    w.svarint(e.t);
    w.varint(e.seq);
    w.varint(e.mask);
    w.varint(e.ref);
  }
  for (const Runs* runs : {&partial_, &held_}) {
    w.varint(runs->size());
    for (size_t i = 0; i < runs->size(); ++i) {
      w.varint(runs->tag(i));
      // A partial match has `tag` steps filled; a held match all of them.
      const uint64_t filled = runs == &partial_ ? runs->tag(i) : positive_;
      for (uint64_t k = 0; k < filled; ++k) {
        w.svarint(runs->times(i)[k]);
        w.varint(runs->refs(i)[k]);
      }
    }
  }
}

Result<SequenceState> SequenceState::decode(std::string_view in, const SequenceConfig& config) {
  SPATE_RETURN_IF_ERROR(config.validate());
  codec::Reader r(in);
  if (!r.header('Q', 1)) return Corruption("sequence: bad header");
  const uint64_t steps = r.varint();
  const uint8_t nfb = r.u8();
  const int64_t within = r.svarint();
  if (!r.ok()) return Corruption("sequence: truncated");
  if (steps != config.steps || nfb != (config.not_followed_by ? 1 : 0) ||
      within != config.within_ms) {
    return InvalidArgument("sequence: encoded with another steps/within/not_followed_by");
  }
  SequenceState s(config);
  s.watermark_ = r.svarint();
  s.next_seq_ = r.varint();
  s.next_completion_ = r.varint();
  for (uint64_t* c : {&s.dropped_, &s.expired_, &s.suppressed_, &s.late_, &s.overflowed_}) {
    *c = r.varint();
  }
  const uint32_t all = config.steps == 32 ? ~0u : (1u << config.steps) - 1;
  const uint64_t n_events = r.varint();
  // Each event takes at least 4 bytes: a count beyond the input is corrupt (bounds the resize).
  if (!r.ok() || n_events > config.max_buffered_events || n_events > r.remaining() / 4) {
    return Corruption("sequence: bad event count");
  }
  s.events_.reserve(n_events);
  for (uint64_t i = 0; i < n_events; ++i) {
    Event e;
    e.t = r.svarint();
    e.seq = r.varint();
    const uint64_t mask = r.varint();
    e.ref = r.varint();
    if (!r.ok() || mask == 0 || mask > all || e.t < s.watermark_ || e.seq >= s.next_seq_) {
      return Corruption("sequence: bad buffered event");
    }
    e.mask = static_cast<uint32_t>(mask);
    s.events_.push_back(e);
  }
  for (Runs* runs : {&s.partial_, &s.held_}) {
    const bool partial = runs == &s.partial_;
    const uint64_t n = r.varint();
    if (!r.ok() || n > config.max_partial_matches || n > r.remaining() / 3) {
      return Corruption("sequence: bad match count");
    }
    int64_t prev_start = std::numeric_limits<int64_t>::min();
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t tag = r.varint();
      if (!r.ok() || (partial && (tag < 1 || tag >= s.positive_)) ||
          (!partial && tag >= s.next_completion_)) {
        return Corruption("sequence: bad match");
      }
      const size_t idx = runs->push(tag);
      const uint64_t filled = partial ? tag : s.positive_;
      for (uint64_t k = 0; k < filled; ++k) {
        runs->times(idx)[k] = r.svarint();
        runs->refs(idx)[k] = r.varint();
      }
      const int64_t* ts = runs->times(idx);
      const int64_t start = ts[0];
      bool ordered = r.ok() && ts[filled - 1] < s.deadline(start) &&
                     s.deadline(start) > s.watermark_ && (!partial || start >= prev_start);
      for (uint64_t k = 1; ordered && k < filled; ++k) ordered = ts[k] >= ts[k - 1];
      if (!ordered) return Corruption("sequence: inconsistent match");
      prev_start = start;
    }
  }
  if (!r.done()) return Corruption("sequence: truncated or trailing bytes");
  return s;
}

}  // namespace spate::analytics
