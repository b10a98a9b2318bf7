// PostgresResultSink: window results upserted into a PostgreSQL table (result sink kind
// `postgres`), keyed by (analytics, window_start, key).
//
// Table (created if missing):
//   CREATE TABLE <table> (analytics text, window_start bigint, window_end bigint, key jsonb,
//     result jsonb, updates int, final bool, updated_at timestamptz,
//     PRIMARY KEY (analytics, window_start, key))
// `key` is the group-by key, `result` the whole result (query it with ->, ->>), `updates` the
// emission number, `updated_at` the engine's clock at the write.
//
// Contract: open() connects and creates the table. write() upserts a batch in one transaction
// (multi-row INSERT ... ON CONFLICT DO UPDATE, 500 rows a statement): all rows or none. A row
// replaces the stored one only if its `updates` is >= the stored one, so a replayed older
// emission never overwrites a newer one. Failures: kUnavailable for a lost connection or a
// transient server error (the next write() reconnects), kTimeout, kInvalidArgument for other
// server errors (the message and SQLSTATE). describe() and every message name the server without
// user or password. Not thread-safe: one engine thread owns it (libpq stays in the .cc files).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analytics/result_sink.h"
#include "spate/status.h"

namespace spate::analytics {

struct PostgresSinkOptions {
  std::string conninfo;  // libpq connection string or postgresql:// URL (secret)
  std::string table;
  int64_t connect_timeout_ms = 5'000;
  int64_t timeout_ms = 30'000;  // per statement
};

class PostgresResultSink final : public ResultSink {
 public:
  explicit PostgresResultSink(PostgresSinkOptions options);
  ~PostgresResultSink() override;
  PostgresResultSink(const PostgresResultSink&) = delete;
  PostgresResultSink& operator=(const PostgresResultSink&) = delete;

  Status open() override;
  Status write(const std::vector<WindowResultRow>& rows, int64_t now_ms) override;
  std::string describe() const override { return "postgres " + where_; }

 private:
  Status connect();
  Status run(const std::string& sql, const std::vector<const char*>& params);
  Status upsert(const std::vector<const WindowResultRow*>& rows, const std::string& now);

  PostgresSinkOptions o_;
  std::string where_;  // postgres://host:port/db/table, no credentials
  struct Conn;
  std::unique_ptr<Conn> conn_;
};

}  // namespace spate::analytics
