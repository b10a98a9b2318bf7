// ProcessorEventAccess: the stream processor's write access to ProcessorEvent's fields (the
// public header exposes only getters to steps). Internal to src/process.
#pragma once

#include <deque>
#include <string>

#include "spate/log.h"
#include "spate/processor_api.h"

namespace spate {

class ProcessorEventAccess {
 public:
  /// Point the event at input record `r` (parsed as `doc`) of topic/partition, batch index `i`.
  static void reset(ProcessorEvent& e, std::string_view topic, uint32_t partition,
                    const RecordView& r, const simdjson::dom::element& doc, size_t i) {
    e.json_ = r.value;
    e.doc_ = doc;
    e.targets_ = nullptr;
    e.topic_ = topic;
    e.partition_ = partition;
    e.offset_ = r.offset;
    e.timestamp_ms_ = r.timestamp_ms;
    e.key_ = r.has_key ? std::optional<std::string_view>(r.key) : std::nullopt;
    e.event_id_.clear();  // event_id() builds it when a step asks
    e.index_ = i;
  }
  /// Set the event's text and parse (already stable, e.g. in the batch's storage).
  static void set(ProcessorEvent& e, std::string_view json, const simdjson::dom::element& doc) {
    e.json_ = json;
    e.doc_ = doc;
  }
  static const std::vector<std::string>* targets(const ProcessorEvent& e) { return e.targets_; }
  /// The batch storage replace() copies into; must be set before steps run.
  static std::deque<std::string>*& texts(ProcessorEvent& e);
};

}  // namespace spate
