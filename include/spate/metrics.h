// Metrics: a registry of counters, gauges and histograms, exposed in the Prometheus text
// exposition format 0.0.4.
//
// What it does: MetricsRegistry hands out metric objects keyed by (name, labels). The same
// name + label set always returns the same object, whose reference stays valid for the
// registry's lifetime (metric objects are never freed before the registry). Metrics with the
// same name form one family: one HELP and one TYPE line, one type. Callback metrics
// (gauge_fn/counter_fn) are evaluated at scrape time and can be removed again through the
// handle they return. render_prometheus() produces deterministic output: families sorted by
// name, series sorted by label set, labels sorted by name.
//
// Thread safety: everything is thread-safe. Registration (counter(), gauge(), histogram(),
// *_fn(), remove()) takes a registry mutex and allocates: call it at setup time and keep the
// returned reference, never per event. Updates never lock:
//   Counter::inc      one relaxed atomic fetch_add on a cache-line-padded slot picked by a
//                     thread-local index (slots are summed at scrape), ~1-2 ns uncontended.
//   Counter::add      like inc, but a compare-exchange loop on a double slot (fractional values).
//   Gauge::set/add    one atomic store / compare-exchange loop on a shared double.
//   Histogram::observe  a binary search over the bucket bounds, then one fetch_add on the
//                     bucket and one compare-exchange on the sum, both in the thread's slot.
// A scrape reads the slots without stopping writers, so a scrape taken during updates sees
// each update either fully or not at all per slot; _count always equals the +Inf bucket.
//
// Failure: names and labels come from code, so a malformed metric name or label name, a
// counter whose name does not end in "_total" (or a non-counter whose name does), an empty
// help text, reusing a name with another type, or registering the same series twice with
// different kinds (a plain metric and a callback) is a programming error and stops the
// process with a message saying what broke (SPATE_CHECK). Label *values* are free-form:
// invalid UTF-8 is replaced with U+FFFD, and escaping is done at render time.
// Registering a callback for a series that already has a callback replaces the old callback
// (the old handle then removes nothing).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spate {

/// Label set of one series: (label name, label value) pairs. Order does not matter; the
/// registry sorts them by name.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

namespace metrics_detail {
extern std::atomic<size_t> next_thread_slot;
/// Number of update slots per counter/histogram: a power of two (8..32, from the core count).
size_t slot_count();
/// This thread's slot index (not yet masked); assigned round-robin on first use.
inline size_t thread_slot() {
  thread_local const size_t slot = next_thread_slot.fetch_add(1, std::memory_order_relaxed);
  return slot;
}
inline void atomic_add_double(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}
}  // namespace metrics_detail

/// A monotonically increasing value (Prometheus counter). Name must end in "_total".
class Counter {
 public:
  Counter();
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  /// Add a whole number (the common case: events, bytes). Lock-free, no contention.
  void inc(uint64_t n = 1) {
    slots_[metrics_detail::thread_slot() & mask_].n.fetch_add(n, std::memory_order_relaxed);
  }
  /// Add a fractional amount (e.g. seconds). Negative or NaN amounts are ignored.
  void add(double v) {
    if (!(v > 0)) return;
    metrics_detail::atomic_add_double(slots_[metrics_detail::thread_slot() & mask_].d, v);
  }
  /// Sum over all slots (what a scrape reports).
  double value() const;

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> n{0};
    std::atomic<double> d{0.0};
  };
  std::unique_ptr<Slot[]> slots_;
  size_t mask_;
};

/// A value that goes up and down (Prometheus gauge). One shared atomic double.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double v) { metrics_detail::atomic_add_double(v_, v); }
  void sub(double v) { add(-v); }
  void inc() { add(1.0); }
  void dec() { add(-1.0); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0.0};
};

/// Distribution of observed values in cumulative buckets (Prometheus histogram):
/// <name>_bucket{le="..."}, <name>_sum, <name>_count. A value v lands in the first bucket
/// whose upper bound is >= v (bounds are inclusive); NaN lands only in +Inf.
class Histogram {
 public:
  /// `bounds`: finite, strictly increasing upper bounds; +Inf is implicit (a trailing +Inf
  /// is accepted and dropped). Checked (fatal on violation).
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double v);

  struct Snapshot {
    std::vector<double> bounds;        // finite upper bounds
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries; the last is +Inf == count
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  // One cache-line group per slot: [sum bits][bucket 0]...[bucket n] padded to 64 bytes.
  struct alignas(64) Line {
    std::atomic<uint64_t> v[8];
  };
  std::atomic<uint64_t>& cell(size_t slot, size_t i) const {
    return lines_[slot * lines_per_slot_ + i / 8].v[i % 8];
  }
  std::vector<double> bounds_;
  size_t lines_per_slot_;
  size_t mask_;
  std::unique_ptr<Line[]> lines_;
};

/// Default latency buckets in seconds: 100 us .. 10 s.
const std::vector<double>& default_latency_buckets();
/// `count` bounds: start, start*factor, ... (start > 0, factor > 1).
std::vector<double> exponential_buckets(double start, double factor, size_t count);
/// `count` bounds: start, start+width, ... (width > 0).
std::vector<double> linear_buckets(double start, double width, size_t count);

/// Identifies one registered callback metric; pass it to MetricsRegistry::remove().
struct MetricCallbackHandle {
  uint64_t id = 0;  // 0 = none
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  /// Get or create. `name` must end in "_total".
  Counter& counter(std::string_view name, std::string_view help, MetricLabels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, MetricLabels labels = {});
  /// Get or create. `buckets` are only used on creation; an existing series keeps its own.
  Histogram& histogram(std::string_view name, std::string_view help, MetricLabels labels = {},
                       std::vector<double> buckets = default_latency_buckets());

  /// Gauge whose value is `fn()` at scrape time. `fn` runs on the scraping thread, without the
  /// registry's series lock held (it may register metrics) but under the scrape lock: it must
  /// not call render_prometheus() or remove(), and should be quick.
  MetricCallbackHandle gauge_fn(std::string_view name, std::string_view help, MetricLabels labels,
                                std::function<double()> fn);
  /// Counter (name ending in "_total") whose value is `fn()` at scrape time.
  MetricCallbackHandle counter_fn(std::string_view name, std::string_view help, MetricLabels labels,
                                  std::function<double()> fn);
  /// Remove a callback metric. After remove() returns, its callback is not running and will
  /// not be called again (so it waits for a scrape in progress: do not call it while holding
  /// a lock that a callback takes). Returns false if the handle was unknown (already
  /// removed or replaced).
  bool remove(MetricCallbackHandle handle);

  /// The whole registry in Prometheus text format 0.0.4 (Content-Type
  /// "text/plain; version=0.0.4; charset=utf-8"). Families with no series are omitted.
  std::string render_prometheus() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Series;
  struct Family;
  Family& family_locked(std::string_view name, std::string_view help, Kind kind);
  MetricCallbackHandle add_callback(std::string_view name, std::string_view help, Kind kind,
                                    MetricLabels labels, std::function<double()> fn);

  mutable std::mutex scrape_mu_;  // held while callbacks run; taken before mu_
  mutable std::mutex mu_;         // guards families_ and callback_index_
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
  // callback id -> (family name, labels), to find it on remove()
  std::map<uint64_t, std::pair<std::string, MetricLabels>> callback_index_;
  uint64_t next_callback_id_ = 1;
};

/// Removes a callback metric when destroyed (must not outlive its registry). Movable.
class ScopedMetricCallback {
 public:
  ScopedMetricCallback() = default;
  ScopedMetricCallback(MetricsRegistry* registry, MetricCallbackHandle handle)
      : registry_(registry), handle_(handle) {}
  ScopedMetricCallback(ScopedMetricCallback&& o) noexcept
      : registry_(std::exchange(o.registry_, nullptr)), handle_(o.handle_) {}
  ScopedMetricCallback& operator=(ScopedMetricCallback&& o) noexcept {
    if (this != &o) {
      reset();
      registry_ = std::exchange(o.registry_, nullptr);
      handle_ = o.handle_;
    }
    return *this;
  }
  ~ScopedMetricCallback() { reset(); }
  void reset() {
    if (registry_ != nullptr) registry_->remove(handle_);
    registry_ = nullptr;
  }

 private:
  MetricsRegistry* registry_ = nullptr;
  MetricCallbackHandle handle_;
};

/// The process-wide registry (created on first use, never destroyed).
MetricsRegistry& global_metrics();

/// Add the standard process metrics, read from /proc/self at scrape time:
/// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
/// process_open_fds, process_max_fds, process_start_time_seconds, and
/// spate_build_info{version="<SPATE_VERSION>"} 1. Calling it again on the same registry is a
/// no-op (the callbacks are replaced).
void register_process_metrics(MetricsRegistry& registry);

/// Format a sample value as the exposition format wants it: "NaN", "+Inf", "-Inf", integers
/// without exponent up to 2^53, otherwise the shortest round-trip form ("0.25", "1e-05").
std::string format_metric_value(double v);

}  // namespace spate
