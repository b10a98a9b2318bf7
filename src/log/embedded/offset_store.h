// OffsetStore: durable committed offsets of consumer groups (group, topic, partition) -> offset.
//
// Contract: thread-safe. commit() appends one CRC-protected record to `offsets.log` and fsyncs
// before returning; on open the file is replayed up to the first torn/corrupt record, which is
// truncated away. The file is compacted (rewritten atomically) when it grows well past the live
// state.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "base/fs.h"
#include "spate/status.h"

namespace spate {

class OffsetStore {
 public:
  OffsetStore(FileSystem* fs, std::string dir);
  Status open();
  Status commit(std::string_view group, std::string_view topic,
                const std::map<uint32_t, int64_t>& offsets);
  std::optional<int64_t> get(std::string_view group, std::string_view topic,
                             uint32_t partition) const;
  Status close();

 private:
  Status compact_locked();
  static std::string encode(std::string_view group, std::string_view topic,
                            const std::map<uint32_t, int64_t>& offsets);

  FileSystem* fs_;
  std::string dir_, path_;
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, uint32_t>, int64_t> offsets_;
  std::unique_ptr<WritableFile> file_;
};

}  // namespace spate
