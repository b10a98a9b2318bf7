// QualityChecks: the ingestion data-quality checks (`ingestion.quality`), compiled once.
//
// Checks run in order on each event after the JSON Schema and before the transforms. Kinds:
// required (fields present), range (a number within [min, max]), allowed (one of a list of
// values), regex (a string matching an RE2 pattern), max_age / future_skew (the event time
// against the server clock) and expr (an expression that must be true). A check on a field
// passes when the field is absent; `required` is the check for presence.
//
// Contract:
//  - compile() validates every check (patterns, expressions, a time field for max_age and
//    future_skew) and reports every problem at once as Errc::kConfig with file:line:col.
//  - evaluate() is const and thread-safe, allocation-free when every check passes. It fills
//    `out` with the failing checks in order until the first whose action is reject,
//    dead_letter or drop (that one decides what happens to the event; later checks do not
//    run); failing `tag` checks before it are listed too.
//  - reason() renders one failing check as a one-line message for responses and the
//    dead-letter `error` header, naming the check, the field and the offending value.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "spate/ingestion.h"
#include "spate/status.h"

namespace spate::ingest {

class QualityChecks {
 public:
  struct Outcome {
    std::vector<uint32_t> failed;  // indexes of failing checks, in order
    int decisive = -1;             // index into `failed` of the deciding check, or -1
    void clear() {
      failed.clear();
      decisive = -1;
    }
  };

  QualityChecks();
  ~QualityChecks();
  QualityChecks(QualityChecks&&) noexcept;
  QualityChecks& operator=(QualityChecks&&) noexcept;

  /// `timestamp_field` is ingestion.timestamp_field, the default field of max_age/future_skew;
  /// `has_dead_letter_topic` whether ingestion.dead_letter_topic is set (action dead_letter
  /// needs it).
  static Result<QualityChecks> compile(const std::vector<QualityCheckConfig>& checks,
                                       std::string_view timestamp_field,
                                       bool has_dead_letter_topic);

  bool empty() const;
  size_t size() const;
  const std::string& name(uint32_t i) const;
  QualityAction action(uint32_t i) const;

  void evaluate(const simdjson::dom::element& event, int64_t now_ms, Outcome* out) const;
  std::string reason(uint32_t i, const simdjson::dom::element& event, int64_t now_ms) const;

 private:
  struct Check;
  std::vector<Check> checks_;
};

/// "reject", "dead_letter", "tag" or "drop".
const char* quality_action_name(QualityAction a);

}  // namespace spate::ingest
