#include "process/circuit_breaker.h"

#include <algorithm>

#include "base/clock.h"

namespace spate::process {

const char* breaker_state_name(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

CircuitBreaker::CircuitBreaker(BreakerConfig config, const Clock* clock, Listener listener)
    : cfg_(config),
      clock_(clock ? clock : system_clock()),
      listener_(std::move(listener)),
      window_(static_cast<size_t>(std::max(1, config.window)), 0) {}

int64_t CircuitBreaker::now_ms() const { return clock_->steady_ns() / 1'000'000; }

void CircuitBreaker::reset_window() {
  std::fill(window_.begin(), window_.end(), 0);
  window_pos_ = 0;
  window_calls_ = 0;
  window_failures_ = 0;
  consecutive_ = 0;
}

void CircuitBreaker::transition(BreakerState to,
                                std::vector<std::pair<BreakerState, BreakerState>>* events) {
  if (state_ == to) return;
  events->emplace_back(state_, to);
  state_ = to;
  ++transitions_;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  if (to == BreakerState::kOpen) opened_at_ms_ = now_ms();
  if (to == BreakerState::kClosed) reset_window();
}

void CircuitBreaker::notify(const std::vector<std::pair<BreakerState, BreakerState>>& events) {
  if (!listener_) return;
  for (const auto& [from, to] : events) listener_(from, to);
}

bool CircuitBreaker::allow() {
  std::vector<std::pair<BreakerState, BreakerState>> events;
  bool ok = false;
  {
    std::lock_guard lk(mu_);
    if (state_ == BreakerState::kOpen && now_ms() - opened_at_ms_ >= cfg_.open_ms) {
      transition(BreakerState::kHalfOpen, &events);
    }
    switch (state_) {
      case BreakerState::kClosed:
        ok = true;
        break;
      case BreakerState::kOpen:
        ok = false;
        break;
      case BreakerState::kHalfOpen:
        ok = probes_in_flight_ < std::max(1, cfg_.half_open_probes);
        if (ok) ++probes_in_flight_;
        break;
    }
  }
  notify(events);
  return ok;
}

void CircuitBreaker::record_success() {
  std::vector<std::pair<BreakerState, BreakerState>> events;
  {
    std::lock_guard lk(mu_);
    if (state_ == BreakerState::kHalfOpen) {
      probes_in_flight_ = std::max(0, probes_in_flight_ - 1);
      if (++probe_successes_ >= std::max(1, cfg_.half_open_successes)) {
        transition(BreakerState::kClosed, &events);
      }
    } else if (state_ == BreakerState::kClosed) {
      window_failures_ -= window_[window_pos_];
      window_[window_pos_] = 0;
      window_pos_ = (window_pos_ + 1) % window_.size();
      window_calls_ = std::min<int>(window_calls_ + 1, static_cast<int>(window_.size()));
      consecutive_ = 0;
    }
    // A success reported while open (a call allowed before it opened) changes nothing.
  }
  notify(events);
}

void CircuitBreaker::record_failure() {
  std::vector<std::pair<BreakerState, BreakerState>> events;
  {
    std::lock_guard lk(mu_);
    if (state_ == BreakerState::kHalfOpen) {
      transition(BreakerState::kOpen, &events);  // a failed probe: cool down again
    } else if (state_ == BreakerState::kClosed) {
      window_failures_ += 1 - window_[window_pos_];
      window_[window_pos_] = 1;
      window_pos_ = (window_pos_ + 1) % window_.size();
      window_calls_ = std::min<int>(window_calls_ + 1, static_cast<int>(window_.size()));
      ++consecutive_;
      const bool by_rate =
          window_calls_ >= std::max(1, cfg_.min_calls) &&
          static_cast<double>(window_failures_) >= cfg_.failure_rate * window_calls_;
      const bool by_streak = cfg_.consecutive_failures > 0 && consecutive_ >= cfg_.consecutive_failures;
      if (by_rate || by_streak) transition(BreakerState::kOpen, &events);
    }
  }
  notify(events);
}

BreakerState CircuitBreaker::state() const {
  std::lock_guard lk(mu_);
  return state_;
}

int64_t CircuitBreaker::retry_in_ms() const {
  std::lock_guard lk(mu_);
  if (state_ != BreakerState::kOpen) return 0;
  return std::max<int64_t>(0, cfg_.open_ms - (now_ms() - opened_at_ms_));
}

uint64_t CircuitBreaker::transitions() const {
  std::lock_guard lk(mu_);
  return transitions_;
}

int CircuitBreaker::window_failures() const {
  std::lock_guard lk(mu_);
  return window_failures_;
}

int CircuitBreaker::window_calls() const {
  std::lock_guard lk(mu_);
  return window_calls_;
}

}  // namespace spate::process
