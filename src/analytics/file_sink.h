// FileResultSink: window results appended to a file as NDJSON (result sink kind `file`), one
// line per emission:
//   {"analytics":"a","window_start":0,"window_end":60000,"key":{"user":"ann"},
//    "result":{...},"updates":0,"final":false,"updated_at":1764650000000}
// It is an upsert log, not a table: a re-emission (late update) or a replay after a restart
// appends another line, and readers keep the last line per (analytics, window_start, key) —
// or, to apply the other kinds' rule exactly, the line with the highest `updates` (the later on
// a tie). The file is never compacted.
//
// Contract: open() creates the directory and cuts off an incomplete last line (a write torn by
// a crash). write() appends a batch and fsyncs it: every line or (the file cut back to its size
// before the write) none; a failure that cannot be undone makes the next write() reopen the
// file (which cuts a torn tail again). Errors are kIo/kNoSpace from the FileSystem. Not
// thread-safe; one writer per file (several jobs may share one only from one process).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analytics/result_sink.h"
#include "base/fs.h"
#include "spate/status.h"

namespace spate::analytics {

class FileResultSink final : public ResultSink {
 public:
  explicit FileResultSink(std::string path, FileSystem* fs = default_fs());

  Status open() override;
  Status write(const std::vector<WindowResultRow>& rows, int64_t now_ms) override;
  std::string describe() const override { return "file " + path_; }

 private:
  std::string path_;
  FileSystem* fs_;
  std::unique_ptr<WritableFile> file_;
};

}  // namespace spate::analytics
