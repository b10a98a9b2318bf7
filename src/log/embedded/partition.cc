#include "log/embedded/partition.h"

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "log/embedded/format.h"

namespace spate {

using logfmt::BatchHeader;
using logfmt::kHeaderSize;

struct Partition::Segment {
  int64_t base_offset = 0;
  std::string log_path, index_path, time_path;
  std::unique_ptr<WritableFile> log_w, index_w, time_w;  // only for the active segment
  std::unique_ptr<ReadableFile> log_r;
  std::atomic<uint64_t> visible_size{0};
  std::atomic<int64_t> next_offset{0};
  std::atomic<int64_t> max_timestamp{INT64_MIN};

  // Sparse indexes, also persisted; guarded by index_mu.
  mutable std::shared_mutex index_mu;
  struct IndexEntry {
    uint32_t rel;
    uint32_t pos;
  };
  struct TimeEntry {
    int64_t ts;
    uint32_t rel;
    uint32_t pos;
  };
  std::vector<IndexEntry> index;
  std::vector<TimeEntry> time_index;
  // Leader-owned while active.
  uint64_t bytes_since_index = 0;
  int64_t created_ms = 0;
  std::atomic<uint64_t> disk_size{0};

  // Position of the last indexed batch at or before `offset`.
  uint64_t lookup(int64_t offset) const {
    std::shared_lock lk(index_mu);
    auto rel = static_cast<uint64_t>(offset - base_offset);
    auto it = std::upper_bound(index.begin(), index.end(), rel,
                               [](uint64_t r, const IndexEntry& e) { return r < e.rel; });
    if (it == index.begin()) return 0;
    return std::prev(it)->pos;
  }
  // Position of a batch all of whose predecessors (and itself) have timestamps < ts.
  uint64_t lookup_time(int64_t ts) const {
    std::shared_lock lk(index_mu);
    auto it = std::lower_bound(time_index.begin(), time_index.end(), ts,
                               [](const TimeEntry& e, int64_t t) { return e.ts < t; });
    if (it == time_index.begin()) return 0;
    return std::prev(it)->pos;
  }
};

struct Partition::Writer {
  std::string* batch = nullptr;
  uint32_t count = 0;
  int64_t max_ts = 0;
  Status status;
  int64_t base = -1;
  bool done = false;
  // Set (under mu_, with `done` or on becoming the leader) so that a waiting writer can poll
  // it for a moment before sleeping on cv.
  std::atomic<bool> ready{false};
  std::condition_variable cv;
};

namespace {

// Polls of Writer::ready before a waiting writer sleeps (~10 us with _mm_pause).
constexpr int kWriterSpins = 1000;

std::string segment_name(int64_t base, const char* ext) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%020" PRId64 "%s", base, ext);
  return buf;
}

bool parse_segment_name(const std::string& name, int64_t* base) {
  if (name.size() != 24 || name.compare(20, 4, ".log") != 0) return false;
  int64_t v = 0;
  for (size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + (name[i] - '0');
  }
  *base = v;
  return true;
}

constexpr size_t kReadChunk = 256 * 1024;
constexpr uint64_t kMaxGroupBytes = 16ULL << 20;

}  // namespace

Partition::Partition(std::string dir, uint32_t id, PartitionOptions opts)
    : dir_(std::move(dir)),
      id_(id),
      opts_(opts),
      fs_(opts.fs ? opts.fs : default_fs()),
      clock_(opts.clock ? opts.clock : system_clock()) {}

Partition::~Partition() { (void)close(); }

Status Partition::open_segment_files(Segment& seg, bool for_write) {
  SPATE_ASSIGN_OR_RETURN(seg.log_r, fs_->open_readable(seg.log_path));
  if (for_write) {
    SPATE_ASSIGN_OR_RETURN(seg.log_w, fs_->open_appendable(seg.log_path));
  }
  return Status::Ok();
}

Result<std::shared_ptr<Partition::Segment>> Partition::create_segment(int64_t base_offset) {
  auto seg = std::make_shared<Segment>();
  seg->base_offset = base_offset;
  seg->next_offset = base_offset;
  seg->log_path = path_join(dir_, segment_name(base_offset, ".log"));
  seg->index_path = path_join(dir_, segment_name(base_offset, ".index"));
  seg->time_path = path_join(dir_, segment_name(base_offset, ".timeindex"));
  SPATE_ASSIGN_OR_RETURN(seg->log_w, fs_->open_truncated(seg->log_path));
  SPATE_ASSIGN_OR_RETURN(seg->index_w, fs_->open_truncated(seg->index_path));
  SPATE_ASSIGN_OR_RETURN(seg->time_w, fs_->open_truncated(seg->time_path));
  SPATE_ASSIGN_OR_RETURN(seg->log_r, fs_->open_readable(seg->log_path));
  SPATE_RETURN_IF_ERROR(fs_->sync_dir(dir_));
  seg->created_ms = clock_->now_ms();
  return seg;
}

// Scan the segment's batches from the start, verifying structure and CRC; rebuild the indexes
// from what is valid. For the active segment, anything after the last valid batch is truncated.
Status Partition::recover_segment(Segment& seg, bool is_active) {
  SPATE_ASSIGN_OR_RETURN(uint64_t file_size, seg.log_r->size());
  std::string buf;
  uint64_t pos = 0;
  int64_t expected = seg.base_offset;
  int64_t max_ts = INT64_MIN;
  std::vector<Segment::IndexEntry> index;
  std::vector<Segment::TimeEntry> time_index;
  uint64_t since_index = 0;
  bool stop = false;
  while (!stop && pos < file_size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kReadChunk, file_size - pos));
    buf.resize(want);
    SPATE_ASSIGN_OR_RETURN(size_t got, seg.log_r->read_at(pos, want, buf.data()));
    buf.resize(got);
    size_t p = 0;
    while (true) {
      BatchHeader h;
      if (got - p < kHeaderSize) {
        if (pos + p + kHeaderSize > file_size) stop = true;  // torn header at the tail
        break;
      }
      if (!logfmt::parse_header(buf.data() + p, got - p, &h).ok() || h.base_offset != expected) {
        stop = true;
        break;
      }
      if (h.total_size() > got - p) {
        if (pos + p + h.total_size() > file_size) {
          stop = true;  // torn batch at the tail
          break;
        }
        if (p == 0) {  // a batch bigger than the chunk: read it whole
          buf.resize(h.total_size());
          SPATE_ASSIGN_OR_RETURN(size_t g2, seg.log_r->read_at(pos, buf.size(), buf.data()));
          if (g2 != buf.size()) {
            stop = true;
            break;
          }
          got = g2;
        } else {
          break;
        }
      }
      if (!logfmt::crc_ok(buf.data() + p, h)) {
        stop = true;
        break;
      }
      uint64_t at = pos + p;
      if (index.empty() || since_index >= opts_.index_interval_bytes) {
        auto rel = static_cast<uint32_t>(h.base_offset - seg.base_offset);
        index.push_back({rel, static_cast<uint32_t>(at)});
        int64_t ts_so_far = std::max(max_ts, h.max_timestamp);
        time_index.push_back({ts_so_far, rel, static_cast<uint32_t>(at)});
        since_index = 0;
      }
      since_index += h.total_size();
      max_ts = std::max(max_ts, h.max_timestamp);
      expected = h.last_offset() + 1;
      p += h.total_size();
    }
    if (p == 0 && !stop) stop = true;  // cannot make progress
    pos += p;
  }
  recovery_.scanned_bytes += pos;
  if (pos < file_size) {
    if (!is_active) {
      return Corruption("segment " + seg.log_path + " is corrupt at byte " + std::to_string(pos) +
                        " (not the active segment; refusing to truncate)");
    }
    recovery_.truncated_bytes += file_size - pos;
    opts_.counters->truncated_bytes.fetch_add(file_size - pos, std::memory_order_relaxed);
    SPATE_RETURN_IF_ERROR(fs_->truncate(seg.log_path, pos));
  }
  seg.next_offset = expected;
  seg.visible_size = pos;
  seg.disk_size = pos;
  seg.max_timestamp = max_ts;
  seg.bytes_since_index = since_index;
  if (max_ts != INT64_MIN && !time_index.empty() && time_index.back().ts < max_ts) {
    // Closed segments end with an entry carrying the segment's true max timestamp.
    if (!is_active) time_index.push_back({max_ts, time_index.back().rel, time_index.back().pos});
  }
  {
    std::unique_lock lk(seg.index_mu);
    seg.index = std::move(index);
    seg.time_index = std::move(time_index);
  }
  ++recovery_.rebuilt_indexes;
  return rebuild_indexes(seg, pos);
}

// Rewrite the index files from the in-memory indexes.
Status Partition::rebuild_indexes(Segment& seg, uint64_t) {
  std::string ib, tb;
  {
    std::shared_lock lk(seg.index_mu);
    ib.resize(seg.index.size() * logfmt::kIndexEntrySize);
    for (size_t i = 0; i < seg.index.size(); ++i) {
      logfmt::put_u32(ib.data() + i * 8, seg.index[i].rel);
      logfmt::put_u32(ib.data() + i * 8 + 4, seg.index[i].pos);
    }
    tb.resize(seg.time_index.size() * logfmt::kTimeIndexEntrySize);
    for (size_t i = 0; i < seg.time_index.size(); ++i) {
      logfmt::put_i64(tb.data() + i * 16, seg.time_index[i].ts);
      logfmt::put_u32(tb.data() + i * 16 + 8, seg.time_index[i].rel);
      logfmt::put_u32(tb.data() + i * 16 + 12, seg.time_index[i].pos);
    }
  }
  SPATE_ASSIGN_OR_RETURN(auto iw, fs_->open_truncated(seg.index_path));
  SPATE_RETURN_IF_ERROR(iw->append(ib.data(), ib.size()));
  SPATE_ASSIGN_OR_RETURN(auto tw, fs_->open_truncated(seg.time_path));
  SPATE_RETURN_IF_ERROR(tw->append(tb.data(), tb.size()));
  seg.index_w = std::move(iw);
  seg.time_w = std::move(tw);
  return Status::Ok();
}

Status Partition::open() {
  SPATE_RETURN_IF_ERROR(fs_->create_dirs(dir_));
  SPATE_ASSIGN_OR_RETURN(auto names, fs_->list_dir(dir_));
  std::vector<int64_t> bases;
  for (const auto& n : names) {
    int64_t b;
    if (parse_segment_name(n, &b)) {
      bases.push_back(b);
    } else if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) {
      (void)fs_->remove_file(path_join(dir_, n));
    }
  }
  std::sort(bases.begin(), bases.end());
  std::vector<std::shared_ptr<Segment>> segs;
  for (size_t i = 0; i < bases.size(); ++i) {
    auto seg = std::make_shared<Segment>();
    seg->base_offset = bases[i];
    seg->log_path = path_join(dir_, segment_name(bases[i], ".log"));
    seg->index_path = path_join(dir_, segment_name(bases[i], ".index"));
    seg->time_path = path_join(dir_, segment_name(bases[i], ".timeindex"));
    bool active = i + 1 == bases.size();
    SPATE_RETURN_IF_ERROR(open_segment_files(*seg, false));
    if (active) {
      SPATE_RETURN_IF_ERROR(recover_segment(*seg, true));
      SPATE_RETURN_IF_ERROR(open_segment_files(*seg, true));
      seg->created_ms = clock_->now_ms();
    } else {
      // Trust a closed segment if its persisted indexes are consistent with it.
      SPATE_ASSIGN_OR_RETURN(uint64_t size, seg->log_r->size());
      auto ib = fs_->read_file(seg->index_path);
      auto tb = fs_->read_file(seg->time_path);
      bool ok = ib.ok() && tb.ok() && ib->size() % logfmt::kIndexEntrySize == 0 &&
                tb->size() % logfmt::kTimeIndexEntrySize == 0 && !ib->empty() && !tb->empty() &&
                size > 0;
      std::vector<Segment::IndexEntry> index;
      std::vector<Segment::TimeEntry> tindex;
      if (ok) {
        for (size_t k = 0; k < ib->size(); k += 8) {
          Segment::IndexEntry e{logfmt::get_u32(ib->data() + k), logfmt::get_u32(ib->data() + k + 4)};
          if (e.pos >= size || (!index.empty() && (e.rel <= index.back().rel || e.pos <= index.back().pos)) ||
              (index.empty() && (e.rel != 0 || e.pos != 0))) {
            ok = false;
            break;
          }
          index.push_back(e);
        }
      }
      if (ok) {
        for (size_t k = 0; k < tb->size(); k += 16) {
          Segment::TimeEntry e{logfmt::get_i64(tb->data() + k), logfmt::get_u32(tb->data() + k + 8),
                               logfmt::get_u32(tb->data() + k + 12)};
          if (e.pos >= size || (!tindex.empty() && e.ts < tindex.back().ts)) {
            ok = false;
            break;
          }
          tindex.push_back(e);
        }
      }
      int64_t next = bases[i + 1];
      if (ok) {
        seg->visible_size = size;
        seg->disk_size = size;
        seg->next_offset = next;
        seg->max_timestamp = tindex.back().ts;
        std::unique_lock lk(seg->index_mu);
        seg->index = std::move(index);
        seg->time_index = std::move(tindex);
      } else {
        SPATE_RETURN_IF_ERROR(recover_segment(*seg, false));
        if (seg->next_offset.load() != next) {
          return Corruption("segment " + seg->log_path + " ends at offset " +
                            std::to_string(seg->next_offset.load()) + " but the next starts at " +
                            std::to_string(next));
        }
      }
      seg->index_w.reset();
      seg->time_w.reset();
    }
    segs.push_back(std::move(seg));
  }
  if (segs.empty()) {
    SPATE_ASSIGN_OR_RETURN(auto seg, create_segment(0));
    segs.push_back(std::move(seg));
  }
  end_offset_ = segs.back()->next_offset.load();
  {
    std::unique_lock lk(segments_mu_);
    segments_ = std::move(segs);
  }
  return Status::Ok();
}

std::vector<std::shared_ptr<Partition::Segment>> Partition::snapshot() const {
  std::shared_lock lk(segments_mu_);
  return segments_;
}

Status Partition::roll_locked() {
  // Called by the leader only. Seal the active segment: final time-index entry, fsync.
  std::shared_ptr<Segment> old;
  {
    std::shared_lock lk(segments_mu_);
    old = segments_.back();
  }
  std::lock_guard sl(sync_mu_);
  {
    std::unique_lock lk(old->index_mu);
    int64_t mt = old->max_timestamp.load();
    if (!old->time_index.empty() && mt > old->time_index.back().ts) {
      auto e = old->time_index.back();
      e.ts = mt;
      old->time_index.push_back(e);
      char b[16];
      logfmt::put_i64(b, e.ts);
      logfmt::put_u32(b + 8, e.rel);
      logfmt::put_u32(b + 12, e.pos);
      SPATE_RETURN_IF_ERROR(old->time_w->append(b, 16));
    }
  }
  SPATE_RETURN_IF_ERROR(timed_sync(*old->log_w));
  SPATE_RETURN_IF_ERROR(old->index_w->sync());
  SPATE_RETURN_IF_ERROR(old->time_w->sync());
  SPATE_ASSIGN_OR_RETURN(auto seg, create_segment(end_offset_.load()));
  SPATE_RETURN_IF_ERROR(old->log_w->close());
  old->log_w.reset();
  old->index_w.reset();
  old->time_w.reset();
  std::unique_lock lk(segments_mu_);
  segments_.push_back(std::move(seg));
  return Status::Ok();
}

Status Partition::write_group(std::vector<Writer*>& group) {
  uint64_t group_bytes = 0;
  for (auto* w : group) group_bytes += w->batch->size();
  std::shared_ptr<Segment> seg;
  {
    std::shared_lock lk(segments_mu_);
    seg = segments_.back();
  }
  uint64_t cur = seg->log_w->size();
  if (cur > 0 && (cur + group_bytes > opts_.segment_bytes ||
                  clock_->now_ms() - seg->created_ms >= opts_.segment_ms)) {
    SPATE_RETURN_IF_ERROR(roll_locked());
    std::shared_lock lk(segments_mu_);
    seg = segments_.back();
  }
  int64_t off = end_offset_.load(std::memory_order_relaxed);
  std::vector<WritableFile::Slice> slices;
  slices.reserve(group.size());
  for (auto* w : group) {
    logfmt::set_base_offset(w->batch->data(), off);
    w->base = off;
    off += w->count;
    slices.push_back({w->batch->data(), w->batch->size()});
  }
  uint64_t pos0 = seg->log_w->size();
  Status s = seg->log_w->append_v(slices.data(), slices.size());
  if (!s.ok()) {
    Status t = seg->log_w->truncate(pos0);
    if (!t.ok()) {
      std::lock_guard lk(mu_);
      failed_ = t.with_context("rolling back a failed write");
    }
    return s;
  }
  if (opts_.fsync == FsyncPolicy::kAlways) {
    std::lock_guard sl(sync_mu_);
    s = timed_sync(*seg->log_w);
    if (!s.ok()) {
      std::lock_guard lk(mu_);
      failed_ = s.with_context("fsync failed; partition is read-only until reopened");
      return failed_;
    }
  } else {
    dirty_.store(true, std::memory_order_release);
  }
  // Indexes.
  char ibuf[8 * 64];
  char tbuf[16 * 64];
  size_t ni = 0, nt = 0;
  uint64_t pos = pos0;
  int64_t max_ts = seg->max_timestamp.load(std::memory_order_relaxed);
  {
    std::unique_lock lk(seg->index_mu);
    for (auto* w : group) {
      max_ts = std::max(max_ts, w->max_ts);
      if ((seg->index.empty() || seg->bytes_since_index >= opts_.index_interval_bytes) && ni < 64) {
        auto rel = static_cast<uint32_t>(w->base - seg->base_offset);
        seg->index.push_back({rel, static_cast<uint32_t>(pos)});
        logfmt::put_u32(ibuf + ni * 8, rel);
        logfmt::put_u32(ibuf + ni * 8 + 4, static_cast<uint32_t>(pos));
        ++ni;
        seg->time_index.push_back({max_ts, rel, static_cast<uint32_t>(pos)});
        logfmt::put_i64(tbuf + nt * 16, max_ts);
        logfmt::put_u32(tbuf + nt * 16 + 8, rel);
        logfmt::put_u32(tbuf + nt * 16 + 12, static_cast<uint32_t>(pos));
        ++nt;
        seg->bytes_since_index = 0;
      }
      seg->bytes_since_index += w->batch->size();
      pos += w->batch->size();
    }
  }
  // Index files are advisory (rebuilt on recovery); their write errors do not fail the append.
  if (ni > 0) (void)seg->index_w->append(ibuf, ni * 8);
  if (nt > 0) (void)seg->time_w->append(tbuf, nt * 16);
  seg->max_timestamp.store(max_ts, std::memory_order_relaxed);
  seg->disk_size.store(pos, std::memory_order_relaxed);
  seg->next_offset.store(off, std::memory_order_release);
  seg->visible_size.store(pos, std::memory_order_release);
  end_offset_.store(off, std::memory_order_release);
  LogCounters& c = *opts_.counters;
  c.write_groups.fetch_add(1, std::memory_order_relaxed);
  c.appends.fetch_add(group.size(), std::memory_order_relaxed);
  c.records.fetch_add(static_cast<uint64_t>(off - group.front()->base), std::memory_order_relaxed);
  c.bytes.fetch_add(pos - pos0, std::memory_order_relaxed);
  {
    std::lock_guard lk(wait_mu_);
  }
  wait_cv_.notify_all();
  return Status::Ok();
}

Result<int64_t> Partition::append(const RecordIn* records, size_t count) {
  thread_local std::string buf;
  thread_local std::string scratch;
  SPATE_RETURN_IF_ERROR(
      logfmt::encode_batch(records, count, clock_->now_ms(), opts_.compression, &buf, &scratch));
  Writer w;
  w.batch = &buf;
  w.count = static_cast<uint32_t>(count);
  w.max_ts = logfmt::get_i64(buf.data() + 32);
  std::unique_lock lk(mu_);
  if (closed_) return Unavailable("partition is closed");
  if (!failed_.ok()) return failed_;
  writers_.push_back(&w);
  if (&w != writers_.front()) {
    // A leader is writing (a few microseconds without fsync): poll briefly before sleeping, so
    // that the common short wait costs no futex wait/wake and no thread switch. The lock is
    // taken again before `w` is used (the leader only touches `w` under it).
    lk.unlock();
    for (int i = 0; i < kWriterSpins && !w.ready.load(std::memory_order_acquire); ++i) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#else
      std::this_thread::yield();
#endif
    }
    lk.lock();
  }
  while (!w.done && &w != writers_.front()) w.cv.wait(lk);
  if (w.done) {
    if (!w.status.ok()) return w.status;
    return w.base;
  }
  // Leader: take a group from the front of the queue.
  std::vector<Writer*> group;
  uint64_t bytes = 0;
  for (Writer* x : writers_) {
    if (!group.empty() && bytes + x->batch->size() > kMaxGroupBytes) break;
    group.push_back(x);
    bytes += x->batch->size();
  }
  Status s;
  if (!failed_.ok()) {
    s = failed_;
  } else {
    lk.unlock();
    s = write_group(group);
    lk.lock();
  }
  for (Writer* x : group) {
    writers_.pop_front();
    x->status = s;
    x->done = true;
    if (x != &w) {
      x->ready.store(true, std::memory_order_release);
      x->cv.notify_one();
    }
  }
  if (!writers_.empty()) {
    writers_.front()->ready.store(true, std::memory_order_release);
    writers_.front()->cv.notify_one();
  }
  if (!s.ok()) {
    opts_.counters->append_errors.fetch_add(group.size(), std::memory_order_relaxed);
    return s;
  }
  return w.base;
}

Status Partition::read_segment(const std::shared_ptr<Segment>& seg, int64_t offset,
                               const FetchOptions& opts, FetchResult* out, size_t* bytes) {
  uint64_t visible = seg->visible_size.load(std::memory_order_acquire);
  uint64_t pos = offset > seg->base_offset ? seg->lookup(offset) : 0;
  while (pos < visible && out->records_.size() < opts.max_records && *bytes < opts.max_bytes) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(
        visible - pos, std::max<size_t>(kReadChunk, opts.max_bytes - *bytes)));
    auto buf = std::make_unique<std::string>(want, '\0');
    SPATE_ASSIGN_OR_RETURN(size_t got, seg->log_r->read_at(pos, want, buf->data()));
    if (got < kHeaderSize) return Corruption("short read in " + seg->log_path);
    size_t p = 0;
    size_t before = out->records_.size();
    while (p < got && out->records_.size() < opts.max_records && *bytes < opts.max_bytes) {
      BatchHeader h;
      if (got - p < kHeaderSize) break;
      Status s = logfmt::parse_header(buf->data() + p, got - p, &h);
      if (!s.ok()) {
        return s.with_context(seg->log_path + " at byte " + std::to_string(pos + p));
      }
      if (h.total_size() > got - p) {
        if (p > 0) break;
        // A single batch larger than the chunk: read it whole.
        buf->resize(h.total_size());
        SPATE_ASSIGN_OR_RETURN(got, seg->log_r->read_at(pos, buf->size(), buf->data()));
        if (got != buf->size()) return Corruption("short batch in " + seg->log_path);
      }
      if (h.last_offset() >= offset) {
        if (!logfmt::crc_ok(buf->data() + p, h)) {
          return Corruption("bad crc in " + seg->log_path + " at byte " + std::to_string(pos + p));
        }
        size_t n0 = out->records_.size();
        SPATE_RETURN_IF_ERROR(logfmt::decode_records(buf->data() + p, h, offset, out,
                                                     opts.max_records));
        for (size_t k = n0; k < out->records_.size(); ++k) {
          *bytes += out->records_[k].value.size() + out->records_[k].key.size();
        }
      }
      p += h.total_size();
    }
    if (p == 0) return Corruption("unreadable batch in " + seg->log_path);
    pos += p;
    if (out->records_.size() > before) out->buffers_.push_back(std::move(buf));
  }
  return Status::Ok();
}

Result<FetchResult> Partition::fetch(int64_t offset, const FetchOptions& opts) {
  int64_t end = end_offset_.load(std::memory_order_acquire);
  if (offset == end && opts.wait_ms > 0) {
    std::unique_lock lk(wait_mu_);
    wait_cv_.wait_for(lk, std::chrono::milliseconds(opts.wait_ms), [&] {
      return end_offset_.load(std::memory_order_acquire) > offset || closed_;
    });
    end = end_offset_.load(std::memory_order_acquire);
  }
  auto segs = snapshot();
  int64_t start = segs.front()->base_offset;
  if (offset < start || offset > end) {
    return OutOfRange("offset " + std::to_string(offset) + " is outside [" +
                      std::to_string(start) + ", " + std::to_string(end) + "] of partition " +
                      std::to_string(id_));
  }
  FetchResult out;
  out.end_offset = end;
  out.next_offset = offset;
  if (offset == end || opts.max_records == 0) return out;
  auto it = std::upper_bound(segs.begin(), segs.end(), offset,
                             [](int64_t o, const std::shared_ptr<Segment>& s) {
                               return o < s->base_offset;
                             });
  size_t bytes = 0;
  for (--it; it != segs.end(); ++it) {
    SPATE_RETURN_IF_ERROR(read_segment(*it, offset, opts, &out, &bytes));
    if (out.records_.size() >= opts.max_records || bytes >= opts.max_bytes) break;
  }
  if (!out.records_.empty()) out.next_offset = out.records_.back().offset + 1;
  return out;
}

Result<int64_t> Partition::offset_for_timestamp(int64_t ts_ms) {
  auto segs = snapshot();
  for (const auto& seg : segs) {
    if (seg->max_timestamp.load(std::memory_order_acquire) < ts_ms) continue;
    uint64_t visible = seg->visible_size.load(std::memory_order_acquire);
    uint64_t pos = seg->lookup_time(ts_ms);
    while (pos < visible) {
      char hb[kHeaderSize];
      SPATE_ASSIGN_OR_RETURN(size_t got, seg->log_r->read_at(pos, kHeaderSize, hb));
      BatchHeader h;
      SPATE_RETURN_IF_ERROR(logfmt::parse_header(hb, got, &h));
      if (h.max_timestamp >= ts_ms) {
        std::string b(h.total_size(), '\0');
        SPATE_ASSIGN_OR_RETURN(size_t g2, seg->log_r->read_at(pos, b.size(), b.data()));
        if (g2 != b.size() || !logfmt::crc_ok(b.data(), h)) {
          return Corruption("bad batch in " + seg->log_path + " at byte " + std::to_string(pos));
        }
        FetchResult tmp;
        SPATE_RETURN_IF_ERROR(logfmt::decode_records(b.data(), h, 0, &tmp, SIZE_MAX));
        for (const auto& r : tmp.records_) {
          if (r.timestamp_ms >= ts_ms) return r.offset;
        }
      }
      pos += h.total_size();
    }
  }
  return end_offset_.load(std::memory_order_acquire);
}

Status Partition::timed_sync(WritableFile& f) {
  int64_t t0 = clock_->steady_ns();
  Status s = f.sync();
  opts_.counters->fsyncs.fetch_add(1, std::memory_order_relaxed);
  opts_.counters->fsync_ns.fetch_add(static_cast<uint64_t>(clock_->steady_ns() - t0),
                                     std::memory_order_relaxed);
  return s;
}

Status Partition::sync_if_dirty() {
  if (!dirty_.exchange(false, std::memory_order_acq_rel)) return Status::Ok();
  std::shared_ptr<Segment> seg;
  {
    std::shared_lock lk(segments_mu_);
    seg = segments_.back();
  }
  std::lock_guard sl(sync_mu_);
  if (!seg->log_w) return Status::Ok();  // rolled (and synced) meanwhile
  Status s = timed_sync(*seg->log_w);
  if (!s.ok()) {
    std::lock_guard lk(mu_);
    failed_ = s.with_context("background fsync failed; partition is read-only until reopened");
  }
  return s;
}

Result<int> Partition::enforce_retention() {
  const RetentionConfig& r = opts_.retention;
  if (r.ms < 0 && r.bytes < 0) return 0;
  std::vector<std::shared_ptr<Segment>> doomed;
  {
    std::unique_lock lk(segments_mu_);
    uint64_t total = 0;
    for (const auto& s : segments_) total += s->disk_size.load();
    int64_t now = clock_->now_ms();
    size_t n = 0;
    while (n + 1 < segments_.size()) {
      const auto& s = segments_[n];
      uint64_t sz = s->disk_size.load();
      bool by_age = r.ms >= 0 && s->max_timestamp.load() < now - r.ms;
      bool by_size = r.bytes >= 0 && total - sz >= static_cast<uint64_t>(r.bytes) &&
                     total > static_cast<uint64_t>(r.bytes);
      if (!by_age && !by_size) break;
      total -= sz;
      ++n;
    }
    doomed.assign(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
    segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  for (const auto& s : doomed) {
    SPATE_RETURN_IF_ERROR(fs_->remove_file(s->log_path));
    (void)fs_->remove_file(s->index_path);
    (void)fs_->remove_file(s->time_path);
  }
  if (!doomed.empty()) SPATE_RETURN_IF_ERROR(fs_->sync_dir(dir_));
  return static_cast<int>(doomed.size());
}

Status Partition::close() {
  {
    std::unique_lock lk(mu_);
    if (closed_) return Status::Ok();
    closed_ = true;
    while (!writers_.empty()) {
      lk.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      lk.lock();
    }
  }
  {
    std::lock_guard lk(wait_mu_);
  }
  wait_cv_.notify_all();
  Status result;
  std::shared_ptr<Segment> seg;
  {
    std::shared_lock lk(segments_mu_);
    if (segments_.empty()) return Status::Ok();
    seg = segments_.back();
  }
  std::lock_guard sl(sync_mu_);
  if (seg->log_w) {
    bool failed;
    {
      std::lock_guard lk(mu_);
      failed = !failed_.ok();
    }
    // A clean stop makes everything durable whatever the policy.
    if (!failed) result = timed_sync(*seg->log_w);
    Status c = seg->log_w->close();
    if (result.ok()) result = c;
    seg->log_w.reset();
  }
  if (seg->index_w) (void)seg->index_w->close();
  if (seg->time_w) (void)seg->time_w->close();
  return result;
}

PartitionInfo Partition::info() const {
  PartitionInfo pi;
  pi.partition = id_;
  auto segs = snapshot();
  pi.start_offset = segs.empty() ? 0 : segs.front()->base_offset;
  pi.end_offset = end_offset_.load(std::memory_order_acquire);
  for (const auto& s : segs) pi.size_bytes += s->disk_size.load();
  pi.segments = static_cast<uint32_t>(segs.size());
  return pi;
}

}  // namespace spate
