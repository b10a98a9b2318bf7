#include "analytics/postgres_sink.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "ingest/sources/postgres_codec.h"
#include "ingest/sources/postgres_conn.h"

namespace spate::analytics {
namespace {

constexpr size_t kChunkRows = 500;  // 7 parameters a row: far below PostgreSQL's 65535
constexpr size_t kParamsPerRow = 7;

}  // namespace

struct PostgresResultSink::Conn {
  ingest::pg::PgConnection pg;
};

PostgresResultSink::PostgresResultSink(PostgresSinkOptions options)
    : o_(std::move(options)),
      where_(ingest::pg::describe_conninfo(o_.conninfo) + "/" + o_.table),
      conn_(std::make_unique<Conn>()) {}

PostgresResultSink::~PostgresResultSink() = default;

Status PostgresResultSink::run(const std::string& sql, const std::vector<const char*>& params) {
  std::string state;
  Status s = conn_->pg.exec_params(sql, params, o_.timeout_ms, &state);
  return ingest::pg::retryable_status(std::move(s), state);
}

// (Re)connect and create the table if missing; a no-op while connected.
Status PostgresResultSink::connect() {
  if (conn_->pg.connected()) return Status::Ok();
  SPATE_RETURN_IF_ERROR(conn_->pg.connect(o_.conninfo, "spate-analytics", o_.connect_timeout_ms));
  // libpq prints notices to stderr: "relation ... already exists, skipping" on every connect.
  SPATE_RETURN_IF_ERROR(run("SET client_min_messages TO warning", {}));
  std::string state;
  Status s = conn_->pg.exec_params(
      "CREATE TABLE IF NOT EXISTS " + ingest::pg::quote_qualified(o_.table) +
          " (analytics text NOT NULL, window_start bigint NOT NULL, window_end bigint NOT NULL,"
          " key jsonb NOT NULL, result jsonb NOT NULL, updates int NOT NULL, final bool NOT NULL,"
          " updated_at timestamptz NOT NULL, PRIMARY KEY (analytics, window_start, key))",
      {}, o_.timeout_ms, &state);
  // Two writers creating it at once: one gets unique_violation on the catalog.
  if (!s.ok() && state != "23505" && state != "42P07") {
    return ingest::pg::retryable_status(std::move(s), state);
  }
  return Status::Ok();
}

Status PostgresResultSink::open() {
  return connect().with_context(describe());
}

Status PostgresResultSink::upsert(const std::vector<const WindowResultRow*>& rows,
                                  const std::string& now) {
  std::string sql = "INSERT INTO " + ingest::pg::quote_qualified(o_.table) +
                    " AS cur (analytics, window_start, window_end, key, result, updates, final,"
                    " updated_at) VALUES ";
  std::vector<std::string> numbers;  // the integer parameters, as text
  numbers.reserve(rows.size() * 3);
  for (const WindowResultRow* r : rows) {
    numbers.push_back(std::to_string(r->window_start));
    numbers.push_back(std::to_string(r->window_end));
    numbers.push_back(std::to_string(r->updates));
  }
  std::vector<const char*> params;
  params.reserve(rows.size() * kParamsPerRow + 1);
  const size_t now_param = rows.size() * kParamsPerRow + 1;
  for (size_t i = 0; i < rows.size(); ++i) {
    const WindowResultRow& r = *rows[i];
    const size_t p = i * kParamsPerRow + 1;
    fmt::format_to(std::back_inserter(sql),
                   "{}(${}::text,${}::bigint,${}::bigint,${}::jsonb,${}::jsonb,${}::int,${}::bool,"
                   "to_timestamp(${}::double precision / 1000))",
                   i == 0 ? "" : ",", p, p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, now_param);
    params.insert(params.end(),
                  {r.analytics.c_str(), numbers[i * 3].c_str(), numbers[i * 3 + 1].c_str(),
                   r.key_json.c_str(), r.result_json.c_str(), numbers[i * 3 + 2].c_str(),
                   r.final ? "true" : "false"});
  }
  params.push_back(now.c_str());
  sql +=
      " ON CONFLICT (analytics, window_start, key) DO UPDATE SET window_end = EXCLUDED.window_end,"
      " result = EXCLUDED.result, updates = EXCLUDED.updates, final = EXCLUDED.final,"
      " updated_at = EXCLUDED.updated_at WHERE cur.updates <= EXCLUDED.updates";
  return run(sql, params);
}

Status PostgresResultSink::write(const std::vector<WindowResultRow>& rows, int64_t now_ms) {
  if (rows.empty()) return Status::Ok();
  // One row per (analytics, window_start, key) and statement (ON CONFLICT cannot touch a row
  // twice): the highest `updates`, the later one on a tie.
  std::map<std::tuple<std::string_view, int64_t, std::string_view>, size_t> index;
  std::vector<const WindowResultRow*> unique;
  unique.reserve(rows.size());
  for (const WindowResultRow& r : rows) {
    auto [it, added] = index.try_emplace({r.analytics, r.window_start, r.key_json}, unique.size());
    if (added) {
      unique.push_back(&r);
    } else if (r.updates >= unique[it->second]->updates) {
      unique[it->second] = &r;
    }
  }
  Status s = connect();
  if (s.ok()) s = run("BEGIN", {});
  const std::string now = std::to_string(now_ms);
  for (size_t from = 0; s.ok() && from < unique.size(); from += kChunkRows) {
    const size_t to = std::min(unique.size(), from + kChunkRows);
    s = upsert(std::vector<const WindowResultRow*>(unique.begin() + static_cast<ptrdiff_t>(from),
                                                   unique.begin() + static_cast<ptrdiff_t>(to)),
               now);
  }
  if (s.ok()) s = run("COMMIT", {});
  if (!s.ok() && conn_->pg.connected()) (void)run("ROLLBACK", {});
  return s.with_context(describe());
}

}  // namespace spate::analytics
