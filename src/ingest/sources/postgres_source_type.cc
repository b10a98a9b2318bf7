// Source type "postgres": polls a query with a cursor column and ingests each row as a JSON
// event; the cursor is checkpointed so that a restart resumes exactly. Options (docs/sources.md):
//   url:            libpq connection string or postgres:// URL (default: $POSTGRES_URL)
//   query:          a SELECT using $1 as the cursor, e.g.
//                   SELECT * FROM orders WHERE id > $1 ORDER BY id LIMIT 1000
//   table:          instead of query: SELECT * FROM "table" WHERE "cursor_column" > $1
//                   ORDER BY "cursor_column" LIMIT batch_rows
//   cursor_column:  required; the column of the result holding the cursor (strictly increasing)
//   cursor_type:    integer (default) | timestamp | text
//   initial_cursor: where a new source starts (default 0 / -infinity / '')
//   poll_interval:  wait after a poll that found nothing new (default 1s)
//   batch_rows:     rows read per poll at most (the LIMIT of the table query; default 1000)
//
// Delivery: one NDJSON request per poll with event_positions = the rows' cursor values; the
// cursor advances (and is checkpointed with the log's end offsets) only after the engine
// acknowledged the batch. After a crash between append and checkpoint, the rows found in the
// log after the checkpointed offsets (stored_positions) are skipped when read again, so no row
// is skipped or stored twice.
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include "base/fs.h"
#include "base/json_escape.h"
#include "ingest/source.h"
#include "ingest/sources/postgres_codec.h"
#include "ingest/sources/postgres_conn.h"
#include "spate/metrics.h"

namespace spate::ingest {
namespace {

constexpr int64_t kConnectTimeoutMs = 10'000;
constexpr int64_t kMaxBackoffMs = 30'000;
constexpr const char* kCheckpointFile = "postgres.checkpoint";
struct PostgresOptions {
  std::string url;
  std::string query;  // as given, or built from table
  std::string table;
  std::string cursor_column;
  std::string cursor_type = "integer";
  std::string initial_cursor;
  int64_t poll_interval_ms = 1000;
  int64_t batch_rows = 1000;
};

Status read_options(const SourceConfig& cfg, PostgresOptions* o) {
  OptionReader r(cfg);
  if (r.get_string("url", &o->url)) {
    if (o->url.empty()) r.error("url", "must not be empty");
  } else if (const char* env = std::getenv("POSTGRES_URL"); env != nullptr && *env != '\0') {
    o->url = env;
  } else {
    r.error("url",
            "missing: set url (a libpq connection string or postgres:// URL) or the POSTGRES_URL "
            "environment variable");
  }
  if (!o->url.empty()) {
    std::string e = pg::check_conninfo(o->url);
    if (!e.empty()) {
      r.error("url", "not a valid connection string or URL: " + e);
    }
  }
  bool has_query = r.get_string("query", &o->query);
  bool has_table = r.get_string("table", &o->table);
  if (has_query && has_table) {
    r.error("table", "give either query or table, not both");
  } else if (!has_query && !has_table) {
    r.error("query", "missing required option (or give table to build the query)");
  }
  if (has_query) {
    std::string e = pg::check_query_placeholders(o->query);
    if (!e.empty()) r.error("query", e);
  }
  if (has_table) {
    bool ok = !o->table.empty() && o->table.front() != '.' && o->table.back() != '.' &&
              o->table.find("..") == std::string::npos;
    if (!ok) r.error("table", "expected a table name such as orders or sales.orders");
  }
  if (r.get_string("cursor_column", &o->cursor_column, true) && o->cursor_column.empty()) {
    r.error("cursor_column", "must not be empty");
  }
  r.get_enum("cursor_type", &o->cursor_type, {"integer", "timestamp", "text"});
  o->initial_cursor = o->cursor_type == "integer" ? "0" : o->cursor_type == "timestamp" ? "-infinity" : "";
  if (r.get_string("initial_cursor", &o->initial_cursor)) {
    int64_t v;
    if (o->cursor_type == "integer" && !pg::parse_int64(o->initial_cursor, &v)) {
      r.error("initial_cursor",
              fmt::format("expected an integer (cursor_type is integer), got \"{}\"", o->initial_cursor));
    } else if (o->cursor_type == "timestamp" && o->initial_cursor.empty()) {
      r.error("initial_cursor", "expected a timestamp such as 2024-01-01 00:00:00+00");
    }
  }
  r.get_duration_ms("poll_interval", &o->poll_interval_ms, 10, 3600LL * 1000);
  r.get_int("batch_rows", &o->batch_rows, 1, 1'000'000);
  if (has_table && !o->table.empty() && !o->cursor_column.empty()) {
    o->query = pg::build_table_query(o->table, o->cursor_column, o->batch_rows);
  }
  return r.finish();
}

// Rows of one poll, ready to submit.
struct Batch {
  std::vector<std::string> lines;      // one JSON object each (without newline)
  std::vector<std::string> positions;  // their cursor values
  std::vector<size_t> row_of_line;     // index of each line's row in the result
  std::vector<std::pair<size_t, std::string>> skipped;  // rows already in the log (crash recovery)
  std::vector<std::string> cursors;    // cursor value of every row read, in order
  size_t rows() const { return cursors.size(); }

  // Keep only the first `n` lines, and the rows read up to the last of them (the rest is read
  // again by the next poll). Returns the number of rows kept.
  void keep_lines(size_t n) {
    size_t end_row = row_of_line[n - 1] + 1;
    lines.resize(n);
    positions.resize(n);
    row_of_line.resize(n);
    std::erase_if(skipped, [&](const auto& s) { return s.first >= end_row; });
    cursors.resize(end_row);
  }
};

class PostgresSource final : public Source {
 public:
  PostgresSource(const SourceConfig& cfg, PostgresOptions opts, SourceContext& ctx)
      : name_(cfg.name),
        topic_(cfg.topic),
        opts_(std::move(opts)),
        engine_(ctx.engine),
        state_dir_(ctx.state_dir),
        checkpoint_path_(path_join(ctx.state_dir, kCheckpointFile)) {
    // A batch larger than the engine's queue would be refused forever (kOverloaded).
    max_cap_ = std::min(static_cast<size_t>(opts_.batch_rows),
                        std::max<size_t>(1, engine_->config().max_queue_size));
    cap_ = max_cap_;
    MetricsRegistry* m = ctx.metrics ? ctx.metrics : &global_metrics();
    MetricLabels l = {{"source", name_}};
    rows_ = &m->counter("ingestion_postgres_rows_total",
                        "Rows read from PostgreSQL and acknowledged by ingestion", l);
    skipped_ = &m->counter("ingestion_postgres_rows_skipped_total",
                           "Rows read again after a crash and not ingested twice (already in the log)", l);
    polls_ = &m->counter("ingestion_postgres_polls_total", "Queries run against PostgreSQL", l);
    errors_ = &m->counter("ingestion_postgres_errors_total",
                          "PostgreSQL source failures: connect, query, ingestion refusals, checkpoint writes", l);
    connected_ = &m->gauge("ingestion_postgres_connected", "1 while the source is connected to PostgreSQL", l);
  }
  ~PostgresSource() override { stop(); }

  Status start() override {
    if (thread_.joinable() || stopping()) {
      return Internal("postgres source " + name_ + ": start() after start() or stop()");
    }
    Log* log = engine_->log();
    if (log == nullptr) return Internal("postgres source needs the engine's log");
    FileSystem* fs = default_fs();
    SPATE_RETURN_IF_ERROR(fs->create_dirs(state_dir_));
    SPATE_ASSIGN_OR_RETURN(bool exists, fs->exists(checkpoint_path_));
    if (exists) {
      SPATE_ASSIGN_OR_RETURN(std::string text, fs->read_file(checkpoint_path_));
      Result<pg::Checkpoint> cp = pg::decode_checkpoint(text);
      if (!cp.ok()) {
        return Corruption(fmt::format(
            "postgres source {}: checkpoint {} is unreadable ({}); delete it to read again from "
            "initial_cursor",
            name_, checkpoint_path_, cp.status().message()));
      }
      if (cp->cursor_column != opts_.cursor_column || cp->cursor_type != opts_.cursor_type) {
        spdlog::warn("postgres source {}: the checkpoint was written for cursor_column {} ({}); "
                     "resuming from its cursor {}",
                     name_, cp->cursor_column, cp->cursor_type, cp->cursor);
      }
      cursor_ = cp->cursor;
      // Rows stored after the checkpoint (a crash between append and checkpoint) are in the
      // log already: remember them, so that reading them again does not store them twice.
      auto stored = stored_positions(*log, name_, cp->offsets);
      if (!stored.ok()) return stored.status().with_context("postgres source " + name_ + ": recovery");
      skip_.insert(stored->begin(), stored->end());
      if (!skip_.empty()) {
        recovery_offsets_ = cp->offsets;
        spdlog::info("postgres source {}: {} rows after cursor {} are already in the log and will "
                     "not be ingested again",
                     name_, skip_.size(), cursor_);
      }
    } else {
      cursor_ = opts_.initial_cursor;
    }
    // A checkpoint from the start, so that a crash before the first one needs no log scan.
    SPATE_RETURN_IF_ERROR(write_checkpoint());
    thread_ = std::thread([this] { run(); });
    return Status::Ok();
  }

  void stop() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    conn_.wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  enum class Poll { kRows, kIdle, kFailed, kStopped };

  bool stopping() {
    std::lock_guard lk(mu_);
    return stopping_;
  }
  // Sleep unless stopping; false if stopping.
  bool sleep_ms(int64_t ms) {
    std::unique_lock lk(mu_);
    return !cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stopping_; });
  }
  static int64_t next_backoff(int64_t cur, int64_t first) {
    return cur == 0 ? first : std::min(cur * 2, kMaxBackoffMs);
  }

  void run() {
    int64_t backoff = 0;
    bool was_down = false;
    while (!stopping()) {
      if (!conn_.connected()) {
        connected_->set(0);
        Status s = conn_.connect(opts_.url, "spate-" + name_, kConnectTimeoutMs);
        if (s.ok()) s = conn_.exec(pg::kSessionSetup);
        if (!s.ok()) {
          conn_.close();
          if (stopping()) break;
          errors_->inc();
          backoff = next_backoff(backoff, 500);
          spdlog::warn("postgres source {}: {} (retrying in {} ms)", name_, s.message(), backoff);
          was_down = true;
          sleep_ms(backoff);
          continue;
        }
        connected_->set(1);
        if (was_down) spdlog::info("postgres source {}: connected", name_);
        was_down = false;
      }
      switch (poll_once()) {
        case Poll::kRows:
          backoff = 0;
          break;
        case Poll::kIdle:
          backoff = 0;
          sleep_ms(opts_.poll_interval_ms);
          break;
        case Poll::kFailed:
          if (!conn_.connected()) was_down = true;
          backoff = next_backoff(backoff, 500);
          sleep_ms(backoff);
          break;
        case Poll::kStopped:
          break;
      }
    }
    conn_.close();
    connected_->set(0);
  }

  Poll poll_once() {
    polls_->inc();
    Batch b;
    std::string failure;
    std::optional<size_t> cursor_col;
    pg::RowJson row_json;
    std::optional<int64_t> prev_int;
    if (opts_.cursor_type == "integer") {
      int64_t v;
      if (pg::parse_int64(cursor_, &v)) prev_int = v;
    }
    auto on_row = [&](const std::vector<pg::Column>& cols,
                      const std::vector<std::optional<std::string_view>>& vals) {
      if (!failure.empty()) return;
      if (!cursor_col) {
        std::string names;
        for (size_t i = 0; i < cols.size(); ++i) {
          if (cols[i].name == opts_.cursor_column && !cursor_col) cursor_col = i;
          names += (i ? ", " : "") + cols[i].name;
        }
        row_json.reset(cols);
        if (!cursor_col) {
          failure = fmt::format("cursor_column \"{}\" is not a column of the query's result (columns: {})",
                                opts_.cursor_column, names);
          return;
        }
      }
      const std::optional<std::string_view>& cv = vals[*cursor_col];
      if (!cv) {
        failure = fmt::format("a row has a NULL {}: the cursor column must never be NULL",
                              opts_.cursor_column);
        return;
      }
      std::string pos(*cv);
      if (opts_.cursor_type == "integer") {
        int64_t v;
        if (!pg::parse_int64(pos, &v)) {
          failure = fmt::format("cursor_type is integer but {} is \"{}\"", opts_.cursor_column, pos);
          return;
        }
        if (prev_int && v <= *prev_int) {
          // Not after the cursor: delivered before (or out of order). Never deliver it again.
          if (!warned_order_) {
            warned_order_ = true;
            spdlog::warn("postgres source {}: the query returned {} = {} after {}; the cursor must "
                         "strictly increase (WHERE {} > $1 ORDER BY {}); such rows are ignored",
                         name_, opts_.cursor_column, v, *prev_int, opts_.cursor_column,
                         opts_.cursor_column);
          }
          return;
        }
        prev_int = v;
      } else if (pos == cursor_) {
        return;  // the row the cursor points at (a query with >=): delivered before
      }
      const size_t row = b.cursors.size();
      b.cursors.push_back(pos);
      if (skip_.count(pos) > 0) {
        b.skipped.emplace_back(row, std::move(pos));
        return;
      }
      std::string line;
      row_json.append(line, vals);
      b.lines.push_back(std::move(line));
      b.positions.push_back(std::move(pos));
      b.row_of_line.push_back(row);
    };
    bool truncated = false;
    Status s = conn_.query(opts_.query, cursor_, static_cast<size_t>(opts_.batch_rows), on_row,
                           &truncated);
    if (!s.ok()) {
      if (stopping()) return Poll::kStopped;
      errors_->inc();
      spdlog::warn("postgres source {}: query failed: {}", name_, s.message());
      return Poll::kFailed;
    }
    if (!failure.empty()) {
      errors_->inc();
      spdlog::error("postgres source {}: {}", name_, failure);
      return Poll::kFailed;
    }
    if (truncated && !warned_truncated_) {
      warned_truncated_ = true;
      spdlog::warn("postgres source {}: the query returned more than batch_rows ({}) rows; the rest "
                   "is read by the next poll (add LIMIT to the query to spare the server)",
                   name_, opts_.batch_rows);
    }
    if (b.rows() == 0) {
      // Caught up: rows remembered from a crash that did not come back were deleted.
      if (!skip_.empty()) {
        skip_.clear();
        recovery_offsets_.clear();
      }
      return Poll::kIdle;
    }
    // Under overload, submit at most what the engine took last time (the rest is re-read).
    if (b.lines.size() > cap_) b.keep_lines(cap_);
    if (!b.lines.empty() && !deliver(b)) return Poll::kStopped;
    for (const auto& [row, p] : b.skipped) skip_.erase(p);
    skipped_->inc(b.skipped.size());
    rows_->inc(b.lines.size());
    cursor_ = b.cursors.back();
    int64_t cur;
    if (!skip_.empty() && opts_.cursor_type == "integer" && pg::parse_int64(cursor_, &cur)) {
      // Rows at or before the cursor are never read again (deleted rows, older checkpoints).
      std::erase_if(skip_, [&](const std::string& p) {
        int64_t v;
        return pg::parse_int64(p, &v) && v <= cur;
      });
    }
    if (skip_.empty()) recovery_offsets_.clear();
    if (Status cs = write_checkpoint(); !cs.ok()) {
      errors_->inc();
      spdlog::error("postgres source {}: cannot write the checkpoint: {} (a restart re-reads the "
                    "rows since the last one and skips those already stored)",
                    name_, cs.to_string());
    }
    return Poll::kRows;
  }


  // Submit until acknowledged; false if stopping first (nothing acknowledged, cursor unchanged).
  bool deliver(Batch& b) {
    int64_t backoff = 0;
    while (true) {
      IngestRequest req;
      req.topic = topic_;
      req.format = BodyFormat::kNdjson;
      req.source.name = name_;
      for (const std::string& l : b.lines) {
        req.body += l;
        req.body.push_back('\n');
      }
      req.event_positions = b.positions;
      IngestResult r = submit_and_wait(*engine_, std::move(req));
      if (r.status == IngestStatus::kOk) {
        cap_ = std::min(max_cap_, cap_ * 2);
        if (r.rejected > 0) {
          errors_->inc(r.rejected);
          bool dead_lettered = !engine_->config().dead_letter_topic.empty();
          spdlog::warn("postgres source {}: {} of {} rows were rejected ({}{}) and {}", name_,
                       r.rejected, b.lines.size(), r.errors.empty() ? "" : "first: ",
                       r.errors.empty() ? "" : r.errors.front().reason,
                       dead_lettered ? "dead-lettered" : "not stored (no dead_letter_topic)");
        }
        return true;
      }
      errors_->inc();
      backoff = next_backoff(backoff, r.status == IngestStatus::kOverloaded ? 100 : 500);
      spdlog::warn("postgres source {}: ingestion refused {} rows: {} (retrying in {} ms)", name_,
                   b.lines.size(), r.message.empty() ? "no reason given" : r.message, backoff);
      if (!sleep_ms(backoff)) return false;
      if (r.status == IngestStatus::kOverloaded) {
        // Refused whole: a smaller batch fits sooner (and one larger than the engine's queue
        // never would). The cursor then advances only past the rows submitted.
        if (b.lines.size() > 1) {
          cap_ = b.lines.size() / 2;
          b.keep_lines(cap_);
        }
      } else {
        // A failed append may have stored part of the batch: do not store that part twice.
        auto stored = stored_positions(*engine_->log(), name_, base_offsets_);
        if (stored.ok() && !stored->empty()) {
          std::unordered_set<std::string> in_log(stored->begin(), stored->end());
          size_t kept = 0;
          for (size_t i = 0; i < b.lines.size(); ++i) {
            if (in_log.count(b.positions[i]) > 0) {
              // Stored: treat like a row recovered after a crash (skipped if read again).
              if (skip_.empty() && recovery_offsets_.empty()) recovery_offsets_ = base_offsets_;
              skip_.insert(b.positions[i]);
              b.skipped.emplace_back(b.row_of_line[i], std::move(b.positions[i]));
              continue;
            }
            b.lines[kept] = std::move(b.lines[i]);
            b.positions[kept] = std::move(b.positions[i]);
            b.row_of_line[kept] = b.row_of_line[i];
            ++kept;
          }
          b.lines.resize(kept);
          b.positions.resize(kept);
          b.row_of_line.resize(kept);
          if (kept == 0) return true;
        }
      }
    }
  }

  // Persist cursor_ with the log's end offsets: every record of this source before them is
  // covered by the cursor (while rows from a crash are pending, the older offsets stay, so
  // that a second crash still finds them).
  Status write_checkpoint() {
    base_offsets_ = skip_.empty() ? end_offsets(*engine_->log()) : recovery_offsets_;
    pg::Checkpoint cp;
    cp.cursor = cursor_;
    cp.cursor_type = opts_.cursor_type;
    cp.cursor_column = opts_.cursor_column;
    cp.offsets = base_offsets_;
    return default_fs()->write_file_atomic(checkpoint_path_, pg::encode_checkpoint(cp));
  }

  const std::string name_, topic_;
  const PostgresOptions opts_;
  DataIngestionEngine* engine_;
  const std::string state_dir_, checkpoint_path_;
  Counter* rows_;
  Counter* skipped_;
  Counter* polls_;
  Counter* errors_;
  Gauge* connected_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
  pg::PgConnection conn_;

  // Poll thread only (and start() before it runs).
  std::string cursor_;
  std::unordered_set<std::string> skip_;
  std::map<std::string, std::vector<int64_t>> recovery_offsets_;
  std::map<std::string, std::vector<int64_t>> base_offsets_;
  size_t max_cap_;
  size_t cap_;  // rows per submit: halved on kOverloaded, doubled (up to max_cap_) on success
  bool warned_order_ = false;
  bool warned_truncated_ = false;
};

}  // namespace

SourceType postgres_source_type() {
  return checkpointed_source_type<PostgresOptions, PostgresSource>("postgres", read_options);
}

}  // namespace spate::ingest
