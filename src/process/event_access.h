// ProcessorEventAccess: the stream processor's write access to ProcessorEvent's fields (the
// public header exposes only getters to steps). Internal to src/process.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "spate/log.h"
#include "spate/processor_api.h"

namespace spate {

/// A batch's storage for event texts (replaced events, dead-letter header values): add()
/// copies bytes to an address that stays valid until clear(). Chunks are kept across clear(),
/// so once a batch's texts fit, adding allocates nothing (a memcpy per text). One thread.
class TextArena {
 public:
  std::string_view add(std::string_view s) {
    while (cur_ < chunks_.size() && used_ + s.size() > chunks_[cur_].size) {
      ++cur_;
      used_ = 0;
    }
    if (cur_ == chunks_.size()) {
      const size_t n = std::max(kChunkBytes, s.size());
      chunks_.push_back({std::make_unique<char[]>(n), n});
      used_ = 0;
    }
    char* p = chunks_[cur_].data.get() + used_;
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    used_ += s.size();
    return {p, s.size()};
  }
  /// Forget every text (their views become invalid); keep the memory.
  void clear() {
    cur_ = 0;
    used_ = 0;
  }

 private:
  static constexpr size_t kChunkBytes = 256 << 10;
  struct Chunk {
    std::unique_ptr<char[]> data;
    size_t size;
  };
  std::vector<Chunk> chunks_;
  size_t cur_ = 0;   // the chunk being filled
  size_t used_ = 0;  // bytes used in it
};

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
  static TextArena*& texts(ProcessorEvent& e);
};

}  // namespace spate
