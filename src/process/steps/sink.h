// Internal to the sink step (src/process/steps/sink*.cc): what the sink kinds share — option
// parsing helpers, field mappings and key templates evaluated against an event, metrics.
//
// Contract: a sink kind's factory gets the step's options with `kind` already read; it parses
// its own keys, calls options->finish(), and in validate_only mode never connects. Every sink
// buffers in process() (which never fails for a write reason), writes in flush(), drops the
// buffer in discard(), and keys each record by ProcessorEvent::event_id() so a replayed batch
// overwrites instead of duplicating. Helpers here are pure (thread-safe); SinkMetrics pointers
// are owned by the MetricsRegistry and are safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event/expr.h"
#include "spate/processor.h"
#include "spate/processor_api.h"

namespace spate {
class Counter;
class Histogram;
}  // namespace spate

namespace spate::process::sink {

/// "FILE:LINE:COL: processors[i].steps[j]" of the step, for messages.
std::string at(const ProcessorStepConfig& sc);

/// An expression's value as text for a downstream: strings as they are, numbers and booleans
/// as their JSON text, arrays and objects as minified JSON; nullopt for null and missing.
std::optional<std::string> render_text(const expr::Value& v);

/// One named value computed from the event: `column: EXPR` (`$` is the whole event's text).
struct Field {
  std::string name;
  expr::Expression expr;
  bool whole_event = false;  // the expression is `$`: the event's JSON text as it is
  std::optional<std::string> eval(const ProcessorEvent& ev) const;
};
/// Compile `key: {name: EXPR, ...}`; errors are reported through `o`.
std::vector<Field> compile_fields(StepOptions& o, std::string_view key,
                                  const std::vector<std::pair<std::string, std::string>>& items);

/// A text with `{EXPR}` placeholders ("order:{user.id}"); `{@id}` is the event id,
/// `{@topic}`, `{@partition}` and `{@offset}` the input record's coordinates.
class Template {
 public:
  /// Empty string on success, else the problem.
  std::string compile(std::string_view text);
  std::string render(const ProcessorEvent& ev) const;
  const std::string& source() const { return source_; }

 private:
  struct Part {
    enum Kind : uint8_t { kText, kExpr, kId, kTopic, kPartition, kOffset } kind = kText;
    std::string text;
    expr::Expression expr;
  };
  std::vector<Part> parts_;
  std::string source_;
};

/// A sink's metrics (labels processor, sink kind, downstream). Null-safe: without a registry
/// (validate_only) every call is a no-op.
class SinkMetrics {
 public:
  SinkMetrics() = default;
  SinkMetrics(MetricsRegistry* registry, const std::string& processor, const std::string& kind,
              const std::string& downstream);
  void written(uint64_t records);
  void request(double seconds);
  void failure(const std::string& kind, uint64_t n = 1);
  /// After a successful flush: `written` records stored, `rejected` dead-lettered.
  void flushed(int64_t started_ns, uint64_t written, uint64_t rejected);

 private:
  MetricsRegistry* registry_ = nullptr;
  Counter* written_ = nullptr;
  Counter* requests_ = nullptr;
  Histogram* seconds_ = nullptr;
  std::vector<std::pair<std::string, std::string>> labels_;
};

/// Seconds since `since` (steady clock), for latencies.
double seconds_since(int64_t since_ns);
int64_t steady_ns();

// The sink kinds (one file each).
Result<std::unique_ptr<EventProcessor>> make_postgres_sink(StepContext& ctx);
Result<std::unique_ptr<EventProcessor>> make_http_sink(StepContext& ctx);
Result<std::unique_ptr<EventProcessor>> make_redis_sink(StepContext& ctx);
Result<std::unique_ptr<EventProcessor>> make_file_sink(StepContext& ctx);

}  // namespace spate::process::sink
