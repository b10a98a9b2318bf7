#include "log/embedded/offset_store.h"

#include "base/crc32c.h"
#include "log/embedded/format.h"

namespace spate {

// Record: u32 length of body, u32 crc32c(body), body. Bodies:
//   group offsets:   u16 group_len (<= 1000), group, u16 topic_len, topic, u32 count,
//                    count x (u32 partition, i64 offset)
//   typed records:   u16 0xFFFF, u8 type, then
//     type 1 producer:    u16 tid_len, tid, i64 producer_id, i32 epoch
//     type 2 txn commit:  i64 producer_id, i64 txn_seq, u32 count,
//                         count x (u16 group_len, group, u16 topic_len, topic, u32 partition,
//                                  i64 offset)

namespace {

constexpr uint16_t kTyped = 0xFFFF;
constexpr uint8_t kTypeProducer = 1;
constexpr uint8_t kTypeTxnCommit = 2;

void put16(std::string* b, size_t v) {
  char c[2] = {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF)};
  b->append(c, 2);
}
void put32(std::string* b, uint32_t v) {
  char c[4];
  logfmt::put_u32(c, v);
  b->append(c, 4);
}
void put64(std::string* b, int64_t v) {
  char c[8];
  logfmt::put_i64(c, v);
  b->append(c, 8);
}

// Bounds-checked reader over a record body.
struct BodyReader {
  const char* p;
  size_t len;
  size_t q = 0;
  bool bad = false;
  bool need(size_t n) {
    if (bad || n > len - q) bad = true;
    return !bad;
  }
  size_t u16() {
    if (!need(2)) return 0;
    size_t v = static_cast<uint8_t>(p[q]) | (static_cast<size_t>(static_cast<uint8_t>(p[q + 1])) << 8);
    q += 2;
    return v;
  }
  uint8_t u8() {
    if (!need(1)) return 0;
    return static_cast<uint8_t>(p[q++]);
  }
  uint32_t u32() {
    if (!need(4)) return 0;
    uint32_t v = logfmt::get_u32(p + q);
    q += 4;
    return v;
  }
  int64_t i64() {
    if (!need(8)) return 0;
    int64_t v = logfmt::get_i64(p + q);
    q += 8;
    return v;
  }
  std::string str(size_t n) {
    if (!need(n)) return {};
    std::string s(p + q, n);
    q += n;
    return s;
  }
};

}  // namespace

OffsetStore::OffsetStore(FileSystem* fs, std::string dir)
    : fs_(fs), dir_(std::move(dir)), path_(path_join(dir_, "offsets.log")) {}

std::string OffsetStore::frame(const std::string& body) {
  std::string rec(8, '\0');
  logfmt::put_u32(rec.data(), static_cast<uint32_t>(body.size()));
  logfmt::put_u32(rec.data() + 4, crc32c::value(body.data(), body.size()));
  rec += body;
  return rec;
}

std::string OffsetStore::encode(std::string_view group, std::string_view topic,
                                const std::map<uint32_t, int64_t>& offsets) {
  std::string body;
  put16(&body, group.size());
  body.append(group);
  put16(&body, topic.size());
  body.append(topic);
  put32(&body, static_cast<uint32_t>(offsets.size()));
  for (const auto& [p, o] : offsets) {
    put32(&body, p);
    put64(&body, o);
  }
  return frame(body);
}

std::string OffsetStore::encode_producer(std::string_view tid, ProducerEntry e) {
  std::string body;
  put16(&body, kTyped);
  body.push_back(static_cast<char>(kTypeProducer));
  put16(&body, tid.size());
  body.append(tid);
  put64(&body, e.producer_id);
  put32(&body, static_cast<uint32_t>(e.epoch));
  return frame(body);
}

std::string OffsetStore::encode_txn(int64_t producer_id, int64_t txn_seq,
                                    const std::vector<TxnOffset>& offsets) {
  std::string body;
  put16(&body, kTyped);
  body.push_back(static_cast<char>(kTypeTxnCommit));
  put64(&body, producer_id);
  put64(&body, txn_seq);
  put32(&body, static_cast<uint32_t>(offsets.size()));
  for (const auto& o : offsets) {
    put16(&body, o.group.size());
    body.append(o.group);
    put16(&body, o.topic.size());
    body.append(o.topic);
    put32(&body, o.partition);
    put64(&body, o.offset);
  }
  return frame(body);
}

Status OffsetStore::open() {
  std::lock_guard lk(mu_);
  SPATE_RETURN_IF_ERROR(fs_->create_dirs(dir_));
  SPATE_ASSIGN_OR_RETURN(bool exists, fs_->exists(path_));
  if (exists) {
    SPATE_ASSIGN_OR_RETURN(std::string data, fs_->read_file(path_));
    size_t p = 0;
    while (data.size() - p >= 8) {
      uint32_t len = logfmt::get_u32(data.data() + p);
      uint32_t crc = logfmt::get_u32(data.data() + p + 4);
      if (len > data.size() - p - 8) break;
      const char* body = data.data() + p + 8;
      if (crc32c::value(body, len) != crc) break;
      BodyReader r{body, len};
      size_t gl = r.u16();
      if (r.bad) break;
      if (gl == kTyped) {
        uint8_t type = r.u8();
        if (type == kTypeProducer) {
          std::string tid = r.str(r.u16());
          ProducerEntry e;
          e.producer_id = r.i64();
          e.epoch = static_cast<int32_t>(r.u32());
          if (r.bad || r.q != len) break;
          producers_[tid] = e;
        } else if (type == kTypeTxnCommit) {
          int64_t pid = r.i64();
          int64_t seq = r.i64();
          uint32_t n = r.u32();
          std::vector<TxnOffset> offs;
          for (uint32_t i = 0; i < n && !r.bad; ++i) {
            TxnOffset o;
            o.group = r.str(r.u16());
            o.topic = r.str(r.u16());
            o.partition = r.u32();
            o.offset = r.i64();
            offs.push_back(std::move(o));
          }
          if (r.bad || r.q != len) break;
          committed_txns_[pid] = seq;
          for (auto& o : offs) offsets_[{std::move(o.group), std::move(o.topic), o.partition}] = o.offset;
        } else {
          break;  // unknown type: treat like corruption (a newer writer would bump the format)
        }
      } else {
        std::string group = r.str(gl);
        std::string topic = r.str(r.u16());
        uint32_t n = r.u32();
        if (r.bad || static_cast<uint64_t>(n) * 12 != len - r.q) break;
        for (uint32_t i = 0; i < n; ++i) {
          uint32_t part = r.u32();
          offsets_[{group, topic, part}] = r.i64();
        }
      }
      p += 8 + len;
    }
    if (p < data.size()) SPATE_RETURN_IF_ERROR(fs_->truncate(path_, p));
  }
  SPATE_ASSIGN_OR_RETURN(file_, fs_->open_appendable(path_));
  if (file_->size() > (1u << 20)) SPATE_RETURN_IF_ERROR(compact_locked());
  return Status::Ok();
}

Status OffsetStore::compact_locked() {
  std::map<std::pair<std::string, std::string>, std::map<uint32_t, int64_t>> grouped;
  for (const auto& [k, v] : offsets_) grouped[{std::get<0>(k), std::get<1>(k)}][std::get<2>(k)] = v;
  std::string all;
  for (const auto& [tid, e] : producers_) all += encode_producer(tid, e);
  for (const auto& [pid, seq] : committed_txns_) all += encode_txn(pid, seq, {});
  for (const auto& [gt, m] : grouped) all += encode(gt.first, gt.second, m);
  if (file_) (void)file_->close();
  SPATE_RETURN_IF_ERROR(fs_->write_file_atomic(path_, all));
  SPATE_ASSIGN_OR_RETURN(file_, fs_->open_appendable(path_));
  return Status::Ok();
}

// A record waiting to be written by append_grouped().
struct OffsetStore::Waiter {
  const std::string* rec;
  const char* what;
  const std::function<void()>* apply;
  Status status;
  bool done = false;
  std::condition_variable cv;
};

// Group commit: callers queue their record; the first in the queue (the leader) writes every
// queued record with one append and one fsync, outside mu_ (so that more records queue up for
// the next group meanwhile), then — under mu_ again, in file order — applies each record's
// state (only once it is durable) and wakes its writer. Only a leader touches file_ between
// open() and close(), and there is one leader at a time. A failed write or fsync truncates
// the file back to where the group began and fails every record of the group (none of them
// was acknowledged), as a single record's failure did before grouping.
Status OffsetStore::append_grouped(const std::string& rec, const char* what,
                                   const std::function<void()>& apply) {
  Waiter w{&rec, what, &apply, {}, false, {}};
  std::unique_lock lk(mu_);
  queue_.push_back(&w);
  while (!w.done && queue_.front() != &w) w.cv.wait(lk);
  if (w.done) return w.status;
  std::vector<Waiter*> group(queue_.begin(), queue_.end());
  Status s;
  if (!file_) {
    s = Unavailable("offset store is closed");
  } else {
    leader_active_ = true;
    std::string joined;
    const std::string* data = &rec;
    if (group.size() > 1) {
      for (Waiter* x : group) joined += *x->rec;
      data = &joined;
    }
    lk.unlock();
    const uint64_t before = file_->size();
    s = file_->append(data->data(), data->size());
    if (s.ok()) s = file_->sync();
    if (!s.ok()) (void)file_->truncate(before);
    lk.lock();
    leader_active_ = false;
    idle_cv_.notify_all();
  }
  for (Waiter* x : group) {
    queue_.pop_front();
    if (s.ok()) {
      (*x->apply)();
    } else {
      x->status = s.with_context(x->what);
    }
    x->done = true;
    if (x != &w) x->cv.notify_one();
  }
  if (s.ok() && file_->size() > (4u << 20) &&
      file_->size() > (offsets_.size() + producers_.size()) * 64 * 16) {
    Status c = compact_locked();  // still the only writer: the next leader waits for mu_
    if (w.status.ok() && !c.ok()) w.status = c;
  }
  if (!queue_.empty()) queue_.front()->cv.notify_one();
  return w.status;
}

Status OffsetStore::commit(std::string_view group, std::string_view topic,
                           const std::map<uint32_t, int64_t>& offsets) {
  if (group.empty() || group.size() > 1000) return InvalidArgument("bad group name");
  std::string rec = encode(group, topic, offsets);
  const std::function<void()> apply = [&] {
    for (const auto& [p, o] : offsets) offsets_[{std::string(group), std::string(topic), p}] = o;
  };
  return append_grouped(rec, "committing offsets", apply);
}

Status OffsetStore::register_producer(std::string_view transactional_id, ProducerEntry e) {
  if (transactional_id.empty() || transactional_id.size() > 1000) {
    return InvalidArgument("transactional id must be 1-1000 bytes");
  }
  std::string rec = encode_producer(transactional_id, e);
  const std::function<void()> apply = [&] { producers_[std::string(transactional_id)] = e; };
  return append_grouped(rec, "registering transactional producer", apply);
}

std::optional<OffsetStore::ProducerEntry> OffsetStore::producer(
    std::string_view transactional_id) const {
  std::lock_guard lk(mu_);
  auto it = producers_.find(transactional_id);
  if (it == producers_.end()) return std::nullopt;
  return it->second;
}

int64_t OffsetStore::max_producer_id() const {
  std::lock_guard lk(mu_);
  int64_t m = -1;
  for (const auto& [tid, e] : producers_) m = std::max(m, e.producer_id);
  return m;
}

Status OffsetStore::commit_txn(int64_t producer_id, int64_t txn_seq,
                               const std::vector<TxnOffset>& offsets) {
  for (const auto& o : offsets) {
    if (o.group.empty() || o.group.size() > 1000) return InvalidArgument("bad group name");
  }
  std::string rec = encode_txn(producer_id, txn_seq, offsets);
  const std::function<void()> apply = [&] {
    committed_txns_[producer_id] = txn_seq;
    for (const auto& o : offsets) offsets_[{o.group, o.topic, o.partition}] = o.offset;
  };
  return append_grouped(rec, "committing transaction", apply);
}

std::optional<int64_t> OffsetStore::last_committed_txn(int64_t producer_id) const {
  std::lock_guard lk(mu_);
  auto it = committed_txns_.find(producer_id);
  if (it == committed_txns_.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> OffsetStore::get(std::string_view group, std::string_view topic,
                                        uint32_t partition) const {
  std::lock_guard lk(mu_);
  auto it = offsets_.find({std::string(group), std::string(topic), partition});
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

Status OffsetStore::close() {
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [&] { return !leader_active_; });
  if (!file_) return Status::Ok();
  Status s = file_->close();
  file_.reset();
  return s;
}

}  // namespace spate
