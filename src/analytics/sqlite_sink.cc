#include "analytics/sqlite_sink.h"

#include <sqlite3.h>

#include <filesystem>

namespace spate::analytics {

struct SqliteResultSink::Db {
  sqlite3* db = nullptr;
  sqlite3_stmt* upsert = nullptr;
  ~Db() {
    if (upsert != nullptr) sqlite3_finalize(upsert);
    if (db != nullptr) sqlite3_close(db);
  }
  Status error(const std::string& what) const {
    return IoError("sqlite " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
  }
  Status exec(const std::string& sql) const {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : "unknown error";
      sqlite3_free(err);
      return IoError("sqlite: " + m + " (in: " + sql.substr(0, 80) + ")");
    }
    return Status::Ok();
  }
};

SqliteResultSink::SqliteResultSink(std::string path, std::string table)
    : path_(std::move(path)), table_(std::move(table)) {}

SqliteResultSink::~SqliteResultSink() = default;

Status SqliteResultSink::open() {
  std::error_code ec;
  const auto dir = std::filesystem::path(path_).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  auto db = std::make_unique<Db>();
  if (sqlite3_open_v2(path_.c_str(), &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    return db->error("opening " + path_);
  }
  sqlite3_busy_timeout(db->db, 5000);
  // The table name is checked by the config loader ([a-zA-Z0-9_.-]); quote it anyway.
  const std::string t = "\"" + table_ + "\"";
  SPATE_RETURN_IF_ERROR(db->exec("PRAGMA journal_mode=WAL"));
  SPATE_RETURN_IF_ERROR(db->exec("PRAGMA synchronous=FULL"));
  SPATE_RETURN_IF_ERROR(db->exec(
      "CREATE TABLE IF NOT EXISTS " + t +
      " (analytics TEXT NOT NULL, window_start INTEGER NOT NULL, window_end INTEGER NOT NULL,"
      " key TEXT NOT NULL, result TEXT NOT NULL, updates INTEGER NOT NULL, final INTEGER NOT NULL,"
      " updated_at INTEGER NOT NULL, PRIMARY KEY (analytics, window_start, key))"));
  const std::string sql =
      "INSERT INTO " + t +
      " (analytics, window_start, window_end, key, result, updates, final, updated_at)"
      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (analytics, window_start, key) DO"
      " UPDATE SET window_end = excluded.window_end, result = excluded.result,"
      " updates = excluded.updates, final = excluded.final, updated_at = excluded.updated_at"
      " WHERE updates <= excluded.updates";
  if (sqlite3_prepare_v2(db->db, sql.c_str(), -1, &db->upsert, nullptr) != SQLITE_OK) {
    return db->error("preparing the upsert into " + table_);
  }
  db_ = std::move(db);
  return Status::Ok();
}

Status SqliteResultSink::write(const std::vector<WindowResultRow>& rows, int64_t now_ms) {
  if (!db_) return Unavailable("sqlite sink not open");
  if (rows.empty()) return Status::Ok();
  SPATE_RETURN_IF_ERROR(db_->exec("BEGIN IMMEDIATE"));
  for (const WindowResultRow& r : rows) {
    sqlite3_stmt* st = db_->upsert;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, r.analytics.data(), static_cast<int>(r.analytics.size()), SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r.window_start);
    sqlite3_bind_int64(st, 3, r.window_end);
    sqlite3_bind_text(st, 4, r.key_json.data(), static_cast<int>(r.key_json.size()), SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r.result_json.data(), static_cast<int>(r.result_json.size()),
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r.updates);
    sqlite3_bind_int(st, 7, r.final ? 1 : 0);
    sqlite3_bind_int64(st, 8, now_ms);
    if (sqlite3_step(st) != SQLITE_DONE) {
      Status s = db_->error("upserting into " + table_);
      sqlite3_reset(st);
      (void)db_->exec("ROLLBACK");
      return s;
    }
  }
  sqlite3_reset(db_->upsert);
  if (Status s = db_->exec("COMMIT"); !s.ok()) {
    (void)db_->exec("ROLLBACK");
    return s;
  }
  return Status::Ok();
}

}  // namespace spate::analytics

