// Encoding of the engine's key states for checkpoints (engine_state.h).
#include <type_traits>

#include "analytics/codec_internal.h"
#include "analytics/engine_state.h"

namespace spate::analytics {

void merge_slots(Slots& into, const Slots& from) {
  for (size_t i = 0; i < into.s.size(); ++i) {
    std::visit(
        [&](auto& a) {
          using T = std::decay_t<decltype(a)>;
          const T& b = std::get<T>(from.s[i]);
          if constexpr (std::is_same_v<T, uint64_t>) {
            a += b;
          } else {
            (void)a.merge(b);
          }
        },
        into.s[i]);
  }
  into.min_time = std::min(into.min_time, from.min_time);
}

namespace {

void encode_slot(codec::Writer& w, const Slot& slot) {
  std::visit(
      [&](const auto& a) {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, uint64_t>) {
          w.varint(a);
        } else if constexpr (std::is_same_v<T, FirstLast<std::string>>) {
          w.u8(a.has_value ? 1 : 0);
          if (!a.has_value) return;
          w.svarint(a.first_time);
          w.varint(a.first_seq);
          w.bytes(a.first);
          w.svarint(a.last_time);
          w.varint(a.last_seq);
          w.bytes(a.last);
        } else {
          std::string enc;
          a.encode(&enc);
          w.bytes(enc);
        }
      },
      slot);
}

// A sketch decoded for a slot must have its prototype's configuration: sketches of different
// configurations do not merge (merge_slots would drop the pane's data silently).
template <typename T>
bool same_config(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, DDSketch>) {
    return a.config().relative_accuracy == b.config().relative_accuracy &&
           a.config().max_buckets == b.config().max_buckets &&
           a.config().exact_threshold == b.config().exact_threshold;
  } else if constexpr (std::is_same_v<T, HyperLogLog>) {
    return a.config().precision == b.config().precision &&
           a.config().exact_threshold == b.config().exact_threshold;
  } else if constexpr (std::is_same_v<T, SpaceSaving>) {
    return a.config().capacity == b.config().capacity;
  } else {
    return true;
  }
}

// *slot holds the prototype's state (its type and configuration) on entry.
Status decode_slot(codec::Reader& r, Slot* slot) {
  return std::visit(
      [&](auto& a) -> Status {
        using T = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<T, uint64_t>) {
          a = r.varint();
        } else if constexpr (std::is_same_v<T, FirstLast<std::string>>) {
          a = FirstLast<std::string>();
          a.has_value = r.u8() != 0;
          if (a.has_value) {
            a.first_time = r.svarint();
            a.first_seq = r.varint();
            a.first = std::string(r.bytes());
            a.last_time = r.svarint();
            a.last_seq = r.varint();
            a.last = std::string(r.bytes());
            // As FirstLast::decode: first is the smallest (time, seq), last the largest.
            if (a.last_time < a.first_time ||
                (a.last_time == a.first_time && a.last_seq < a.first_seq)) {
              return Corruption("checkpoint: first/last: last before first");
            }
          }
        } else {
          auto d = T::decode(r.bytes());
          if (!d.ok()) return d.status();
          if (!same_config(d.value(), a)) {
            return Corruption("checkpoint: aggregate state of another configuration");
          }
          a = std::move(d).value();
        }
        return r.ok() ? Status::Ok() : Corruption("checkpoint: truncated aggregate state");
      },
      *slot);
}

void encode_slots(codec::Writer& w, const Slots& s) {
  w.svarint(s.min_time);
  for (const Slot& slot : s.s) encode_slot(w, slot);
}

Status decode_slots(codec::Reader& r, const Slots& prototype, Slots* out) {
  *out = prototype;
  out->min_time = r.svarint();
  for (Slot& slot : out->s) SPATE_RETURN_IF_ERROR(decode_slot(r, &slot));
  return Status::Ok();
}

// Sanity bound on element counts read from a checkpoint (a corrupt count must not allocate
// without bound before the reader notices the input is too short).
bool plausible(const codec::Reader& r, uint64_t n) { return r.ok() && n <= r.remaining(); }

}  // namespace

void encode_key_state(codec::Writer& w, const KeyState& ks) {
  w.bytes(ks.key);
  w.bytes(ks.key_json);
  w.varint(ks.events);
  w.svarint(ks.emptied_at);
  w.varint(ks.panes.size());
  for (const auto& [start, slots] : ks.panes) {
    w.svarint(start);
    encode_slots(w, slots);
  }
  w.varint(ks.emitted.size());
  for (const auto& [end, n] : ks.emitted) {
    w.svarint(end);
    w.varint(n);
  }
  w.u8(ks.sessions ? 1 : 0);
  if (ks.sessions) {
    w.varint(ks.sessions->sessions().size());
    for (const auto& s : ks.sessions->sessions()) {
      w.svarint(s.window.start);
      w.svarint(s.window.end);
      w.u8(static_cast<uint8_t>((s.sealed ? 1 : 0) | (s.state.dirty ? 2 : 0) |
                                (s.state.fired ? 4 : 0) | (s.state.early ? 8 : 0)));
      w.varint(s.state.emissions);
      encode_slots(w, s.state.slots);
    }
  }
  w.varint(ks.count_panes.size());
  for (const auto& [index, slots] : ks.count_panes) {
    w.varint(index);
    encode_slots(w, slots);
  }
  w.varint(ks.rules.size());
  std::string enc;
  auto put = [&](const auto& state) {
    enc.clear();
    state.encode(&enc);
    w.bytes(enc);
  };
  for (const RuleState& rs : ks.rules) {
    put(rs.threshold);
    if (rs.trend) put(*rs.trend);
    if (rs.pairs) put(*rs.pairs);
    if (rs.sequence) put(*rs.sequence);
    if (rs.anomaly) put(*rs.anomaly);
  }
}

Status decode_key_state(codec::Reader& r, const Slots& prototype,
                        const SessionConfig& session_config,
                        const std::vector<RuleTemplate>& rules, KeyState* out) {
  const Status bad = Corruption("checkpoint: malformed key state");
  out->key = std::string(r.bytes());
  out->key_json = std::string(r.bytes());
  out->events = r.varint();
  out->emptied_at = r.svarint();
  uint64_t n = r.varint();
  if (!plausible(r, n)) return bad;
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t start = r.svarint();
    Slots s;
    SPATE_RETURN_IF_ERROR(decode_slots(r, prototype, &s));
    out->panes.emplace(start, std::move(s));
  }
  n = r.varint();
  if (!plausible(r, n)) return bad;
  for (uint64_t i = 0; i < n; ++i) {
    const int64_t end = r.svarint();
    out->emitted[end] = static_cast<uint32_t>(r.varint());
  }
  if (r.u8() != 0) {
    SessionState proto;
    proto.slots = prototype;
    out->sessions = std::make_unique<SessionSet<SessionState>>(session_config, proto);
    n = r.varint();
    if (!plausible(r, n)) return bad;
    auto& sessions = out->sessions->mutable_sessions();
    for (uint64_t i = 0; i < n; ++i) {
      SessionSet<SessionState>::Session s{TimeWindow{0, 0}, false, proto};
      s.window.start = r.svarint();
      s.window.end = r.svarint();
      const uint8_t flags = r.u8();
      s.sealed = (flags & 1) != 0;
      s.state.dirty = (flags & 2) != 0;
      s.state.fired = (flags & 4) != 0;
      s.state.early = (flags & 8) != 0;
      s.state.emissions = static_cast<uint32_t>(r.varint());
      SPATE_RETURN_IF_ERROR(decode_slots(r, prototype, &s.state.slots));
      if (s.window.end < s.window.start ||
          (!sessions.empty() && s.window.start < sessions.back().window.start)) {
        return bad;
      }
      sessions.push_back(std::move(s));
    }
  }
  n = r.varint();
  if (!plausible(r, n)) return bad;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t index = r.varint();
    Slots s;
    SPATE_RETURN_IF_ERROR(decode_slots(r, prototype, &s));
    out->count_panes.emplace(index, std::move(s));
  }
  n = r.varint();
  if (!r.ok() || (n != 0 && n != rules.size())) return bad;
  for (uint64_t i = 0; i < n; ++i) {
    const RuleTemplate& t = rules[i];
    RuleState rs(t);
    SPATE_ASSIGN_OR_RETURN(rs.threshold, ThresholdState::decode(r.bytes(), t.threshold));
    if (t.trend) {
      SPATE_ASSIGN_OR_RETURN(rs.trend, TrendState::decode(r.bytes(), *t.trend));
    }
    if (t.pairs) {
      SPATE_ASSIGN_OR_RETURN(rs.pairs, PairHistory::decode(r.bytes(), *t.pairs));
    }
    if (t.sequence) {
      SPATE_ASSIGN_OR_RETURN(rs.sequence, SequenceState::decode(r.bytes(), *t.sequence));
    }
    if (t.anomaly) {
      SPATE_ASSIGN_OR_RETURN(rs.anomaly, AnomalyState::decode(r.bytes(), *t.anomaly));
    }
    out->rules.push_back(std::move(rs));
  }
  return r.ok() ? Status::Ok() : bad;
}

}  // namespace spate::analytics
