// The file source's checkpoint: which files it reads, where it stands in each, and the log's
// end offsets before its first unacknowledged batch (the start of the crash-recovery scan).
//
// Contract: pure functions, thread-safe. encode() produces one small JSON document; decode()
// accepts exactly what encode() produces (fields in any order, unknown fields ignored) and
// returns kCorruption with a reason for anything else. Writing it atomically is the caller's
// job (FileSystem::write_file_atomic).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "spate/status.h"

namespace spate::ingest {

struct FileCheckpointEntry {
  uint64_t dev = 0;  // identity: st_dev, st_ino
  uint64_t ino = 0;
  uint64_t gen = 0;       // truncations seen so far (part of each line's position)
  uint64_t pos = 0;       // byte offset of the first line not yet acknowledged
  bool skipping = false;  // inside an over-long line: discard up to the next newline
  std::string path;       // where the file was last seen
};

struct FileCheckpoint {
  std::map<std::string, std::vector<int64_t>> end_offsets;  // topic -> per-partition offsets
  std::vector<FileCheckpointEntry> files;
};

std::string encode_file_checkpoint(const FileCheckpoint& cp);
Result<FileCheckpoint> decode_file_checkpoint(std::string_view text);

}  // namespace spate::ingest
