// The processor step API: what a step of a stream processor's chain is, how it is configured,
// and the registry that maps a step `type` to its factory. Built-in steps (filter, map, mask,
// route, enrich, sink) and custom C++ steps — compiled into a program or loaded from a shared
// library named in the pipeline file (`plugins:`) — use the same interface.
//
// Contract:
//  - A factory is called once per worker thread of a processor (and once more by
//    `spate validate`, which only checks and then destroys the step). A step instance is used
//    by one thread only; it needs no locking unless it shares state between instances.
//  - process() is called for every event that reached the step, in partition order. It returns
//    kPass (the event goes on to the next step), kDrop (the event is filtered out) or kError
//    with *error filled in. A transient error (StepError::transient) is retried by the
//    processor with exponential backoff (the processor's max_retries / retry_backoff) and
//    counted against the step's circuit breaker when the step names a downstream(); the step
//    must not have changed the event when it fails. A permanent error sends the event to the
//    processor's dead-letter topic at once.
//  - flush() is called at the end of every batch, before the batch's outputs and offsets are
//    committed: a step that buffers writes (a sink) writes them here. A non-OK Status fails the
//    whole batch; is_transient(status) decides whether it is retried (the batch is then
//    processed again from its first event, so buffered writes must be idempotent — sinks key
//    them by event_id()); per-event permanent failures are reported in *failed instead and go to
//    the dead-letter topic. discard() is called when a batch is abandoned (stop, breaker open,
//    transaction abort) and must drop what flush() would have written.
//  - ProcessorEvent views (json(), doc(), key) are valid until the event is replaced or the
//    step returns.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spate/status.h"

namespace spate {

class Log;
class MetricsRegistry;
struct ProcessorConfig;
struct ProcessorStepConfig;

/// A value of a step's options as written in the pipeline file, with its position. Scalars keep
/// their (interpolated) text; conversions happen in StepOptions.
struct OptionValue {
  enum Kind : uint8_t { kNull, kScalar, kMap, kList } kind = kNull;
  std::string scalar;
  std::vector<std::pair<std::string, OptionValue>> map;  // file order
  std::vector<OptionValue> list;
  int line = 0;
  int column = 0;

  // Declared here and defaulted below, where OptionValue is complete: `map` holds pairs of
  // OptionValue, which libstdc++ with clang refuses to check while the class is incomplete.
  OptionValue();
  ~OptionValue();
  OptionValue(const OptionValue&);
  OptionValue(OptionValue&&) noexcept;
  OptionValue& operator=(const OptionValue&);
  OptionValue& operator=(OptionValue&&) noexcept;
};

inline OptionValue::OptionValue() = default;
inline OptionValue::~OptionValue() = default;
inline OptionValue::OptionValue(const OptionValue&) = default;
inline OptionValue::OptionValue(OptionValue&&) noexcept = default;
inline OptionValue& OptionValue::operator=(const OptionValue&) = default;
inline OptionValue& OptionValue::operator=(OptionValue&&) noexcept = default;

/// Typed access to a step's options that reports every problem as
/// "FILE:LINE:COL: processors[i].steps[j].key: message" and, in finish(), unknown keys with a
/// "did you mean". Getters leave *out alone when the key is absent and return whether it was
/// present and valid.
class StepOptions {
 public:
  StepOptions(const OptionValue* value, std::string file, std::string path);

  bool has(std::string_view key) const;
  bool get_string(std::string_view key, std::string* out, bool required = false);
  bool get_bool(std::string_view key, bool* out);
  bool get_int(std::string_view key, int64_t* out, int64_t min, int64_t max);
  bool get_double(std::string_view key, double* out);
  /// "500ms", "30s", "5m" or plain milliseconds.
  bool get_duration_ms(std::string_view key, int64_t* out, int64_t min, int64_t max);
  /// "64MiB", "10KB" or plain bytes.
  bool get_size(std::string_view key, int64_t* out, int64_t min, int64_t max);
  bool get_enum(std::string_view key, std::string* out, const std::vector<std::string>& allowed);
  /// A list of strings, or a single string taken as a one-element list.
  bool get_string_list(std::string_view key, std::vector<std::string>* out, bool required = false);
  /// A map of string to string (e.g. HTTP headers, column mappings), in file order.
  bool get_string_map(std::string_view key, std::vector<std::pair<std::string, std::string>>* out);
  /// A nested map as options of its own (absent: an empty map).
  StepOptions child(std::string_view key);
  /// The raw value (nullptr if absent); marks the key as known.
  const OptionValue* raw(std::string_view key);

  /// Report an error at the key's position (or the step's, if absent).
  void error(std::string_view key, std::string_view message);
  /// Unknown keys become errors. Returns every error collected (Errc::kConfig), or OK.
  Status finish();

  const std::string& path() const { return path_; }

 private:
  const OptionValue* find(std::string_view key) const;
  std::string where(const OptionValue* v, std::string_view key) const;

  const OptionValue* value_;
  std::string file_, path_;
  std::vector<std::string> used_;
  std::shared_ptr<std::string> errors_;  // shared with children
};

/// Why a step failed an event.
struct StepError {
  bool transient = false;  // may succeed later: retried; counted by the step's breaker
  std::string kind;        // short label for metrics: "lookup", "http_503", "not_found", ...
  std::string message;     // one line, for the dead-letter headers and logs
};

/// True for errors worth retrying: unavailable, timeout, I/O, no space.
bool is_transient(const Status& s);

/// The event a step sees. A step may replace its JSON (the processor keeps the new text).
class ProcessorEvent {
 public:
  std::string_view json() const { return json_; }
  const simdjson::dom::element& doc() const { return doc_; }
  /// Replace the event with `json` (copied). Fails (kInvalidArgument) if it is not valid JSON;
  /// the event is then unchanged.
  Status replace(std::string_view json);
  /// Send the event to these topics instead of the processor's `output`.
  void route_to(const std::vector<std::string>* topics) { targets_ = topics; }

  std::string_view topic() const { return topic_; }
  uint32_t partition() const { return partition_; }
  int64_t offset() const { return offset_; }
  int64_t timestamp_ms() const { return timestamp_ms_; }
  const std::optional<std::string_view>& key() const { return key_; }
  /// A deterministic id of the input record: "<topic>/<partition>/<offset>". The same event
  /// processed again after a crash gets the same id, so sinks upsert by it (idempotent writes).
  const std::string& event_id() const {
    if (event_id_offset_ != offset_ || event_id_.empty()) build_event_id();
    return event_id_;
  }
  /// Index of the event within the current batch (for FlushFailure).
  size_t index() const { return index_; }

 private:
  friend class ProcessorEventAccess;
  std::string_view json_;
  simdjson::dom::element doc_;
  const std::vector<std::string>* targets_ = nullptr;
  std::string_view topic_;
  uint32_t partition_ = 0;
  int64_t offset_ = 0;
  int64_t timestamp_ms_ = 0;
  std::optional<std::string_view> key_;
  void build_event_id() const;
  mutable std::string event_id_;       // built on first use per event
  mutable int64_t event_id_offset_ = -1;
  size_t index_ = 0;
  struct Owned;
  std::shared_ptr<Owned> owned_;  // replaced texts and their parser
};

/// An event of the batch that flush() could not write, permanently.
struct FlushFailure {
  size_t index = 0;  // ProcessorEvent::index()
  StepError error;
};

enum class StepOutcome : uint8_t { kPass, kDrop, kError };

class EventProcessor {
 public:
  virtual ~EventProcessor() = default;
  virtual StepOutcome process(ProcessorEvent& event, StepError* error) = 0;
  virtual Status flush(std::vector<FlushFailure>* failed) {
    (void)failed;
    return Status::Ok();
  }
  virtual void discard() {}
  /// Name of the downstream this step calls ("redis://host:6379", "postgres:orders"), or ""
  /// if none. A step with a downstream gets a circuit breaker.
  virtual std::string downstream() const { return {}; }
  /// True if process() only buffers and flush() is what calls the downstream (sinks): the
  /// breaker then judges flush() alone, so that buffering cannot "win" a half-open probe.
  virtual bool calls_downstream_in_flush_only() const { return false; }
  /// Topics this step may route events to (checked to exist at start).
  virtual std::vector<std::string> output_topics() const { return {}; }
  /// Extra state for /status ("cache": {"hits": .., "misses": ..}), as JSON object members.
  /// Called from other threads than process(): read only atomics or lock.
  virtual std::string status_json() const { return {}; }
};

/// What a factory gets.
struct StepContext {
  const ProcessorConfig* processor = nullptr;
  const ProcessorStepConfig* step = nullptr;
  StepOptions* options = nullptr;  // the step's keys except `type`
  Log* log = nullptr;              // nullptr when only validating
  MetricsRegistry* metrics = nullptr;
  uint32_t worker = 0;             // worker thread index within the processor
  bool validate_only = false;      // `spate validate`: check, do not connect
};

using StepFactory = std::function<Result<std::unique_ptr<EventProcessor>>(StepContext& ctx)>;

/// Step types by name. Built-in types are registered on first use of global(); plugins add
/// theirs from spate_register_processors().
class ProcessorRegistry {
 public:
  static ProcessorRegistry& global();
  /// Fails (kAlreadyExists) if the type is taken.
  Status add(std::string type, std::string description, StepFactory factory);
  const StepFactory* find(std::string_view type) const;
  std::vector<std::pair<std::string, std::string>> types() const;  // name, description

 private:
  std::map<std::string, std::pair<std::string, StepFactory>, std::less<>> types_;
};

/// Load a shared library and call its `extern "C" void spate_register_processors(
/// spate::ProcessorRegistry*)`. Loading the same path twice is a no-op.
Status load_processor_plugin(const std::string& path);

}  // namespace spate

/// The symbol a plugin exports (see examples/custom_processor/).
extern "C" void spate_register_processors(spate::ProcessorRegistry* registry);
