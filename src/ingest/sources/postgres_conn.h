// PgConnection: a thin wrapper over one libpq connection (libpq stays inside postgres_conn.cc),
// used by the postgres source and the processor's postgres sink.
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

/// "postgres://host:port/dbname" of a connection string or URL, without user or password (for logs,
/// metrics and breaker names); libpq's defaults where absent (localhost, 5432, the user).
std::string describe_conninfo(const std::string& conninfo);

/// Whether a server error is worth retrying, by SQLSTATE (PostgreSQL Appendix A): connection
/// (08), serialization/deadlock (40), resources (53), shutdown (57), system (58), lock not
/// available (55P03), and "" (no answer from the server, e.g. a lost connection).
bool transient_sqlstate(std::string_view sqlstate);

/// The result of exec_params() with a server-reported error (kInvalidArgument) whose SQLSTATE is
/// transient turned into kUnavailable ("... (SQLSTATE)"), so that callers retry it; other
/// results unchanged.
Status retryable_status(Status s, std::string_view sqlstate);

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

  /// Run one statement with text parameters $1..$n (nullptr = NULL; types inferred by the
  /// server) that returns no rows. Bounded: after `timeout_ms` (0 = unbounded) the statement is
  /// cancelled, the connection dropped and kTimeout returned. A server-reported error returns
  /// kInvalidArgument with the message and its SQLSTATE in *sqlstate (5 characters; "" when
  /// the failure was not the server's answer, e.g. a lost connection: kUnavailable).
  Status exec_params(const std::string& sql, const std::vector<const char*>& params,
                     int64_t timeout_ms, std::string* sqlstate);

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
  // Read every result of the command sent; the first error wins.
  Status collect(int64_t deadline_ns, std::string* sqlstate);
  Status error_status(std::string_view what);

  pg_conn* conn_ = nullptr;
  int wake_fd_ = -1;
};

}  // namespace spate::ingest::pg
