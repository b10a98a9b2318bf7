#include "orchestrate/policy.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace spate::orchestrate {

namespace {

// ceil(current × value / target), or current within the tolerance band.
int ratio_replicas(int current, double value, double target, double tolerance) {
  const double ratio = value / target;
  if (std::fabs(ratio - 1.0) <= tolerance) return current;
  const double want = std::ceil(static_cast<double>(current) * ratio - 1e-9);
  return static_cast<int>(std::min(want, 1e6));
}

}  // namespace

Recommendation Autoscaler::recommend(const ScalingSample& s) const {
  const ScalingPolicy& p = policy_;
  const int current = std::max(1, s.current);
  Recommendation best;
  best.replicas = -1;
  auto consider = [&](int want, std::string reason) {
    if (want > best.replicas) {
      best.replicas = want;
      best.reason = std::move(reason);
    }
  };
  if (p.target_consumer_lag > 0 && s.total_lag >= 0) {
    const double target = static_cast<double>(p.target_consumer_lag);
    int want = 0;
    if (std::fabs(s.total_lag / (target * current) - 1.0) <= p.tolerance) {
      want = current;
    } else {
      want = static_cast<int>(std::min(std::ceil(s.total_lag / target - 1e-9), 1e6));
    }
    std::string why = fmt::format("consumer_lag {:.0f} / target {} per replica", s.total_lag,
                                  p.target_consumer_lag);
    if (s.partitions > 0 && want > s.partitions) {
      want = s.partitions;
      why += fmt::format(" (capped at {} partitions)", s.partitions);
    }
    consider(want, std::move(why));
  }
  if (p.target_cpu_utilization > 0 && s.cpu_utilization >= 0) {
    consider(ratio_replicas(current, s.cpu_utilization, p.target_cpu_utilization, p.tolerance),
             fmt::format("cpu {:.2f} / target {:.2f}", s.cpu_utilization, p.target_cpu_utilization));
  }
  if (p.target_memory_utilization > 0 && s.memory_utilization >= 0) {
    consider(ratio_replicas(current, s.memory_utilization, p.target_memory_utilization, p.tolerance),
             fmt::format("memory {:.2f} / target {:.2f}", s.memory_utilization,
                         p.target_memory_utilization));
  }
  if (p.target_queue_size > 0 && s.queue_size >= 0) {
    consider(ratio_replicas(current, s.queue_size, p.target_queue_size, p.tolerance),
             fmt::format("queue_size {:.0f} / target {:.0f}", s.queue_size, p.target_queue_size));
  }
  if (p.target_processing_time_ms > 0 && s.processing_time_ms >= 0) {
    consider(ratio_replicas(current, s.processing_time_ms,
                            static_cast<double>(p.target_processing_time_ms), p.tolerance),
             fmt::format("processing_time {:.1f}ms / target {}ms", s.processing_time_ms,
                         p.target_processing_time_ms));
  }
  if (best.replicas < 0) {
    best.replicas = s.current;
    best.reason = "no metrics";
    return best;
  }
  const int clamped = std::clamp(best.replicas, p.min_replicas, p.max_replicas);
  if (clamped != best.replicas) {
    best.reason += fmt::format(" (clamped to [{}, {}])", p.min_replicas, p.max_replicas);
    best.replicas = clamped;
  }
  return best;
}

ScalingDecision Autoscaler::decide(const ScalingSample& s, int64_t now_ms) {
  const ScalingPolicy& p = policy_;
  Recommendation rec = recommend(s);
  history_.emplace_back(now_ms, rec.replicas);
  while (!history_.empty() && history_.front().first < now_ms - p.scale_down_stabilization_ms) {
    history_.pop_front();
  }
  ScalingDecision d;
  d.replicas = s.current;
  const int64_t since = now_ms - last_scale_ms_;
  if (rec.replicas > s.current) {
    if (since < p.scale_up_cooldown_ms) {
      d.reason = fmt::format("scale up to {} waits for the cooldown ({}s of {}s): {}", rec.replicas,
                             since / 1000, p.scale_up_cooldown_ms / 1000, rec.reason);
      return d;
    }
    d.replicas = rec.replicas;
    d.reason = rec.reason;
    return d;
  }
  if (rec.replicas < s.current) {
    int highest = rec.replicas;
    for (const auto& [t, r] : history_) highest = std::max(highest, r);
    if (highest >= s.current) {
      d.reason = fmt::format("scale down to {} held by the stabilisation window (highest {} in {}s)",
                             rec.replicas, highest, p.scale_down_stabilization_ms / 1000);
      return d;
    }
    if (since < p.scale_down_cooldown_ms) {
      d.reason = fmt::format("scale down to {} waits for the cooldown ({}s of {}s): {}", highest,
                             since / 1000, p.scale_down_cooldown_ms / 1000, rec.reason);
      return d;
    }
    d.replicas = highest;
    d.reason = rec.reason + (highest != rec.replicas
                                 ? fmt::format(" (highest in the stabilisation window: {})", highest)
                                 : std::string());
    return d;
  }
  d.reason = rec.reason;
  return d;
}

void Autoscaler::scaled(int64_t now_ms) { last_scale_ms_ = now_ms; }

int RestartBackoff::restarts_in_window(int64_t now_ms) {
  while (!restarts_.empty() && restarts_.front() <= now_ms - policy_.crash_loop_window_ms) {
    restarts_.pop_front();
  }
  return static_cast<int>(restarts_.size());
}

int64_t RestartBackoff::next_delay_ms(int64_t now_ms, double unit) {
  const int k = restarts_in_window(now_ms);  // earlier restarts in the window
  restarts_.push_back(now_ms);
  double base = static_cast<double>(policy_.backoff_initial_ms) * std::ldexp(1.0, std::min(k, 40));
  base = std::min(base, static_cast<double>(policy_.backoff_max_ms));
  const double factor = 1.0 + policy_.jitter * (2.0 * std::clamp(unit, 0.0, 1.0) - 1.0);
  return static_cast<int64_t>(base * factor);
}

double replica_health(bool alive, bool healthy, bool ready, double error_rate, double lag,
                      double lag_target) {
  if (!alive || !healthy) return 0.0;
  double score = 0.4;
  if (ready) score += 0.3;
  const double er = error_rate > 0 ? error_rate : 0;
  score += 0.15 * std::max(0.0, 1.0 - er / 0.05);
  if (lag_target <= 0 || lag <= lag_target) {
    score += 0.15;
  } else {
    score += 0.15 * lag_target / lag;
  }
  return std::clamp(score, 0.0, 1.0);
}

}  // namespace spate::orchestrate
