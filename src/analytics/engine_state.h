// The analytics engine's per-key state (engine.cc) and its checkpoint encoding (checkpoint.cc).
// Internal to src/analytics.
//
// A KeyState holds every open window of one group-by key: panes (tumbling/sliding, by pane
// start), sessions, or count panes, each a Slots — one aggregate state per configured
// aggregation, in config order, of the types the job's prototype Slots has.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "analytics/anomaly.h"
#include "analytics/ddsketch.h"
#include "analytics/flat_map.h"
#include "analytics/hyperloglog.h"
#include "analytics/moments.h"
#include "analytics/patterns.h"
#include "analytics/top_k.h"
#include "analytics/windows.h"
#include "spate/status.h"

namespace spate::analytics {

namespace codec {
class Writer;
class Reader;
}  // namespace codec

inline constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();

using Slot = std::variant<uint64_t, Moments, DDSketch, HyperLogLog, SpaceSaving,
                          FirstLast<std::string>, CoMoments>;

// The states of every aggregation of one pane / session / count pane.
struct Slots {
  std::vector<Slot> s;
  int64_t min_time = kMaxTime;  // earliest event time in it (offset commits)
};

void merge_slots(Slots& into, const Slots& from);

struct SessionState {
  Slots slots;
  uint32_t emissions = 0;
  bool dirty = false;  // changed since last emitted
  bool fired = false;  // emitted on time (complete) already: later emissions are late updates
  bool early = false;  // changed since the last early result (window.early)
  // Two sessions bridged by an event: one session now, changed.
  void merge(const SessionState& o) {
    merge_slots(slots, o.slots);
    emissions = std::max(emissions, o.emissions);
    dirty = true;
    fired = fired || o.fired;
    early = true;
  }
};

// The detector states a rule needs per key (engine.cc compiles one per configured rule).
struct RuleTemplate {
  ThresholdConfig threshold;  // fire/resolve of threshold, trend, correlation, anomaly
  std::optional<TrendConfig> trend;
  std::optional<TrendConfig> pairs;  // correlation of two aggregates over the last N windows
  std::optional<SequenceConfig> sequence;
  std::optional<AnomalyConfig> anomaly;
};

struct RuleState {
  ThresholdState threshold;
  std::optional<TrendState> trend;
  std::optional<PairHistory> pairs;
  std::optional<SequenceState> sequence;
  std::optional<AnomalyState> anomaly;
  explicit RuleState(const RuleTemplate& t) : threshold(t.threshold) {
    if (t.trend) trend.emplace(*t.trend);
    if (t.pairs) pairs.emplace(*t.pairs);
    if (t.sequence) sequence.emplace(*t.sequence);
    if (t.anomaly) anomaly.emplace(*t.anomaly);
  }
  /// Nothing that forgetting the key would lose: not firing, no breach run, no sequence
  /// in progress (trend, correlation-pair and anomaly baselines restart after an idle key is
  /// forgotten).
  bool idle() const {
    return !threshold.firing() && !threshold.in_run() && (!sequence || sequence->empty());
  }
};

struct KeyState {
  std::string key;                      // the map key (record key of its results)
  std::string key_json;                 // {"field":value,...}
  FlatMap<int64_t, Slots> panes;        // sliding/tumbling: by pane start
  FlatMap<int64_t, uint32_t> emitted;   // sliding: window end -> emissions so far
  std::unique_ptr<SessionSet<SessionState>> sessions;
  uint64_t events = 0;                  // count windows: events seen (arrival index)
  int64_t emptied_at = kMaxTime;        // watermark when its last window closed (time windows)
  FlatMap<uint64_t, Slots> count_panes;
  std::vector<RuleState> rules;         // one per rule, created when a rule first needs it
  size_t table_pos = 0;                 // KeyTable: its place among the owned states
};

/// Appends a KeyState's encoding (everything but `key`'s map position) to w.
void encode_key_state(codec::Writer& w, const KeyState& ks);
/// Reads one KeyState written by encode_key_state; slots take their types from `prototype`
/// (kCorruption if an encoded slot does not parse as its prototype's type). `sessions` is
/// created from session_config when has_sessions was encoded; rule states from `rules`.
Status decode_key_state(codec::Reader& r, const Slots& prototype,
                        const SessionConfig& session_config,
                        const std::vector<RuleTemplate>& rules, KeyState* out);

}  // namespace spate::analytics
