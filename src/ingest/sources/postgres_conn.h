// PgConnection: the postgres source's thin wrapper over one libpq connection (libpq stays
// inside postgres_conn.cc).
//
// Contract: one thread uses a PgConnection; only wake() may be called from another thread.
// Every wait (connect, query) polls the socket together with a wake-up eventfd, so wake() makes
// the current and every later call return promptly with kUnavailable ("stopping") — it is
// sticky, meant for stopping. Failures are Status values (kUnavailable for connection problems,
// kInvalidArgument for errors the server reports about the SQL, kTimeout for a connect
// timeout); after any failure connected() tells whether the connection is still usable.
// Nothing throws.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/sources/postgres_codec.h"
#include "spate/status.h"

struct pg_conn;

namespace spate::ingest::pg {

/// Check a libpq connection string or postgres:// URL without connecting. Empty if fine,
/// else libpq's reason.
std::string check_conninfo(const std::string& conninfo);

/// "postgres://host:port/dbname" of a connection string or URL, without user or password (for
/// logs and metric labels); host localhost and port 5432 when not given.
std::string describe_conninfo(const std::string& conninfo);

/// One row: values in column order, nullopt for NULL. Views are valid during the call only.
using RowFn = std::function<void(const std::vector<Column>& columns,
                                 const std::vector<std::optional<std::string_view>>& values)>;

class PgConnection {
 public:
  PgConnection();
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  /// Connect (closing any previous connection). `application_name` is a fallback the
  /// connection string may override. Fails with kTimeout after `timeout_ms`.
  Status connect(const std::string& conninfo, const std::string& application_name,
                 int64_t timeout_ms);
  bool connected() const;
  void close();

  /// Run statements that return no rows (e.g. SET ...; SET ...).
  Status exec(const std::string& sql);

  /// Run `sql` with `param` as $1 (text, type inferred by the server) and hand the first
  /// `max_rows` rows to `on_row` as they arrive; the rest is cancelled and discarded and
  /// `*truncated` is set. On a failure part of the rows may already have been handed over.
  /// `timeout_ms` > 0 bounds the wait for the whole result: past it the connection is closed
  /// and kTimeout returned (a hung server does not hang the caller).
  Status query(const std::string& sql, const std::string& param, size_t max_rows,
               const RowFn& on_row, bool* truncated, int64_t timeout_ms = 0);

  /// From any thread: make current and later waits return kUnavailable("stopping").
  void wake();

 private:
  enum class Wait { kReady, kWoken, kTimeout, kFailed };
  Wait wait_socket(bool for_write, int64_t deadline_ns);
  Status drain_and_fail(Status s);
  Status error_status(std::string_view what);

  pg_conn* conn_ = nullptr;
  int wake_fd_ = -1;
};

}  // namespace spate::ingest::pg
