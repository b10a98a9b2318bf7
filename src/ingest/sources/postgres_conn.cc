#include "ingest/sources/postgres_conn.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace spate::ingest::pg {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// libpq messages end with a newline (and sometimes carry several lines): make one line.
std::string one_line(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s.empty() ? "unknown error" : s;
}

}  // namespace

std::string check_conninfo(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string e = err ? one_line(err) : "cannot parse the connection string (out of memory?)";
    if (err) PQfreemem(err);
    return e;
  }
  PQconninfoFree(opts);
  return "";
}

std::string describe_conninfo(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err) PQfreemem(err);
  if (opts == nullptr) return "?";
  std::string host, port, db, user;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    std::string_view k = o->keyword;
    if (k == "host" || (k == "hostaddr" && host.empty())) host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") db = o->val;
    if (k == "user") user = o->val;
  }
  PQconninfoFree(opts);
  if (host.empty()) host = "localhost";
  if (port.empty()) port = "5432";
  if (db.empty()) db = user;
  return "postgres://" + host + ":" + port + "/" + db;
}

bool transient_sqlstate(std::string_view sqlstate) {
  if (sqlstate.size() < 2) return true;
  const std::string_view cls = sqlstate.substr(0, 2);
  return cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58" ||
         sqlstate == "55P03";
}

Status retryable_status(Status s, std::string_view sqlstate) {
  if (s.ok() || s.code() != Errc::kInvalidArgument || !transient_sqlstate(sqlstate)) return s;
  return Unavailable(s.message() + " (" + std::string(sqlstate) + ")");
}

PgConnection::PgConnection() : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

PgConnection::~PgConnection() {
  close();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void PgConnection::wake() {
  uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) {
    // EAGAIN: the counter is already set, which is all we need.
  }
}

bool PgConnection::connected() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

void PgConnection::close() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

Status PgConnection::error_status(std::string_view what) {
  return Unavailable(std::string(what) + ": " + one_line(PQerrorMessage(conn_)));
}

PgConnection::Wait PgConnection::wait_socket(bool for_write, int64_t deadline_ns) {
  int sock = PQsocket(conn_);
  if (sock < 0 || wake_fd_ < 0) return Wait::kFailed;
  pollfd fds[2] = {{sock, static_cast<short>(for_write ? POLLOUT : POLLIN), 0},
                   {wake_fd_, POLLIN, 0}};
  while (true) {
    int timeout_ms = -1;
    if (deadline_ns > 0) {
      int64_t left = deadline_ns - now_ns();
      if (left <= 0) return Wait::kTimeout;
      timeout_ms = static_cast<int>(std::min<int64_t>((left + 999'999) / 1'000'000, 60'000));
    }
    int n = ::poll(fds, 2, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Wait::kFailed;
    }
    if (fds[1].revents != 0) return Wait::kWoken;
    if (fds[0].revents != 0) return Wait::kReady;  // errors too: libpq reports them
  }
}

Status PgConnection::connect(const std::string& conninfo, const std::string& application_name,
                             int64_t timeout_ms) {
  close();
  // Keywords are applied in order and the expanded connection string comes last, so it can
  // override these defaults (dead-peer detection within about a minute).
  const char* keys[] = {"fallback_application_name", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "dbname", nullptr};
  const char* vals[] = {application_name.c_str(), "30", "10", "3", conninfo.c_str(), nullptr};
  conn_ = PQconnectStartParams(keys, vals, 1);
  if (conn_ == nullptr) return Unavailable("connecting: libpq is out of memory");
  if (PQstatus(conn_) == CONNECTION_BAD) {
    Status s = error_status("connecting");
    close();
    return s;
  }
  const int64_t deadline = now_ns() + timeout_ms * 1'000'000;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) {
      Status s = error_status("connecting");
      close();
      return s;
    }
    Wait w = wait_socket(st == PGRES_POLLING_WRITING, deadline);
    if (w != Wait::kReady) {
      close();
      if (w == Wait::kWoken) return Unavailable("stopping");
      if (w == Wait::kTimeout) return Timeout("connecting: no answer within the connect timeout");
      return Unavailable("connecting: waiting for the socket failed");
    }
    st = PQconnectPoll(conn_);
  }
  return Status::Ok();
}

Status PgConnection::drain_and_fail(Status s) {
  // The connection is mid-command and cannot be reused: drop it.
  close();
  return s;
}

Status PgConnection::exec(const std::string& sql) {
  if (!connected()) return Unavailable("not connected");
  if (!PQsendQuery(conn_, sql.c_str())) return drain_and_fail(error_status("sending"));
  return collect(0, nullptr);
}

Status PgConnection::exec_params(const std::string& sql, const std::vector<const char*>& params,
                                 int64_t timeout_ms, std::string* sqlstate) {
  if (sqlstate != nullptr) sqlstate->clear();
  if (!connected()) return Unavailable("not connected");
  if (!PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                         params.data(), nullptr, nullptr, 0)) {
    return drain_and_fail(error_status("sending"));
  }
  return collect(timeout_ms > 0 ? now_ns() + timeout_ms * 1'000'000 : 0, sqlstate);
}

Status PgConnection::collect(int64_t deadline_ns, std::string* sqlstate) {
  Status err;
  while (true) {
    while (PQisBusy(conn_)) {
      Wait w = wait_socket(false, deadline_ns);
      if (w == Wait::kWoken) return drain_and_fail(Unavailable("stopping"));
      if (w == Wait::kTimeout) {
        if (PGcancel* c = PQgetCancel(conn_)) {
          char buf[256];
          (void)PQcancel(c, buf, sizeof buf);
          PQfreeCancel(c);
        }
        return drain_and_fail(Timeout("no answer from the server within the timeout"));
      }
      if (w != Wait::kReady) return drain_and_fail(Unavailable("waiting for the socket failed"));
      if (!PQconsumeInput(conn_)) return drain_and_fail(error_status("reading"));
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && err.ok()) {
      err = InvalidArgument(one_line(PQresultErrorMessage(r)));
      const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      if (sqlstate != nullptr && code != nullptr) *sqlstate = code;
    }
    PQclear(r);
  }
  if (!err.ok() && !connected()) {
    if (sqlstate != nullptr) sqlstate->clear();
    return drain_and_fail(Unavailable(err.message()));
  }
  return err;
}

Status PgConnection::query(const std::string& sql, const std::string& param, size_t max_rows,
                           const RowFn& on_row, bool* truncated, int64_t timeout_ms) {
  *truncated = false;
  const int64_t deadline = timeout_ms > 0 ? now_ns() + timeout_ms * 1'000'000 : 0;
  if (!connected()) return Unavailable("not connected");
  const char* params[1] = {param.c_str()};
  if (!PQsendQueryParams(conn_, sql.c_str(), 1, nullptr, params, nullptr, nullptr, 0)) {
    return drain_and_fail(error_status("sending the query"));
  }
  // Rows arrive one PGresult each, so memory stays at one row however large the result.
  (void)PQsetSingleRowMode(conn_);
  std::vector<Column> columns;
  std::vector<std::optional<std::string_view>> values;
  size_t rows = 0;
  bool cancelled = false;
  Status err;
  while (true) {
    while (PQisBusy(conn_)) {
      Wait w = wait_socket(false, deadline);
      if (w == Wait::kWoken) return drain_and_fail(Unavailable("stopping"));
      if (w == Wait::kTimeout) {
        return drain_and_fail(Timeout("no result within " + std::to_string(timeout_ms) + " ms"));
      }
      if (w != Wait::kReady) return drain_and_fail(Unavailable("waiting for the socket failed"));
      if (!PQconsumeInput(conn_)) return drain_and_fail(error_status("reading the result"));
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) {
      const int nt = PQntuples(r);
      const int nf = PQnfields(r);
      if (nt > 0 && columns.empty()) {
        for (int f = 0; f < nf; ++f) columns.push_back({PQfname(r, f), PQftype(r, f)});
        values.resize(static_cast<size_t>(nf));
      }
      for (int t = 0; t < nt && err.ok(); ++t) {
        if (rows >= max_rows) {
          if (!cancelled) {
            cancelled = true;
            *truncated = true;
            if (PGcancel* c = PQgetCancel(conn_)) {
              char buf[256];
              (void)PQcancel(c, buf, sizeof buf);
              PQfreeCancel(c);
            }
          }
          break;
        }
        for (int f = 0; f < nf; ++f) {
          if (PQgetisnull(r, t, f)) {
            values[static_cast<size_t>(f)] = std::nullopt;
          } else {
            values[static_cast<size_t>(f)] = std::string_view(
                PQgetvalue(r, t, f), static_cast<size_t>(PQgetlength(r, t, f)));
          }
        }
        on_row(columns, values);
        ++rows;
      }
    } else if (st == PGRES_FATAL_ERROR) {
      const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      bool our_cancel = cancelled && code != nullptr && std::string_view(code) == "57014";
      if (!our_cancel && err.ok()) err = InvalidArgument(one_line(PQresultErrorMessage(r)));
    } else if (st != PGRES_COMMAND_OK && err.ok()) {
      err = InvalidArgument(std::string("unexpected result: ") + PQresStatus(st));
    }
    PQclear(r);
  }
  if (!err.ok() && !connected()) return drain_and_fail(Unavailable(err.message()));
  return err;
}

}  // namespace spate::ingest::pg
