// Source type "file": tails the files that match one or more globs, one event per NDJSON line
// or per CSV row (the first record of each file is the header), follows rotation and
// truncation, and checkpoints its read positions so that a restart, even after SIGKILL,
// neither skips nor repeats a line. Options (docs/sources.md, "File source"):
//   paths:           a glob or a list of globs (glob(3), with {a,b} braces); required
//   format:          ndjson (default) | csv
//   csv_infer_types: csv only: numbers and true/false become JSON numbers/bools (default false)
//   poll_interval:   how often the globs and files are checked (default 250ms)
//   start_at:        beginning (default) | end: where to start in the files present when the
//                    source starts for the very first time (no checkpoint yet); files that
//                    appear later are always read from their beginning
//   batch_lines:     max lines per submit to the engine (default 1000)
//   max_line_bytes:  longer lines are skipped and counted (default 1MiB)
//   rotate_wait:     how long a renamed-away file that no longer grows stays open (default 5s)
//
// How it works: one thread per source. Each poll globs the paths and tracks every regular file
// by identity (st_dev, st_ino) with an open descriptor and the offset of its first unread
// line. Complete lines are read in batches of at most batch_lines (and the engine's
// max_body_bytes) and submitted as NDJSON with one position per line,
// "<dev>:<ino>:<gen>:<offset>" (gen counts the truncations of that file). The thread waits for
// the engine's completion before it reads further (one batch in flight: that is the
// backpressure); kOverloaded/kNotFound/kUnavailable back off and retry the same lines, after
// removing those the log already holds (a failed multi-partition append may be partial).
// After each acknowledged batch the checkpoint (state_dir/checkpoint.json) is replaced
// atomically; it holds each file's identity, path, gen and position, and the log's end offsets
// before the first unacknowledged batch. On start, stored_positions() from those offsets tells
// which lines after the checkpointed positions the log already holds; they are skipped once.
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "base/clock.h"
#include "base/fs.h"
#include "ingest/source.h"
#include "ingest/sources/file_checkpoint.h"
#include "ingest/sources/file_csv.h"
#include "spate/metrics.h"

namespace spate::ingest {
namespace {

constexpr size_t kReadChunk = 64 << 10;
constexpr const char* kCheckpointName = "checkpoint.json";

struct FileOptions {
  std::vector<std::string> paths;
  bool csv = false;
  bool infer_types = false;
  int64_t poll_interval_ms = 250;
  bool start_at_end = false;
  int64_t batch_lines = 1000;
  int64_t max_line_bytes = 1 << 20;
  int64_t rotate_wait_ms = 5000;
};

Status read_options(const SourceConfig& cfg, FileOptions* o) {
  OptionReader r(cfg);
  if (r.get_list("paths", &o->paths, /*required=*/true)) {
    if (o->paths.empty()) r.error("paths", "must name at least one file or glob");
    if (std::any_of(o->paths.begin(), o->paths.end(), [](const auto& p) { return p.empty(); })) {
      r.error("paths", "a path must not be empty");
    }
  }
  std::string format = "ndjson";
  r.get_enum("format", &format, {"ndjson", "csv"});
  o->csv = format == "csv";
  if (r.get_bool("csv_infer_types", &o->infer_types) && o->infer_types && !o->csv) {
    r.error("csv_infer_types", "only applies to format: csv");
  }
  r.get_duration_ms("poll_interval", &o->poll_interval_ms, 10, 3600LL * 1000);
  std::string start = "beginning";
  r.get_enum("start_at", &start, {"beginning", "end"});
  o->start_at_end = start == "end";
  r.get_int("batch_lines", &o->batch_lines, 1, 1'000'000);
  r.get_size("max_line_bytes", &o->max_line_bytes, 16, 1LL << 30);
  r.get_duration_ms("rotate_wait", &o->rotate_wait_ms, 0, 24LL * 3600 * 1000);
  return r.finish();
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

using Identity = std::pair<uint64_t, uint64_t>;  // (st_dev, st_ino)

struct Tracked {
  Identity id;
  std::string path;  // where it was last seen
  Fd fd;
  uint64_t seq = 0;  // discovery order: older files are read first
  uint64_t gen = 0;  // truncations so far
  uint64_t pos = 0;  // first byte not yet acknowledged (a line start, or inside a skip)
  bool skipping = false;
  bool have_header = false;       // csv
  std::vector<std::string> keys;  // csv header keys
  bool reachable = true;          // matched by the last scan
  int64_t idle_since_ns = 0;      // unreachable, at its end and not growing since (0 = no)
  uint64_t idle_size = 0;
  bool retire = false;
};

struct Line {
  std::string json;
  std::string pos;
};

/// What one read produced; applied to the file once its lines are acknowledged.
struct Chunk {
  std::vector<Line> lines;
  uint64_t end_pos = 0;  // everything before was consumed
  bool skipping = false;
  bool have_header = false;
  std::vector<std::string> keys;
  uint64_t skipped_long = 0;
  uint64_t skipped_csv = 0;
  std::vector<std::pair<uint64_t, uint64_t>> recovered;  // (gen, offset) already in the log
};

enum class ReadMode { kNormal, kFinal, kHeader };
enum class Step { kIdle, kProgress, kStopped };

class FileSource final : public Source {
 public:
  FileSource(const SourceConfig& cfg, FileOptions opts, SourceContext& ctx)
      : name_(cfg.name),
        topic_(cfg.topic),
        opts_(std::move(opts)),
        engine_(ctx.engine),
        checkpoint_path_(path_join(ctx.state_dir, kCheckpointName)) {
    MetricsRegistry* m = ctx.metrics ? ctx.metrics : &global_metrics();
    MetricLabels l{{"source", name_}};
    lines_ = &m->counter("ingestion_file_lines_total",
                         "Lines (CSV rows) read from files and acknowledged by the log", l);
    bytes_ = &m->counter("ingestion_file_read_bytes_total",
                         "Bytes of files consumed (acknowledged lines, headers, skipped lines)", l);
    tracked_ = &m->gauge("ingestion_file_tracked_files", "Files the file source has open", l);
    rotations_ = &m->counter("ingestion_file_rotations_total",
                             "Watched paths that came to name a different file", l);
    truncations_ = &m->counter("ingestion_file_truncations_total",
                               "Files that shrank below the read position (read again from 0)", l);
    skipped_long_ = &m->counter("ingestion_file_skipped_lines_total",
                                "Lines not submitted: over max_line_bytes, or CSV rows whose "
                                "field count differs from the header or whose quote is open",
                                {{"source", name_}, {"reason", "too_long"}});
    skipped_csv_ = &m->counter("ingestion_file_skipped_lines_total",
                               "Lines not submitted: over max_line_bytes, or CSV rows whose "
                               "field count differs from the header or whose quote is open",
                               {{"source", name_}, {"reason", "csv_malformed"}});
    recovered_lines_ = &m->counter(
        "ingestion_file_recovered_lines_total",
        "Lines found already in the log on start (stored before a crash, after the checkpoint) "
        "and not submitted again",
        l);
    errors_ = &m->counter("ingestion_file_errors_total",
                          "Errors opening or reading files, or writing the checkpoint", l);
    retries_ = &m->counter("ingestion_file_retries_total",
                           "Batches submitted again after the engine refused them (429/503)", l);
    max_batch_bytes_ = std::max<size_t>(engine_->config().max_body_bytes, 64 << 10);
    // A submit larger than the engine's whole queue would be refused forever.
    batch_lines_ = static_cast<size_t>(std::min<int64_t>(
        opts_.batch_lines,
        static_cast<int64_t>(std::max<size_t>(engine_->config().max_queue_size, 1))));
  }

  ~FileSource() override { stop(); }

  Status start() override {
    if (thread_.joinable()) return Status::Ok();
    stopping_ = false;
    files_.clear();
    last_paths_.clear();
    recovered_.clear();
    recovery_offsets_.reset();
    unacked_offsets_.reset();
    // Load the checkpoint and learn which lines after it the log already holds.
    bool fresh = true;
    Result<bool> exists = default_fs()->exists(checkpoint_path_);
    if (!exists.ok()) return exists.status();
    if (*exists) {
      fresh = false;
      SPATE_ASSIGN_OR_RETURN(std::string text, default_fs()->read_file(checkpoint_path_));
      Result<FileCheckpoint> cp = decode_file_checkpoint(text);
      if (!cp.ok()) return cp.status().with_context(checkpoint_path_);
      SPATE_ASSIGN_OR_RETURN(std::vector<std::string> stored,
                             stored_positions(*engine_->log(), name_, cp->end_offsets));
      for (const std::string& p : stored) add_recovered(p);
      if (!recovered_.empty()) recovery_offsets_ = cp->end_offsets;
      for (const FileCheckpointEntry& e : cp->files) {
        auto t = std::make_unique<Tracked>();
        t->id = {e.dev, e.ino};
        t->path = e.path;
        t->seq = next_seq_++;
        t->gen = e.gen;
        t->pos = e.pos;
        t->skipping = e.skipping;
        last_paths_[e.path] = t->id;
        files_[t->id] = std::move(t);
      }
    }
    scan(/*initial=*/true, fresh);
    prune_recovered();
    // Persist the starting point before anything is submitted: a crash before the first
    // acknowledged batch must not make the next start read from the beginning (or the end).
    dirty_ = true;
    Status s = write_checkpoint();
    if (!s.ok()) return s.with_context("file source " + name_ + ": writing its checkpoint");
    thread_ = std::thread([this] { run(); });
    return Status::Ok();
  }

  void stop() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    files_.clear();
    tracked_->set(0);
  }

 private:
  // ------------------------------------------------------------------ thread
  void run() {
    while (!stopping()) {
      if (poll_round()) continue;  // cut short to look for new files: go on at once
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, std::chrono::milliseconds(opts_.poll_interval_ms),
                   [this] { return stopping_; });
    }
    if (dirty_) (void)write_checkpoint();
  }

  bool stopping() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  /// Sleep up to ms; true if the source is stopping.
  bool wait_stopping(int64_t ms) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::milliseconds(ms), [this] { return stopping_; });
  }

  /// One poll: scan, then read every file up to its last complete line. True if files still
  /// had lines when the round ended early, after poll_interval, so that busy files do not
  /// keep the globs from being scanned again.
  bool poll_round() {
    const int64_t deadline =
        system_clock()->steady_ns() + opts_.poll_interval_ms * int64_t{1'000'000};
    scan(/*initial=*/false, /*fresh=*/false);
    std::vector<Tracked*> order = ordered();
    // Files no longer under their watched path (rotated away or deleted) first, each to its
    // end: their lines were written before those of the file that replaced them.
    for (Tracked* f : order) {
      if (f->reachable) continue;
      Step st;
      while ((st = step(*f)) == Step::kProgress) {
      }
      if (st == Step::kStopped) return false;
    }
    // Then the others, one batch each in turn, until none has complete lines left.
    bool progress = true;
    while (progress && system_clock()->steady_ns() < deadline) {
      progress = false;
      for (Tracked* f : order) {
        if (!f->reachable || f->retire) continue;
        Step st = step(*f);
        if (st == Step::kStopped) return false;
        progress = progress || st == Step::kProgress;
      }
    }
    retire_files();
    if (dirty_) (void)write_checkpoint();
    return progress;
  }

  std::vector<Tracked*> ordered() {
    std::vector<Tracked*> out;
    for (auto& [id, f] : files_) out.push_back(f.get());
    std::sort(out.begin(), out.end(),
              [](const Tracked* a, const Tracked* b) { return a->seq < b->seq; });
    return out;
  }

  // ------------------------------------------------------------------ discovery
  void scan(bool initial, bool fresh) {
    std::vector<std::string> found;
    bool complete = true;
    for (const std::string& pattern : opts_.paths) {
      glob_t g{};
      int flags = 0;
#ifdef GLOB_BRACE
      flags |= GLOB_BRACE;
#endif
      int rc = ::glob(pattern.c_str(), flags, nullptr, &g);
      if (rc == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) found.emplace_back(g.gl_pathv[i]);
      } else if (rc != GLOB_NOMATCH) {
        complete = false;  // unreadable directory, out of memory: change nothing this round
      }
      ::globfree(&g);
    }
    std::sort(found.begin(), found.end());
    found.erase(std::unique(found.begin(), found.end()), found.end());

    std::set<Identity> seen;
    std::map<std::string, Identity> paths_now;
    for (const std::string& path : found) {
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      Identity id{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
      Tracked* f = find(id);
      if (f == nullptr || !f->fd.valid()) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          report_error("cannot open " + path + ": " + std::strerror(errno));
          continue;
        }
        if (::fstat(fd, &st) != 0) {
          ::close(fd);
          continue;
        }
        id = {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};  // raced?
        f = find(id);
        if (f == nullptr) {
          auto t = std::make_unique<Tracked>();
          t->id = id;
          t->seq = next_seq_++;
          f = t.get();
          files_[id] = std::move(t);
          dirty_ = true;
        }
        if (f->fd.valid()) {
          ::close(fd);
        } else {
          f->fd.reset(fd);
          if (initial && fresh && opts_.start_at_end) {
            position_at_end(*f, static_cast<uint64_t>(st.st_size));
          }
        }
      }
      if (f->path != path) dirty_ = true;
      f->path = path;
      f->reachable = true;
      f->idle_since_ns = 0;
      seen.insert(id);
      paths_now[path] = id;
    }
    for (const auto& [path, id] : paths_now) {
      auto it = last_paths_.find(path);
      if (it != last_paths_.end() && it->second != id) rotations_->inc();
    }
    if (complete) {
      last_paths_ = paths_now;
      for (auto& [id, f] : files_) {
        if (seen.count(id) == 0) f->reachable = false;
      }
    }
    if (initial) {
      // Checkpointed files that no glob matches any more: rotated away while Spate was down.
      // Look for them next to where they were; if they are gone, so are their unread lines.
      for (auto it = files_.begin(); it != files_.end();) {
        Tracked& f = *it->second;
        if (complete && !f.fd.valid() && !reopen_nearby(f)) {
          it = files_.erase(it);
          dirty_ = true;
        } else {
          ++it;
        }
      }
    }
    tracked_->set(static_cast<double>(files_.size()));
  }

  bool reopen_nearby(Tracked& f) {
    std::string dir = dir_of(f.path);
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return false;
    bool ok = false;
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      if (static_cast<uint64_t>(e->d_ino) != f.id.second) continue;
      std::string path = dir == "/" ? "/" + std::string(e->d_name) : dir + "/" + e->d_name;
      int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (raw < 0) continue;
      struct stat st {};
      if (::fstat(raw, &st) == 0 && S_ISREG(st.st_mode) &&
          Identity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)} == f.id) {
        f.fd.reset(raw);
        f.path = path;
        f.reachable = false;
        ok = true;
        break;
      }
      ::close(raw);
    }
    ::closedir(d);
    return ok;
  }

  Tracked* find(const Identity& id) {
    auto it = files_.find(id);
    return it == files_.end() ? nullptr : it->second.get();
  }

  // start_at: end — after the last complete line (a line being written is read once done).
  void position_at_end(Tracked& f, uint64_t size) {
    uint64_t limit = std::min<uint64_t>(size, static_cast<uint64_t>(opts_.max_line_bytes) + 1);
    std::string buf;
    uint64_t pos = 0;
    bool found = false;
    for (uint64_t back = 0; back < limit && !found;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kReadChunk, limit - back));
      uint64_t off = size - back - n;
      buf.resize(n);
      ssize_t got = ::pread(f.fd.get(), buf.data(), n, static_cast<off_t>(off));
      if (got != static_cast<ssize_t>(n)) break;
      size_t nl = std::string_view(buf).rfind('\n');
      if (nl != std::string_view::npos) {
        pos = off + nl + 1;
        found = true;
      }
      back += n;
    }
    if (!found && size > static_cast<uint64_t>(opts_.max_line_bytes)) {
      pos = size;  // inside a line that is already too long
      f.skipping = true;
    }
    f.pos = pos;
    if (opts_.csv && pos > 0) {
      Chunk h = read_chunk(f, ReadMode::kHeader);
      if (h.have_header) {
        f.have_header = true;
        f.keys = std::move(h.keys);
        f.pos = std::max(f.pos, h.end_pos);
      } else {
        f.pos = 0;  // no complete header yet: read it when it is
        f.skipping = false;
      }
    }
  }

  // ------------------------------------------------------------------ reading
  /// One step for one file: a truncation check, then at most one batch read, submitted and
  /// acknowledged; or, at its end, the rotation bookkeeping.
  Step step(Tracked& f) {
    if (stopping()) return Step::kStopped;
    if (f.retire || !f.fd.valid()) return Step::kIdle;
    struct stat st {};
    if (::fstat(f.fd.get(), &st) != 0) {
      report_error("cannot stat " + f.path + ": " + std::strerror(errno));
      return Step::kIdle;
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size < f.pos) {
      f.pos = 0;
      ++f.gen;
      f.skipping = false;
      f.have_header = false;
      f.keys.clear();
      truncations_->inc();
      dirty_ = true;
      (void)write_checkpoint();  // the new gen must survive a crash before the next batch
    }
    if (opts_.csv && !f.have_header && f.pos > 0) {
      Chunk h = read_chunk(f, ReadMode::kHeader);
      if (h.have_header) {
        f.have_header = true;
        f.keys = std::move(h.keys);
      }
    }
    if (size > f.pos) {
      Chunk c = read_chunk(f, ReadMode::kNormal);
      if (c.end_pos > f.pos) {
        if (!c.lines.empty() && !submit(c.lines, f.path)) return Step::kStopped;
        commit(f, std::move(c));
        return Step::kProgress;
      }
    }
    if (f.reachable) return Step::kIdle;
    // Rotated away or deleted, and read up to its last complete line: keep it open while it
    // may still grow (the writer has not reopened yet), then read a final unterminated line
    // and let it go.
    int64_t now = system_clock()->steady_ns();
    if (f.idle_since_ns == 0 || size != f.idle_size) {
      f.idle_since_ns = now;
      f.idle_size = size;
      return Step::kIdle;
    }
    int64_t grace_ns = st.st_nlink == 0 ? 0 : opts_.rotate_wait_ms * 1'000'000;
    if (now - f.idle_since_ns < grace_ns) return Step::kIdle;
    if (size > f.pos) {
      Chunk c = read_chunk(f, ReadMode::kFinal);
      if (c.end_pos > f.pos) {
        if (!c.lines.empty() && !submit(c.lines, f.path)) return Step::kStopped;
        commit(f, std::move(c));
        return Step::kProgress;
      }
    }
    f.retire = true;
    return Step::kIdle;
  }

  void retire_files() {
    for (auto it = files_.begin(); it != files_.end();) {
      if (it->second->retire) {
        for (auto p = last_paths_.begin(); p != last_paths_.end();) {
          p = p->second == it->first ? last_paths_.erase(p) : std::next(p);
        }
        it = files_.erase(it);
        dirty_ = true;
      } else {
        ++it;
      }
    }
    prune_recovered();
    tracked_->set(static_cast<double>(files_.size()));
  }

  std::string position(const Tracked& f, uint64_t offset) const {
    return std::to_string(f.id.first) + ":" + std::to_string(f.id.second) + ":" +
           std::to_string(f.gen) + ":" + std::to_string(offset);
  }

  /// Read complete records from f.pos: at most one batch (batch_lines, max_batch_bytes_).
  /// kFinal also takes an unterminated last line; kHeader reads from 0 up to the CSV header.
  Chunk read_chunk(const Tracked& f, ReadMode mode) {
    Chunk c;
    const bool header_only = mode == ReadMode::kHeader;
    c.end_pos = header_only ? 0 : f.pos;
    c.skipping = header_only ? false : f.skipping;
    c.have_header = header_only ? false : f.have_header;
    if (!header_only) c.keys = f.keys;
    const size_t max_line = static_cast<size_t>(opts_.max_line_bytes);
    std::string buf;  // file bytes from c.end_pos - head
    size_t head = 0;  // buf[head..] is not consumed yet; it starts at c.end_pos
    size_t batch_bytes = 0;
    auto consume = [&](size_t n) {
      head += n;
      c.end_pos += n;
    };
    auto more = [&]() -> bool {  // false at the end of the file (or on an error)
      if (head > 0) {
        buf.erase(0, head);
        head = 0;
      }
      size_t old = buf.size();
      buf.resize(old + kReadChunk);
      ssize_t n;
      do {
        n = ::pread(f.fd.get(), buf.data() + old, kReadChunk, static_cast<off_t>(c.end_pos + old));
      } while (n < 0 && errno == EINTR);
      if (n < 0) report_error("cannot read " + f.path + ": " + std::strerror(errno));
      buf.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      return n > 0;
    };
    std::vector<std::string> fields;
    std::string reason;
    while (header_only ? !c.have_header
                       : c.lines.size() < batch_lines_ && batch_bytes < max_batch_bytes_) {
      std::string_view avail(buf.data() + head, buf.size() - head);
      if (c.skipping) {  // the rest of an over-long line
        size_t nl = avail.find('\n');
        if (nl == std::string_view::npos) {
          consume(avail.size());
          if (!more()) break;
          continue;
        }
        consume(nl + 1);
        c.skipping = false;
        continue;
      }
      size_t end = opts_.csv ? csv_record_end(avail) : avail.find('\n');
      bool unterminated = false;
      if (end == std::string_view::npos) {
        if (avail.size() > max_line) {  // too long already: drop it up to its newline
          ++c.skipped_long;
          c.skipping = true;
          consume(avail.size());
          continue;
        }
        if (more()) continue;
        avail = std::string_view(buf.data() + head, buf.size() - head);  // more() moved buf
        if (mode != ReadMode::kFinal || avail.empty()) break;
        end = avail.size();
        unterminated = true;
      }
      std::string_view rec = avail.substr(0, end);
      const uint64_t offset = c.end_pos;
      consume(unterminated ? end : end + 1);
      if (rec.size() > max_line) {
        ++c.skipped_long;
        continue;
      }
      if (!rec.empty() && rec.back() == '\r') rec.remove_suffix(1);
      if (is_blank(rec)) continue;
      std::string json;
      if (opts_.csv) {
        if (!parse_csv_record(rec, &fields, &reason)) {
          ++c.skipped_csv;
          continue;
        }
        if (!c.have_header) {
          c.keys = csv_header_keys(fields);
          c.have_header = true;
          continue;
        }
        if (fields.size() != c.keys.size()) {
          ++c.skipped_csv;
          continue;
        }
        append_csv_row_json(json, c.keys, fields, opts_.infer_types);
      } else {
        json.assign(rec);
      }
      if (is_recovered(f, offset)) {  // stored before the crash: not again
        c.recovered.emplace_back(f.gen, offset);
        continue;
      }
      batch_bytes += json.size() + 1;
      c.lines.push_back({std::move(json), position(f, offset)});
    }
    return c;
  }

  void commit(Tracked& f, Chunk c) {
    bytes_->inc(c.end_pos - f.pos);
    lines_->inc(c.lines.size());
    recovered_lines_->inc(c.recovered.size());
    if (c.skipped_long > 0) {
      skipped_long_->inc(c.skipped_long);
      warn(std::to_string(c.skipped_long) + " line(s) of " + f.path + " over max_line_bytes (" +
           std::to_string(opts_.max_line_bytes) + ") skipped");
    }
    if (c.skipped_csv > 0) {
      skipped_csv_->inc(c.skipped_csv);
      warn(std::to_string(c.skipped_csv) + " CSV row(s) of " + f.path +
           " skipped: field count differs from the header, or an open quote");
    }
    f.pos = c.end_pos;
    f.skipping = c.skipping;
    f.have_header = c.have_header;
    f.keys = std::move(c.keys);
    auto rit = recovered_.find(f.id);
    if (rit != recovered_.end()) {
      for (const auto& p : c.recovered) rit->second.erase(p);
    }
    prune_recovered();
    dirty_ = true;
    if (!c.lines.empty()) (void)write_checkpoint();
  }

  // ------------------------------------------------------------------ submitting
  /// Submit the lines and wait for the engine's answer; retry while it refuses. False if the
  /// source stopped before they were acknowledged.
  bool submit(std::vector<Line>& lines, const std::string& path) {
    if (!unacked_offsets_) unacked_offsets_ = end_offsets(*engine_->log());
    const std::map<std::string, std::vector<int64_t>> before = *unacked_offsets_;
    int64_t backoff_ms = 50;
    while (!lines.empty()) {
      IngestRequest req;
      req.topic = topic_;
      req.format = BodyFormat::kNdjson;
      req.source.name = name_;
      size_t bytes = 0;
      for (const Line& l : lines) bytes += l.json.size() + 1;
      req.body.reserve(bytes);
      req.event_positions.reserve(lines.size());
      for (const Line& l : lines) {
        req.body += l.json;
        req.body += '\n';
        req.event_positions.push_back(l.pos);
      }
      IngestResult r = engine_->submit_sync(std::move(req));
      switch (r.status) {
        case IngestStatus::kOk:
          if (!r.errors.empty() && r.errors[0].index < lines.size()) {
            // Counted by the engine (and dead-lettered if configured); say which line it was.
            const std::string& pos = lines[r.errors[0].index].pos;
            warn(path + ": " + std::to_string(r.rejected) +
                 " line(s) rejected, the first at byte " + pos.substr(pos.rfind(':') + 1) + ": " +
                 r.errors[0].reason);
          }
          unacked_offsets_.reset();
          return true;
        case IngestStatus::kBadRequest:
        case IngestStatus::kTooLarge:
        case IngestStatus::kUnsupported:
          // Nothing was stored (all_or_nothing and a bad line): one line at a time, so that
          // only the bad lines are refused (and counted as rejected by the engine).
          if (lines.size() > 1) {
            for (Line& l : lines) {
              std::vector<Line> one{std::move(l)};
              if (!submit(one, path)) return false;
              unacked_offsets_ = before;  // the rest is still unacknowledged
            }
          }
          unacked_offsets_.reset();
          return true;
        case IngestStatus::kOverloaded:
        case IngestStatus::kNotFound:
        case IngestStatus::kUnavailable:
          break;
      }
      retries_->inc();
      if (r.status != IngestStatus::kOverloaded) warn("engine refused a batch: " + r.message);
      if (wait_stopping(backoff_ms)) return false;
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
      if (r.status == IngestStatus::kUnavailable) {
        // A failed append of one partition leaves the others stored: do not send those again.
        Result<std::vector<std::string>> stored = stored_positions(*engine_->log(), name_, before);
        if (!stored.ok()) continue;  // try again later; never guess
        std::set<std::string, std::less<>> have(stored->begin(), stored->end());
        lines.erase(std::remove_if(lines.begin(), lines.end(),
                                   [&](const Line& l) { return have.count(l.pos) > 0; }),
                    lines.end());
      }
    }
    unacked_offsets_.reset();
    return true;
  }

  // ------------------------------------------------------------------ recovery & checkpoint
  void add_recovered(const std::string& pos) {
    uint64_t v[4];
    std::string_view s = pos;
    for (int i = 0; i < 4; ++i) {
      size_t colon = i < 3 ? s.find(':') : s.size();
      if (colon == std::string_view::npos || !parse_u64(s.substr(0, colon), &v[i])) return;
      s.remove_prefix(std::min(s.size(), colon + 1));
    }
    recovered_[{v[0], v[1]}].insert({v[2], v[3]});
  }

  bool is_recovered(const Tracked& f, uint64_t offset) const {
    auto it = recovered_.find(f.id);
    return it != recovered_.end() && it->second.count({f.gen, offset}) > 0;
  }

  /// Forget recovered positions that can no longer be read: behind a file's position, of an
  /// older generation, or of a file no longer tracked. Once none are left, checkpoints use
  /// current end offsets again.
  void prune_recovered() {
    for (auto it = recovered_.begin(); it != recovered_.end();) {
      const Tracked* f = find(it->first);
      if (f == nullptr) {
        it = recovered_.erase(it);
        continue;
      }
      auto& s = it->second;
      for (auto p = s.begin(); p != s.end();) {
        p = (p->first < f->gen || (p->first == f->gen && p->second < f->pos)) ? s.erase(p)
                                                                              : std::next(p);
      }
      it = s.empty() ? recovered_.erase(it) : std::next(it);
    }
    if (recovered_.empty()) recovery_offsets_.reset();
  }

  Status write_checkpoint() {
    FileCheckpoint cp;
    // The scan after a crash must start before every line that may be stored but is not
    // behind a checkpointed position: before the first unacknowledged batch, and before the
    // lines found stored at start that are not read again yet.
    cp.end_offsets = unacked_offsets_    ? *unacked_offsets_
                     : recovery_offsets_ ? *recovery_offsets_
                                         : end_offsets(*engine_->log());
    for (const Tracked* f : ordered()) {
      FileCheckpointEntry e;
      e.dev = f->id.first;
      e.ino = f->id.second;
      e.gen = f->gen;
      e.pos = f->pos;
      e.skipping = f->skipping;
      e.path = f->path;
      cp.files.push_back(std::move(e));
    }
    Status s = default_fs()->write_file_atomic(checkpoint_path_, encode_file_checkpoint(cp));
    if (!s.ok()) {
      report_error("cannot write the checkpoint: " + s.to_string());
      return s;
    }
    dirty_ = false;
    return Status::Ok();
  }

  /// Count an error and print it.
  void report_error(const std::string& what) {
    errors_->inc();
    warn(what);
  }

  /// Print a warning on stderr (at most one line per second per source).
  void warn(const std::string& what) {
    int64_t now = system_clock()->steady_ns();
    if (now - last_report_ns_ < 1'000'000'000 && last_report_ns_ != 0) {
      ++suppressed_;
      return;
    }
    if (suppressed_ > 0) {
      spdlog::warn("file source {}: {} ({} similar messages suppressed)", name_, what, suppressed_);
    } else {
      spdlog::warn("file source {}: {}", name_, what);
    }
    last_report_ns_ = now;
    suppressed_ = 0;
  }

  const std::string name_, topic_;
  const FileOptions opts_;
  DataIngestionEngine* engine_;
  const std::string checkpoint_path_;
  size_t max_batch_bytes_ = 16 << 20;
  size_t batch_lines_ = 1000;

  Counter* lines_;
  Counter* bytes_;
  Gauge* tracked_;
  Counter* rotations_;
  Counter* truncations_;
  Counter* skipped_long_;
  Counter* skipped_csv_;
  Counter* recovered_lines_;
  Counter* errors_;
  Counter* retries_;

  // Owned by the source thread (and by start() before the thread exists).
  std::map<Identity, std::unique_ptr<Tracked>> files_;
  std::map<std::string, Identity> last_paths_;
  uint64_t next_seq_ = 0;
  bool dirty_ = false;
  std::map<Identity, std::set<std::pair<uint64_t, uint64_t>>> recovered_;
  std::optional<std::map<std::string, std::vector<int64_t>>> recovery_offsets_;
  std::optional<std::map<std::string, std::vector<int64_t>>> unacked_offsets_;
  int64_t last_report_ns_ = 0;
  uint64_t suppressed_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

SourceType file_source_type() {
  return checkpointed_source_type<FileOptions, FileSource>("file", read_options);
}

}  // namespace spate::ingest
