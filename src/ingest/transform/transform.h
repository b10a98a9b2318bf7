// TransformChain: the ingestion transform rules (`ingestion.transforms`), compiled once.
//
// Rules run in order on each event, after the schema and the quality checks and before dedup,
// routing and key/event-time extraction (which therefore see the transformed event). Each rule
// sees the event as the rules before it left it: `when` conditions and `set` expressions are
// evaluated on the current event (JsonEdit overlay written and parsed again when needed).
//
// Contract:
//  - compile() checks every rule (expressions compiled, cast types, mask widths) and reports
//    every problem at once as Errc::kConfig "FILE:LINE:COL: ingestion.transforms[i].key: ...".
//  - apply() is const and thread-safe (its scratch state is thread-local). On success it says
//    whether the event changed; if so, Outcome::json is the new event text and Outcome::doc the
//    parsed new event — both valid until the next apply() on the same thread. With
//    parse_result false (the caller reads only the text afterwards), the final write of the
//    edits is not parsed again: Outcome::doc is then left unset. A rule that
//    cannot be applied (cast of "abc" to int, a set under a non-object) fails the event with a
//    one-line reason, unless the rule says `on_error: skip`.
//  - An absent field is left alone by rename, remove, cast, mask and hash; `set` from an
//    expression that evaluates to missing leaves the field as it is; `default` sets a field
//    that is absent or null.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spate/ingestion.h"
#include "spate/status.h"

namespace spate::ingest {

struct TransformInput {
  int64_t received_at_ms = 0;
  std::string_view source;
  std::string_view request_id;
};

class TransformChain {
 public:
  struct Outcome {
    bool changed = false;
    std::string_view json;        // changed: the new event text (thread-local buffer)
    simdjson::dom::element doc;   // changed: the new event, parsed (thread-local parser)
  };

  TransformChain();
  ~TransformChain();
  TransformChain(TransformChain&&) noexcept;
  TransformChain& operator=(TransformChain&&) noexcept;

  static Result<TransformChain> compile(const std::vector<TransformConfig>& rules);

  bool empty() const;

  /// Apply every rule to `event`. False (and *reason) if a rule failed the event.
  /// parse_result false: Outcome::doc is not wanted (saves parsing the result again).
  bool apply(const simdjson::dom::element& event, const TransformInput& in, Outcome* out,
             std::string* reason, bool parse_result = true) const;

 private:
  struct Rule;
  std::vector<Rule> rules_;
};

}  // namespace spate::ingest
