#include "log/embedded/partition.h"

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "base/crc32c.h"
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
  const logfmt::TxnTag* txn = nullptr;  // transactional or control batch
  bool marker_commit = false;           // for a control batch: COMMIT (else ABORT)
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
constexpr size_t kAbortedEntrySize = 28;  // i64 producer, i64 first, i64 last, u32 crc
constexpr char kAbortedFile[] = "aborted.idx";

// Open-transaction snapshot: u32 count, count x (i64 producer, i64 seq, i64 first), u32 crc32c.
std::string encode_snapshot(const std::vector<OpenTxn>& open) {
  std::string out;
  char b[8];
  logfmt::put_u32(b, static_cast<uint32_t>(open.size()));
  out.append(b, 4);
  for (const OpenTxn& t : open) {
    for (int64_t v : {t.producer_id, t.txn_seq, t.first_offset}) {
      logfmt::put_i64(b, v);
      out.append(b, 8);
    }
  }
  logfmt::put_u32(b, crc32c::value(out.data(), out.size()));
  out.append(b, 4);
  return out;
}

bool decode_snapshot(const std::string& in, std::vector<OpenTxn>* open) {
  if (in.size() < 8) return false;
  uint32_t n = logfmt::get_u32(in.data());
  if (in.size() != 8 + static_cast<uint64_t>(n) * 24) return false;
  if (crc32c::value(in.data(), in.size() - 4) != logfmt::get_u32(in.data() + in.size() - 4)) {
    return false;
  }
  for (uint32_t i = 0; i < n; ++i) {
    const char* q = in.data() + 4 + i * 24;
    open->push_back({logfmt::get_i64(q), logfmt::get_i64(q + 8), logfmt::get_i64(q + 16)});
  }
  return true;
}
constexpr uint64_t kMaxGroupBytes = 16ULL << 20;

}  // namespace

Partition::Partition(std::string dir, uint32_t id, PartitionOptions opts)
    : dir_(std::move(dir)),
      id_(id),
      opts_(opts),
      fs_(opts.fs ? opts.fs : default_fs()),
      clock_(opts.clock ? opts.clock : system_clock()),
      aborted_(std::make_shared<AbortedMap>()) {}

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
      if (is_active && h.has_ext()) {
        logfmt::parse_ext(buf.data() + p, &h);
        SPATE_RETURN_IF_ERROR(recover_txn_batch(buf.data() + p, h));
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
  SPATE_RETURN_IF_ERROR(load_txn_state(bases.empty() ? -1 : bases.back()));
  for (const auto& n : names) {  // snapshots of segments that are no longer active
    if (n.size() > 8 && n.compare(n.size() - 8, 8, ".txnsnap") == 0 &&
        (bases.empty() || n != segment_name(bases.back(), ".txnsnap"))) {
      (void)fs_->remove_file(path_join(dir_, n));
    }
  }
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
  if (aborted_dirty_) SPATE_RETURN_IF_ERROR(persist_aborted());
  return Status::Ok();
}

Status Partition::load_txn_state(int64_t active_base) {
  std::string apath = path_join(dir_, kAbortedFile);
  SPATE_ASSIGN_OR_RETURN(bool have_aborted, fs_->exists(apath));
  auto m = std::make_shared<AbortedMap>();
  if (have_aborted) {
    SPATE_ASSIGN_OR_RETURN(std::string data, fs_->read_file(apath));
    size_t n = data.size() / kAbortedEntrySize;
    for (size_t i = 0; i < n; ++i) {
      const char* q = data.data() + i * kAbortedEntrySize;
      if (crc32c::value(q, 24) != logfmt::get_u32(q + 24)) {
        aborted_dirty_ = true;  // written atomically, so only a foreign edit gets here: rewrite
        break;
      }
      (*m)[logfmt::get_i64(q)].push_back({logfmt::get_i64(q + 8), logfmt::get_i64(q + 16)});
    }
    for (auto& [pid, v] : *m) std::sort(v.begin(), v.end());
  }
  std::lock_guard lk(txn_mu_);
  aborted_ = std::move(m);
  open_txns_.clear();
  if (active_base >= 0) {
    std::string spath = path_join(dir_, segment_name(active_base, ".txnsnap"));
    SPATE_ASSIGN_OR_RETURN(bool have_snap, fs_->exists(spath));
    has_snapshot_ = have_snap;
    if (have_snap) {
      SPATE_ASSIGN_OR_RETURN(std::string data, fs_->read_file(spath));
      std::vector<OpenTxn> open;
      if (!decode_snapshot(data, &open)) {
        return Corruption("bad open-transaction snapshot " + spath);
      }
      for (const auto& t : open) open_txns_[t.producer_id] = t;
    }
  }
  any_open_.store(!open_txns_.empty(), std::memory_order_release);
  return Status::Ok();
}

Status Partition::recover_txn_batch(const char* batch, const BatchHeader& h) {
  std::lock_guard lk(txn_mu_);
  if (!h.is_control()) {
    open_txns_.try_emplace(h.producer_id, OpenTxn{h.producer_id, h.txn_seq, h.base_offset});
    any_open_.store(true, std::memory_order_release);
    return Status::Ok();
  }
  SPATE_ASSIGN_OR_RETURN(bool commit, logfmt::marker_is_commit(batch, h));
  auto it = open_txns_.find(h.producer_id);
  if (it == open_txns_.end() || it->second.txn_seq != h.txn_seq) return Status::Ok();
  if (!commit) {
    auto m = std::make_shared<AbortedMap>(*aborted_);
    auto& v = (*m)[h.producer_id];
    std::pair<int64_t, int64_t> r{it->second.first_offset, h.base_offset};
    auto pos = std::lower_bound(v.begin(), v.end(), r);
    if (pos == v.end() || *pos != r) {
      v.insert(pos, r);
      aborted_ = std::move(m);
      aborted_dirty_ = true;
    }
  }
  open_txns_.erase(it);
  any_open_.store(!open_txns_.empty(), std::memory_order_release);
  return Status::Ok();
}

Status Partition::persist_aborted() {
  std::shared_ptr<const AbortedMap> m;
  {
    std::lock_guard lk(txn_mu_);
    m = aborted_;
  }
  std::string out;
  for (const auto& [pid, v] : *m) {
    for (const auto& [first, last] : v) {
      char e[kAbortedEntrySize];
      logfmt::put_i64(e, pid);
      logfmt::put_i64(e + 8, first);
      logfmt::put_i64(e + 16, last);
      logfmt::put_u32(e + 24, crc32c::value(e, 24));
      out.append(e, kAbortedEntrySize);
    }
  }
  SPATE_RETURN_IF_ERROR(fs_->write_file_atomic(path_join(dir_, kAbortedFile), out));
  aborted_dirty_ = false;
  return Status::Ok();
}

void Partition::apply_txn_effects(std::vector<Writer*>& group) {
  bool abort_added = false;
  {
    std::lock_guard lk(txn_mu_);
    for (auto* w : group) {
      if (w->txn == nullptr) continue;
      const logfmt::TxnTag& t = *w->txn;
      if (!t.control) {
        open_txns_.try_emplace(t.producer_id, OpenTxn{t.producer_id, t.txn_seq, w->base});
        continue;
      }
      auto it = open_txns_.find(t.producer_id);
      if (it == open_txns_.end() || it->second.txn_seq != t.txn_seq) continue;
      if (!w->marker_commit) {
        auto m = std::make_shared<AbortedMap>(*aborted_);
        (*m)[t.producer_id].push_back({it->second.first_offset, w->base});
        aborted_ = std::move(m);
        abort_added = true;
      }
      open_txns_.erase(it);
    }
    any_open_.store(!open_txns_.empty(), std::memory_order_release);
  }
  if (abort_added) {
    aborted_dirty_ = true;
    // On failure aborted.idx is rewritten at the next abort or roll; until then the ABORT marker
    // sits in the active segment, whose scan on open restores the range.
    (void)persist_aborted();
  }
}

bool Partition::is_aborted(const AbortedMap& m, int64_t producer_id, int64_t offset) {
  auto it = m.find(producer_id);
  if (it == m.end()) return false;
  const auto& v = it->second;
  auto r = std::upper_bound(v.begin(), v.end(), std::pair<int64_t, int64_t>{offset, INT64_MAX});
  if (r == v.begin()) return false;
  --r;
  return r->first <= offset && offset <= r->second;
}

void Partition::lso_and_end(int64_t* lso, int64_t* end,
                            std::shared_ptr<const AbortedMap>* aborted) const {
  std::lock_guard lk(txn_mu_);
  *end = end_offset_.load(std::memory_order_acquire);
  *lso = *end;
  for (const auto& [pid, t] : open_txns_) *lso = std::min(*lso, t.first_offset);
  if (aborted != nullptr) *aborted = aborted_;
}

int64_t Partition::last_stable_offset() const {
  int64_t lso, end;
  lso_and_end(&lso, &end, nullptr);
  return lso;
}

std::vector<OpenTxn> Partition::open_transactions() const {
  std::lock_guard lk(txn_mu_);
  std::vector<OpenTxn> out;
  for (const auto& [pid, t] : open_txns_) out.push_back(t);
  return out;
}

Status Partition::sync_now() {
  std::shared_ptr<Segment> seg;
  {
    std::shared_lock lk(segments_mu_);
    seg = segments_.back();
  }
  // Everything the caller wrote lies below `target` (visible_size is stored after the write).
  const uint64_t target = seg->visible_size.load(std::memory_order_acquire);
  std::lock_guard sl(sync_mu_);
  if (!seg->log_w) return Status::Ok();  // rolled (and synced) meanwhile
  {
    std::lock_guard lk(mu_);
    if (!failed_.ok()) return failed_;
  }
  // Group fsync: a sync that began after the caller's data was written (its `covers` reached
  // `target`) made that data durable already — e.g. another transaction's commit that touched
  // this partition while we waited for sync_mu_.
  if (synced_base_ == seg->base_offset && synced_size_ >= target) return Status::Ok();
  const uint64_t covers = seg->visible_size.load(std::memory_order_acquire);
  Status s = timed_sync(*seg->log_w);
  if (!s.ok()) {
    std::lock_guard lk(mu_);
    failed_ = s.with_context("fsync failed; partition is read-only until reopened");
    return s;
  }
  synced_base_ = seg->base_offset;
  synced_size_ = covers;
  return s;
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
  // Transactions open across the roll: snapshot them next to the new segment (durably, before it
  // exists), so that open() only has to scan the active segment.
  const int64_t new_base = end_offset_.load();
  std::vector<OpenTxn> open = open_transactions();
  if (!open.empty()) {
    SPATE_RETURN_IF_ERROR(fs_->write_file_atomic(
        path_join(dir_, segment_name(new_base, ".txnsnap")), encode_snapshot(open)));
  }
  if (aborted_dirty_) SPATE_RETURN_IF_ERROR(persist_aborted());  // the marker leaves the active segment
  SPATE_ASSIGN_OR_RETURN(auto seg, create_segment(new_base));
  if (has_snapshot_) (void)fs_->remove_file(path_join(dir_, segment_name(old->base_offset, ".txnsnap")));
  has_snapshot_ = !open.empty();
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
  bool has_txn = false;
  for (auto* w : group) {
    logfmt::set_base_offset(w->batch->data(), off);
    w->base = off;
    off += w->count;
    has_txn |= w->txn != nullptr;
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
  // Transaction state changes become visible together with the batches (before end_offset_).
  if (has_txn) apply_txn_effects(group);
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
  return submit(&buf, static_cast<uint32_t>(count), nullptr, false);
}

Result<int64_t> Partition::append_txn(const RecordIn* records, size_t count, int64_t producer_id,
                                      int64_t txn_seq) {
  thread_local std::string buf;
  thread_local std::string scratch;
  logfmt::TxnTag tag{producer_id, txn_seq, false};
  SPATE_RETURN_IF_ERROR(logfmt::encode_batch(records, count, clock_->now_ms(), opts_.compression,
                                             &buf, &scratch, &tag));
  return submit(&buf, static_cast<uint32_t>(count), &tag, false);
}

Result<int64_t> Partition::append_marker(int64_t producer_id, int64_t txn_seq, bool commit) {
  thread_local std::string buf;
  SPATE_RETURN_IF_ERROR(logfmt::encode_marker(producer_id, txn_seq, commit, clock_->now_ms(), &buf));
  logfmt::TxnTag tag{producer_id, txn_seq, true};
  return submit(&buf, 1, &tag, commit);
}

Result<int64_t> Partition::submit(std::string* batch, uint32_t count, const logfmt::TxnTag* txn,
                                  bool marker_commit) {
  std::string& buf = *batch;
  Writer w;
  w.batch = &buf;
  w.count = count;
  w.max_ts = logfmt::get_i64(buf.data() + 32);
  w.txn = txn;
  w.marker_commit = marker_commit;
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

Status Partition::read_segment(const std::shared_ptr<Segment>& seg, int64_t offset, int64_t limit,
                               const AbortedMap* aborted, const FetchOptions& opts,
                               FetchResult* out, size_t* bytes) {
  uint64_t visible = seg->visible_size.load(std::memory_order_acquire);
  uint64_t pos = offset > seg->base_offset ? seg->lookup(offset) : 0;
  bool at_limit = false;
  while (!at_limit && pos < visible && out->records_.size() < opts.max_records &&
         *bytes < opts.max_bytes) {
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
      if (h.base_offset >= limit) {  // at the last stable offset (read_committed)
        at_limit = true;
        break;
      }
      if (h.last_offset() >= offset) {
        if (!logfmt::crc_ok(buf->data() + p, h)) {
          return Corruption("bad crc in " + seg->log_path + " at byte " + std::to_string(pos + p));
        }
        bool skip = h.is_control();
        if (!skip && aborted != nullptr && h.is_transactional()) {
          logfmt::parse_ext(buf->data() + p, &h);
          skip = is_aborted(*aborted, h.producer_id, h.base_offset);
        }
        if (skip) {
          // Markers and aborted batches occupy offsets but are never returned; count their size
          // so that a run of them still ends the fetch.
          out->next_offset = std::max(out->next_offset, h.last_offset() + 1);
          *bytes += h.total_size();
        } else {
          size_t n0 = out->records_.size();
          SPATE_RETURN_IF_ERROR(logfmt::decode_records(buf->data() + p, h, offset, out,
                                                       opts.max_records));
          for (size_t k = n0; k < out->records_.size(); ++k) {
            *bytes += out->records_[k].value.size() + out->records_[k].key.size();
          }
          if (out->records_.size() > n0) out->next_offset = out->records_.back().offset + 1;
        }
      }
      p += h.total_size();
    }
    if (p == 0) {
      if (at_limit) break;
      return Corruption("unreadable batch in " + seg->log_path);
    }
    pos += p;
    if (out->records_.size() > before) out->buffers_.push_back(std::move(buf));
  }
  return Status::Ok();
}

Result<FetchResult> Partition::fetch(int64_t offset, const FetchOptions& opts) {
  const bool committed = opts.isolation == Isolation::kReadCommitted;
  int64_t end = 0, lso = 0;
  std::shared_ptr<const AbortedMap> aborted;
  if (committed) {
    lso_and_end(&lso, &end, &aborted);
    if (offset >= lso && offset <= end && opts.wait_ms > 0) {
      std::unique_lock lk(wait_mu_);
      wait_cv_.wait_for(lk, std::chrono::milliseconds(opts.wait_ms),
                        [&] { return last_stable_offset() > offset || closed_; });
      lk.unlock();
      lso_and_end(&lso, &end, &aborted);
    }
  } else {
    end = end_offset_.load(std::memory_order_acquire);
    if (offset == end && opts.wait_ms > 0) {
      std::unique_lock lk(wait_mu_);
      wait_cv_.wait_for(lk, std::chrono::milliseconds(opts.wait_ms), [&] {
        return end_offset_.load(std::memory_order_acquire) > offset || closed_;
      });
      end = end_offset_.load(std::memory_order_acquire);
    }
    lso = end;  // reported only; the limit for read_uncommitted is the end
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
  out.last_stable_offset =
      committed || !any_open_.load(std::memory_order_acquire) ? lso : last_stable_offset();
  out.next_offset = offset;
  const int64_t limit = committed ? lso : INT64_MAX;
  if (offset == end || offset >= limit || opts.max_records == 0) return out;
  auto it = std::upper_bound(segs.begin(), segs.end(), offset,
                             [](int64_t o, const std::shared_ptr<Segment>& s) {
                               return o < s->base_offset;
                             });
  size_t bytes = 0;
  for (--it; it != segs.end() && (*it)->base_offset < limit; ++it) {
    SPATE_RETURN_IF_ERROR(read_segment(*it, offset, limit, aborted.get(), opts, &out, &bytes));
    if (out.records_.size() >= opts.max_records || bytes >= opts.max_bytes) break;
  }
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
      if (h.max_timestamp >= ts_ms && !h.is_control()) {
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
  const uint64_t covers = seg->visible_size.load(std::memory_order_acquire);
  Status s = timed_sync(*seg->log_w);
  if (!s.ok()) {
    std::lock_guard lk(mu_);
    failed_ = s.with_context("background fsync failed; partition is read-only until reopened");
    return s;
  }
  synced_base_ = seg->base_offset;  // a sync_now() for data below `covers` can skip its fsync
  synced_size_ = covers;
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
