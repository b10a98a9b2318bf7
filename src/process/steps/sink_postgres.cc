// kind: postgres — rows upserted by event id: one multi-row INSERT ... ON CONFLICT (id) DO
// UPDATE per chunk, in one transaction per flush; a chunk that fails for a row's reason
// (constraint, bad value) is rolled back to its savepoint and written row by row to find the
// bad rows, which are reported as permanent per-event failures.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ingest/sources/postgres_codec.h"
#include "ingest/sources/postgres_conn.h"
#include "process/steps/sink.h"

namespace spate::process::sink {
namespace {

// Parameters per statement stay well under PostgreSQL's 65535.
constexpr size_t kMaxParams = 30'000;

enum class ErrorScope { kTransient, kRow, kBatch };

// By SQLSTATE class (PostgreSQL Appendix A). "" = no answer from the server.
ErrorScope classify(const std::string& sqlstate) {
  if (ingest::pg::transient_sqlstate(sqlstate)) return ErrorScope::kTransient;
  const std::string_view cls = std::string_view(sqlstate).substr(0, 2);
  if (cls == "22" || cls == "23") return ErrorScope::kRow;  // data exception, constraint
  return ErrorScope::kBatch;  // undefined table/column, permissions, syntax: the config
}

struct PgOptions {
  std::string conninfo;
  std::string table;
  std::string id_column = "event_id";
  std::vector<Field> columns;
  bool create_table = false;
  int64_t connect_timeout_ms = 5'000;
  int64_t timeout_ms = 30'000;
  int64_t chunk_rows = 500;
};

class PostgresSink final : public EventProcessor {
 public:
  PostgresSink(PgOptions o, std::string processor, MetricsRegistry* metrics)
      : o_(std::move(o)),
        processor_(std::move(processor)),
        downstream_(ingest::pg::describe_conninfo(o_.conninfo) + "/" + o_.table),
        metrics_(metrics, processor_, "postgres", downstream_) {
    const size_t per_row = o_.columns.size() + 1;
    chunk_ = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(o_.chunk_rows),
                                                  kMaxParams / per_row));
    std::string cols = ingest::pg::quote_ident(o_.id_column);
    std::string updates;
    for (const Field& f : o_.columns) {
      const std::string c = ingest::pg::quote_ident(f.name);
      cols += "," + c;
      updates += fmt::format("{}{}=EXCLUDED.{}", updates.empty() ? "" : ",", c, c);
    }
    insert_head_ = fmt::format("INSERT INTO {} ({}) VALUES ", ingest::pg::quote_qualified(o_.table), cols);
    insert_tail_ = updates.empty()
                       ? fmt::format(" ON CONFLICT ({}) DO NOTHING", ingest::pg::quote_ident(o_.id_column))
                       : fmt::format(" ON CONFLICT ({}) DO UPDATE SET {}",
                                     ingest::pg::quote_ident(o_.id_column), updates);
  }

  StepOutcome process(ProcessorEvent& ev, StepError*) override {
    Row r;
    r.index = ev.index();
    r.values.reserve(o_.columns.size() + 1);
    r.values.emplace_back(ev.event_id());
    for (const Field& f : o_.columns) r.values.push_back(f.eval(ev));
    rows_.push_back(std::move(r));
    return StepOutcome::kPass;
  }

  Status flush(std::vector<FlushFailure>* failed) override {
    if (rows_.empty()) return Status::Ok();
    const int64_t t0 = steady_ns();
    Status s = write(failed);
    if (!s.ok()) {
      failed->clear();  // the engine retries or replays the whole batch
      metrics_.failure(is_transient(s) ? "transient" : "batch");
      spdlog::debug("postgres sink {}: {}", downstream_, s.to_string());
      if (conn_.connected()) (void)run("ROLLBACK", {});
      return s.with_context(downstream_);
    }
    metrics_.flushed(t0, rows_.size() - failed->size(), failed->size());
    rows_.clear();
    return Status::Ok();
  }

  void discard() override { rows_.clear(); }
  std::string downstream() const override { return downstream_; }
  bool calls_downstream_in_flush_only() const override { return true; }

 private:
  struct Row {
    size_t index = 0;
    std::vector<std::optional<std::string>> values;  // id first
  };

  Status run(const std::string& sql, const std::vector<const char*>& params,
             std::string* sqlstate = nullptr) {
    std::string state;
    Status s = conn_.exec_params(sql, params, o_.timeout_ms, &state);
    if (sqlstate != nullptr) *sqlstate = state;
    // A server error: transient ones become kUnavailable so the engine retries them.
    return ingest::pg::retryable_status(std::move(s), state);
  }

  Status connect() {
    if (conn_.connected()) return Status::Ok();
    SPATE_RETURN_IF_ERROR(conn_.connect(o_.conninfo, "spate-sink-" + processor_, o_.connect_timeout_ms));
    if (o_.create_table && !table_checked_) {
      std::string cols = ingest::pg::quote_ident(o_.id_column) + " text PRIMARY KEY";
      for (const Field& f : o_.columns) {
        cols += fmt::format(", {} {}", ingest::pg::quote_ident(f.name), f.whole_event ? "jsonb" : "text");
      }
      std::string state;
      Status s = run(fmt::format("CREATE TABLE IF NOT EXISTS {} ({})",
                                 ingest::pg::quote_qualified(o_.table), cols), {}, &state);
      // Two workers creating at once: one of them gets unique_violation on the catalog.
      if (!s.ok() && state != "23505" && state != "42P07") return s;
      table_checked_ = true;
    }
    return Status::Ok();
  }

  // INSERT rows [from, to) of rows_.
  Status insert(size_t from, size_t to, std::string* sqlstate) {
    const size_t width = o_.columns.size() + 1;
    std::string sql = insert_head_;
    std::vector<const char*> params;
    params.reserve((to - from) * width);
    size_t n = 1;
    for (size_t i = from; i < to; ++i) {
      sql += i == from ? "(" : ",(";
      for (size_t c = 0; c < width; ++c) {
        sql += fmt::format("{}${}", c == 0 ? "" : ",", n++);
        const auto& v = rows_[i].values[c];
        params.push_back(v ? v->c_str() : nullptr);
      }
      sql += ')';
    }
    sql += insert_tail_;
    return run(sql, params, sqlstate);
  }

  Status write(std::vector<FlushFailure>* failed) {
    SPATE_RETURN_IF_ERROR(connect());
    SPATE_RETURN_IF_ERROR(run("BEGIN", {}));
    for (size_t from = 0; from < rows_.size(); from += chunk_) {
      const size_t to = std::min(rows_.size(), from + chunk_);
      SPATE_RETURN_IF_ERROR(run("SAVEPOINT chunk", {}));
      std::string state;
      Status s = insert(from, to, &state);
      if (s.ok()) continue;
      if (is_transient(s) || classify(state) != ErrorScope::kRow) return s;
      // A row's fault: find it (them) one row at a time, each in a savepoint of its own.
      SPATE_RETURN_IF_ERROR(run("ROLLBACK TO SAVEPOINT chunk", {}));
      for (size_t i = from; i < to; ++i) {
        SPATE_RETURN_IF_ERROR(run("SAVEPOINT one", {}));
        Status r = insert(i, i + 1, &state);
        if (r.ok()) continue;
        if (is_transient(r) || classify(state) != ErrorScope::kRow) return r;
        SPATE_RETURN_IF_ERROR(run("ROLLBACK TO SAVEPOINT one", {}));
        failed->push_back({rows_[i].index, StepError{false, "postgres_" + state, r.message()}});
      }
    }
    return run("COMMIT", {});
  }

  PgOptions o_;
  std::string processor_;
  std::string downstream_;
  SinkMetrics metrics_;
  size_t chunk_ = 500;
  std::string insert_head_, insert_tail_;
  ingest::pg::PgConnection conn_;
  bool table_checked_ = false;
  std::vector<Row> rows_;
};

}  // namespace

// {kind: postgres, url, table, columns: {col: EXPR | $}, id_column: event_id, create_table,
//  connect_timeout: 5s, timeout: 30s, chunk_rows: 500}
Result<std::unique_ptr<EventProcessor>> make_postgres_sink(StepContext& ctx) {
  StepOptions& o = *ctx.options;
  PgOptions p;
  if (o.get_string("url", &p.conninfo, true)) {
    if (std::string e = ingest::pg::check_conninfo(p.conninfo); !e.empty()) o.error("url", e);
  }
  o.get_string("table", &p.table, true);
  o.get_string("id_column", &p.id_column);
  std::vector<std::pair<std::string, std::string>> cols;
  if (!o.get_string_map("columns", &cols) && !o.has("columns")) cols = {{"payload", "$"}};
  p.columns = compile_fields(o, "columns", cols);
  for (const Field& f : p.columns) {
    if (f.name == p.id_column) o.error("columns", f.name + ": is the id_column (filled with the event id)");
  }
  o.get_bool("create_table", &p.create_table);
  o.get_duration_ms("connect_timeout", &p.connect_timeout_ms, 1, 600'000);
  o.get_duration_ms("timeout", &p.timeout_ms, 1, 3'600'000);
  o.get_int("chunk_rows", &p.chunk_rows, 1, 10'000);
  SPATE_RETURN_IF_ERROR(o.finish());
  return std::unique_ptr<EventProcessor>(new PostgresSink(std::move(p), ctx.processor->name, ctx.metrics));
}

}  // namespace spate::process::sink
