// SqliteResultSink: window results upserted into a SQLite table (the embedded default results
// store), keyed by (analytics, window_start, key) so that re-emissions (late updates) and the
// replays after a restart overwrite a row instead of adding one.
//
// Table (created if missing):
//   CREATE TABLE <table> (analytics TEXT, window_start INTEGER, window_end INTEGER, key TEXT,
//     result TEXT, updates INTEGER, final INTEGER, updated_at INTEGER,
//     PRIMARY KEY (analytics, window_start, key))
// `key` is the group-by key as JSON ({"user":"ann"}), `result` the whole result JSON (query it
// with SQLite's json_extract), `updates` the emission number, `final` 0/1, `updated_at` epoch ms.
//
// Contract: open() creates the file's directory and the table (WAL journal, synchronous=FULL so
// a write() that returned survives power loss). write() upserts a batch in one transaction: all
// rows or none (kIo with SQLite's message; a busy database is retried for up to 5 s). A row
// replaces the stored one only if its `updates` is >= the stored one (a replayed older emission
// never overwrites a newer one), as in every kind. Not thread-safe: one engine thread owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analytics/result_sink.h"
#include "spate/status.h"

namespace spate::analytics {

class SqliteResultSink final : public ResultSink {
 public:
  SqliteResultSink(std::string path, std::string table);
  ~SqliteResultSink();
  SqliteResultSink(const SqliteResultSink&) = delete;
  SqliteResultSink& operator=(const SqliteResultSink&) = delete;

  Status open() override;
  Status write(const std::vector<WindowResultRow>& rows, int64_t now_ms) override;
  std::string describe() const override { return "sqlite " + path_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string table_;
  struct Db;
  std::unique_ptr<Db> db_;
};

}  // namespace spate::analytics
