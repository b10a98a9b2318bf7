// EmbeddedLog: the Log interface over local segment files. Layout under data_dir:
//   LOCK                          flock'ed by the owning process
//   topics/<topic>/topic.meta     partitions, retention, compression (key=value lines)
//   topics/<topic>/<partition>/   segments (see partition.h, docs/log-format.md)
//   groups/offsets.log            committed consumer-group offsets, transaction coordinator
//
// Transactions (see docs/log-format.md "Transactions"): a TxnState per transactional id holds
// the current epoch and the open transaction; producers of older epochs are fenced. commit():
// fsync touched partitions (fsync: interval; all at the same time, ParallelSync), then
// write+fsync the coordinator's commit record (the commit point), append COMMIT markers. open()
// resolves every transaction a crash left open.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "log/embedded/offset_store.h"
#include "log/embedded/partition.h"
#include "log/embedded/txn_hook.h"
#include "spate/log.h"

namespace spate {

namespace txn_testing {
void (*crash_point)(const char* where) = nullptr;
}  // namespace txn_testing

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kLz4: return "lz4";
    case Compression::kZstd: return "zstd";
  }
  return "none";
}

std::string_view fsync_policy_name(FsyncPolicy p) {
  switch (p) {
    case FsyncPolicy::kAlways: return "always";
    case FsyncPolicy::kInterval: return "interval";
    case FsyncPolicy::kNever: return "never";
  }
  return "interval";
}

Status validate_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 200 || name == "." || name == "..") {
    return InvalidArgument("invalid topic name \"" + std::string(name) +
                           "\": 1-200 characters of [a-zA-Z0-9._-], not \".\" or \"..\"");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgument("invalid topic name \"" + std::string(name) +
                             "\": only [a-zA-Z0-9._-] allowed");
    }
  }
  return Status::Ok();
}

namespace {

struct Topic {
  TopicInfo meta;
  std::vector<std::unique_ptr<Partition>> partitions;
};

std::string encode_meta(const TopicInfo& t) {
  std::ostringstream o;
  o << "version=1\n"
    << "partitions=" << t.partitions << "\n"
    << "retention_ms=" << t.retention.ms << "\n"
    << "retention_bytes=" << t.retention.bytes << "\n"
    << "compression=" << compression_name(t.compression) << "\n";
  return o.str();
}

Result<TopicInfo> decode_meta(const std::string& name, const std::string& text) {
  TopicInfo t;
  t.name = name;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    try {
      if (k == "partitions") t.partitions = static_cast<uint32_t>(std::stoul(v));
      if (k == "retention_ms") t.retention.ms = std::stoll(v);
      if (k == "retention_bytes") t.retention.bytes = std::stoll(v);
    } catch (...) {
      return Corruption("bad topic.meta for " + name + ": " + line);
    }
    if (k == "compression") {
      t.compression = v == "lz4" ? Compression::kLz4 : v == "zstd" ? Compression::kZstd
                                                                   : Compression::kNone;
    }
  }
  if (t.partitions == 0 || t.partitions > 100000) {
    return Corruption("bad partition count in topic.meta for " + name);
  }
  return t;
}

// Coordinator state of one transactional id; guarded by mu (held for a whole producer call).
struct TxnState {
  std::mutex mu;
  std::string transactional_id;
  int64_t producer_id = 0;
  int32_t epoch = 0;  // of the newest producer; older ones are fenced
  bool log_closed = false;
  bool open = false;
  int64_t txn_seq = 0;  // epoch << 32 | counter
  uint32_t counter = 0;
  std::vector<Partition*> touched;  // partitions holding data of the open transaction
  std::map<std::tuple<std::string, std::string, uint32_t>, int64_t> offsets;
  // Markers of a finished transaction that could not be written yet (retried first).
  int64_t pending_seq = 0;
  std::vector<std::pair<Partition*, bool>> pending;  // partition, commit
};

// Makes several partitions durable at once (Partition::sync_now of each): the caller and up to
// kHelpers helper threads take the partitions from one queue, so a transaction that touched k
// partitions waits for about one fsync instead of k in a row (the kernel runs them together;
// one journal commit may serve several). Helpers start on first use; thread-safe (callers may
// share the helpers; a caller also runs queued work of others while it waits).
class ParallelSync {
 public:
  ~ParallelSync() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : helpers_) t.join();
  }

  Status sync_all(const std::vector<Partition*>& parts) {
    if (parts.empty()) return Status::Ok();
    if (parts.size() == 1) return parts.front()->sync_now();
    Job job;
    job.pending = parts.size();
    {
      std::lock_guard lk(mu_);
      for (size_t i = 1; i < parts.size(); ++i) tasks_.push_back({parts[i], &job});
      while (helpers_.size() < std::min(kHelpers, parts.size() - 1)) {
        helpers_.emplace_back([this] { helper(); });
      }
    }
    work_cv_.notify_all();
    finish({parts.front(), &job}, parts.front()->sync_now());
    std::unique_lock lk(mu_);
    while (job.pending > 0) {
      if (!tasks_.empty()) {  // help instead of waiting (whichever job the task belongs to)
        Task t = tasks_.front();
        tasks_.pop_front();
        lk.unlock();
        finish(t, t.part->sync_now());
        lk.lock();
        continue;
      }
      done_cv_.wait(lk);
    }
    return job.status;
  }

 private:
  static constexpr size_t kHelpers = 3;
  struct Job {
    size_t pending = 0;  // guarded by mu_
    Status status;       // first failure; guarded by mu_
  };
  struct Task {
    Partition* part;
    Job* job;
  };

  void finish(const Task& t, Status s) {
    {
      std::lock_guard lk(mu_);
      if (!s.ok() && t.job->status.ok()) t.job->status = std::move(s);
      --t.job->pending;
    }
    done_cv_.notify_all();
  }

  void helper() {
    std::unique_lock lk(mu_);
    while (true) {
      work_cv_.wait(lk, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping
      Task t = tasks_.front();
      tasks_.pop_front();
      lk.unlock();
      finish(t, t.part->sync_now());
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Task> tasks_;
  std::vector<std::thread> helpers_;
  bool stop_ = false;
};

class EmbeddedLog;

class EmbeddedTxnProducer final : public TransactionalProducer {
 public:
  EmbeddedTxnProducer(EmbeddedLog* log, std::shared_ptr<TxnState> st, int32_t epoch)
      : log_(log), st_(std::move(st)), epoch_(epoch) {}
  ~EmbeddedTxnProducer() override;
  Status begin() override;
  Result<int64_t> append(std::string_view topic, uint32_t partition, const RecordIn* records,
                         size_t count) override;
  Status send_offsets(std::string_view group, std::string_view topic,
                      const std::map<uint32_t, int64_t>& next_offsets) override;
  Status commit() override;
  Status abort() override;

 private:
  Status check_locked() const;
  EmbeddedLog* log_;
  std::shared_ptr<TxnState> st_;
  int32_t epoch_;
};

class EmbeddedLog final : public Log {
 public:
  explicit EmbeddedLog(LogConfig cfg)
      : cfg_(std::move(cfg)),
        fs_(cfg_.fs ? cfg_.fs : default_fs()),
        clock_(cfg_.clock ? cfg_.clock : system_clock()),
        offsets_(fs_, path_join(cfg_.data_dir, "groups")) {}

  ~EmbeddedLog() override { (void)close(); }

  Status open() {
    if (cfg_.data_dir.empty()) return InvalidArgument("log data_dir is empty");
    SPATE_RETURN_IF_ERROR(fs_->create_dirs(path_join(cfg_.data_dir, "topics")));
    std::string lock_path = path_join(cfg_.data_dir, "LOCK");
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) return IoError("cannot open " + lock_path);
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      std::string pid(32, '\0');
      ssize_t n = ::pread(lock_fd_, pid.data(), pid.size(), 0);
      pid.resize(n > 0 ? static_cast<size_t>(n) : 0);
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == '\0')) pid.pop_back();
      ::close(lock_fd_);
      lock_fd_ = -1;
      return Unavailable("data directory " + cfg_.data_dir +
                         " is in use by another spate process" +
                         (pid.empty() ? "" : " (pid " + pid + ")"));
    }
    std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock_fd_, 0) == 0) (void)!::pwrite(lock_fd_, me.data(), me.size(), 0);

    SPATE_RETURN_IF_ERROR(offsets_.open());
    SPATE_ASSIGN_OR_RETURN(auto names, fs_->list_dir(path_join(cfg_.data_dir, "topics")));
    LogOpenProgress progress;
    const auto open_started = std::chrono::steady_clock::now();
    progress.topics_total = static_cast<size_t>(std::count_if(
        names.begin(), names.end(), [](const std::string& n) { return validate_topic_name(n).ok(); }));
    if (cfg_.on_open_progress) {
      opening_ = [&](const Partition& p) {
        ++progress.partitions_done;
        progress.bytes_done += p.info().size_bytes;
        progress.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - open_started)
                                  .count();
        cfg_.on_open_progress(progress);
      };
    }
    for (const auto& name : names) {
      if (!validate_topic_name(name).ok()) continue;
      ++progress.topics_done;
      std::string dir = topic_dir(name);
      auto text = fs_->read_file(path_join(dir, "topic.meta"));
      if (!text.ok()) continue;  // half-created topic: ignore (meta is written last)
      SPATE_ASSIGN_OR_RETURN(TopicInfo meta, decode_meta(name, *text));
      auto t = std::make_unique<Topic>();
      t->meta = meta;
      SPATE_RETURN_IF_ERROR(open_partitions(*t));
      topics_[name] = std::move(t);
    }
    opening_ = nullptr;
    SPATE_RETURN_IF_ERROR(resolve_open_transactions());
    bg_ = std::thread([this] { background(); });
    return Status::Ok();
  }

  bool append_waits_for_disk() const override { return cfg_.fsync == FsyncPolicy::kAlways; }

  Status create_topic(const TopicSpec& spec) override { return create(spec, false); }
  Status ensure_topic(const TopicSpec& spec) override { return create(spec, true); }

  std::vector<std::string> list_topics() const override {
    std::shared_lock lk(mu_);
    std::vector<std::string> out;
    for (const auto& [n, t] : topics_) out.push_back(n);
    std::sort(out.begin(), out.end());
    return out;
  }

  Result<TopicInfo> describe_topic(std::string_view topic) const override {
    std::shared_lock lk(mu_);
    auto it = topics_.find(std::string(topic));
    if (it == topics_.end()) return NotFound("topic \"" + std::string(topic) + "\" does not exist");
    TopicInfo info = it->second->meta;
    info.partition_info.clear();
    for (const auto& p : it->second->partitions) info.partition_info.push_back(p->info());
    return info;
  }

  Result<int64_t> append(std::string_view topic, uint32_t partition, const RecordIn* records,
                         size_t count) override {
    SPATE_ASSIGN_OR_RETURN(Partition * p, writable_partition(topic, partition));
    return p->append(records, count);
  }

  /// The partition to append to, creating the topic if allowed.
  Result<Partition*> writable_partition(std::string_view topic, uint32_t partition) {
    Partition* p;
    {
      std::shared_lock lk(mu_);
      auto it = topics_.find(std::string(topic));
      if (it == topics_.end()) {
        lk.unlock();
        if (!cfg_.auto_create_topics) {
          return NotFound("topic \"" + std::string(topic) + "\" does not exist");
        }
        TopicSpec spec;
        spec.name = std::string(topic);
        spec.partitions = cfg_.default_partitions;
        SPATE_RETURN_IF_ERROR(ensure_topic(spec));
        return writable_partition(topic, partition);
      }
      SPATE_ASSIGN_OR_RETURN(p, partition_of(*it->second, partition));
    }
    return p;
  }

  Result<FetchResult> fetch(std::string_view topic, uint32_t partition, int64_t offset,
                            const FetchOptions& opts) override {
    SPATE_ASSIGN_OR_RETURN(Partition * p, find(topic, partition));
    return p->fetch(offset, opts);
  }

  Result<int64_t> offset_for_timestamp(std::string_view topic, uint32_t partition,
                                       int64_t ts_ms) override {
    SPATE_ASSIGN_OR_RETURN(Partition * p, find(topic, partition));
    return p->offset_for_timestamp(ts_ms);
  }

  Status commit_offsets(std::string_view group, std::string_view topic,
                        const std::map<uint32_t, int64_t>& offsets) override {
    SPATE_RETURN_IF_ERROR(validate_offsets(topic, offsets));
    return offsets_.commit(group, topic, offsets);
  }

  Status validate_offsets(std::string_view topic, const std::map<uint32_t, int64_t>& offsets) {
    SPATE_ASSIGN_OR_RETURN(TopicInfo info, describe_topic(topic));
    for (const auto& [p, o] : offsets) {
      if (p >= info.partitions) {
        return InvalidArgument("partition " + std::to_string(p) + " out of range for topic " +
                               std::string(topic));
      }
      if (o < 0 || o > info.partition_info[p].end_offset) {
        return OutOfRange("commit offset " + std::to_string(o) + " beyond end of " +
                          std::string(topic) + "/" + std::to_string(p));
      }
    }
    return Status::Ok();
  }

  Result<std::unique_ptr<TransactionalProducer>> transactional_producer(
      std::string_view transactional_id) override {
    if (transactional_id.empty() || transactional_id.size() > 1000) {
      return InvalidArgument("transactional id must be 1-1000 bytes");
    }
    std::lock_guard lk(txn_mu_);
    {
      std::lock_guard bl(bg_mu_);
      if (closed_) return Unavailable("log is closed");
    }
    auto& slot = txn_states_[std::string(transactional_id)];
    if (!slot) {
      slot = std::make_shared<TxnState>();
      slot->transactional_id = std::string(transactional_id);
      if (auto e = offsets_.producer(transactional_id)) {
        slot->producer_id = e->producer_id;
        slot->epoch = e->epoch;
      } else {
        slot->producer_id = std::max(offsets_.max_producer_id(), max_pid_) + 1;
        slot->epoch = -1;
      }
      max_pid_ = std::max(max_pid_, slot->producer_id);
    }
    std::shared_ptr<TxnState> st = slot;
    std::lock_guard sl(st->mu);
    // Fence the previous producer: finish its markers, abort its open transaction.
    SPATE_RETURN_IF_ERROR(write_pending_locked(*st));
    if (st->open) SPATE_RETURN_IF_ERROR(finish_locked(*st, false));
    OffsetStore::ProducerEntry e{st->producer_id, st->epoch + 1};
    SPATE_RETURN_IF_ERROR(offsets_.register_producer(transactional_id, e));
    st->epoch = e.epoch;
    st->counter = 0;
    return std::unique_ptr<TransactionalProducer>(
        std::make_unique<EmbeddedTxnProducer>(this, st, e.epoch));
  }

  // --- Coordinator internals, called with st.mu held. ---

  Status write_pending_locked(TxnState& st) {
    while (!st.pending.empty()) {
      auto [p, commit] = st.pending.back();
      SPATE_RETURN_IF_ERROR(p->append_marker(st.producer_id, st.pending_seq, commit).status());
      st.pending.pop_back();
    }
    return Status::Ok();
  }

  Status begin_locked(TxnState& st) {
    SPATE_RETURN_IF_ERROR(write_pending_locked(st));
    if (st.open) return InvalidArgument("a transaction is already open");
    st.open = true;
    st.txn_seq = (static_cast<int64_t>(st.epoch) << 32) | st.counter++;
    st.touched.clear();
    st.offsets.clear();
    return Status::Ok();
  }

  Result<int64_t> append_locked(TxnState& st, std::string_view topic, uint32_t partition,
                                const RecordIn* records, size_t count) {
    if (!st.open) return InvalidArgument("append outside a transaction (call begin() first)");
    SPATE_ASSIGN_OR_RETURN(Partition * p, writable_partition(topic, partition));
    SPATE_ASSIGN_OR_RETURN(int64_t off, p->append_txn(records, count, st.producer_id, st.txn_seq));
    if (std::find(st.touched.begin(), st.touched.end(), p) == st.touched.end()) {
      st.touched.push_back(p);
    }
    return off;
  }

  Status send_offsets_locked(TxnState& st, std::string_view group, std::string_view topic,
                             const std::map<uint32_t, int64_t>& offsets) {
    if (!st.open) return InvalidArgument("send_offsets outside a transaction");
    if (group.empty() || group.size() > 1000) return InvalidArgument("bad group name");
    SPATE_RETURN_IF_ERROR(validate_offsets(topic, offsets));
    for (const auto& [p, o] : offsets) st.offsets[{std::string(group), std::string(topic), p}] = o;
    return Status::Ok();
  }

  Status commit_locked(TxnState& st) {
    if (!st.open) return InvalidArgument("commit without an open transaction");
    // (1) The outputs are durable before the commit point wherever the policy promises it.
    //     The touched partitions are fsynced at the same time (ParallelSync), and all of them
    //     have completed before the commit record below is written: the order that matters —
    //     data durable before the commit point — is unchanged; only the data fsyncs overlap
    //     each other. A partition whose data another transaction's fsync already covered is
    //     not fsynced again (Partition::sync_now).
    if (cfg_.fsync == FsyncPolicy::kInterval) {
      SPATE_RETURN_IF_ERROR(parallel_sync_.sync_all(st.touched).with_context("committing transaction"));
    }
    txn_testing::hit("commit:data_synced");
    // (2) The commit point: one record, fsynced.
    std::vector<OffsetStore::TxnOffset> offs;
    for (const auto& [k, o] : st.offsets) {
      offs.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), o});
    }
    SPATE_RETURN_IF_ERROR(offsets_.commit_txn(st.producer_id, st.txn_seq, offs));
    txn_testing::hit("commit:recorded");
    // (3) Markers; the LSO moves as each lands.
    return finish_locked(st, true);
  }

  // Write COMMIT/ABORT markers to every touched partition and close the transaction. Markers
  // that fail are kept pending (retried by the next call; resolved by recovery after a restart).
  Status finish_locked(TxnState& st, bool commit) {
    Status first_error;
    st.pending_seq = st.txn_seq;
    for (Partition* p : st.touched) {
      Status s = p->append_marker(st.producer_id, st.txn_seq, commit).status();
      if (!s.ok()) {
        st.pending.push_back({p, commit});
        if (first_error.ok()) first_error = s;
        continue;
      }
      txn_testing::hit(commit ? "commit:marker" : "abort:marker");
    }
    st.open = false;
    st.touched.clear();
    st.offsets.clear();
    if (!first_error.ok()) {
      return first_error.with_context(commit ? "transaction committed; writing its markers"
                                             : "transaction aborted; writing its markers");
    }
    return Status::Ok();
  }

  Status abort_locked(TxnState& st) {
    if (!st.open) return InvalidArgument("abort without an open transaction");
    return finish_locked(st, false);
  }

  // After a restart: every transaction still open in a partition is committed if its commit
  // record reached the coordinator, else aborted.
  Status resolve_open_transactions() {
    for (auto& [name, t] : topics_) {
      for (auto& p : t->partitions) {
        for (const OpenTxn& o : p->open_transactions()) {
          auto last = offsets_.last_committed_txn(o.producer_id);
          bool commit = last.has_value() && *last == o.txn_seq;
          SPATE_RETURN_IF_ERROR(
              p->append_marker(o.producer_id, o.txn_seq, commit)
                  .status()
                  .with_context("resolving a transaction left open in " + name));
        }
      }
    }
    return Status::Ok();
  }

  Result<std::optional<int64_t>> committed_offset(std::string_view group, std::string_view topic,
                                                  uint32_t partition) override {
    SPATE_RETURN_IF_ERROR(find(topic, partition).status());
    return offsets_.get(group, topic, partition);
  }

  LogStats stats() const override {
    LogStats st;
    st.appends = counters_.appends.load(std::memory_order_relaxed);
    st.records = counters_.records.load(std::memory_order_relaxed);
    st.bytes = counters_.bytes.load(std::memory_order_relaxed);
    st.write_groups = counters_.write_groups.load(std::memory_order_relaxed);
    st.fsyncs = counters_.fsyncs.load(std::memory_order_relaxed);
    st.fsync_seconds = static_cast<double>(counters_.fsync_ns.load(std::memory_order_relaxed)) / 1e9;
    st.append_errors = counters_.append_errors.load(std::memory_order_relaxed);
    st.recovered_truncated_bytes = counters_.truncated_bytes.load(std::memory_order_relaxed);
    return st;
  }

  Status enforce_retention() override {
    std::shared_lock lk(mu_);
    for (const auto& [n, t] : topics_) {
      for (const auto& p : t->partitions) SPATE_RETURN_IF_ERROR(p->enforce_retention().status());
    }
    return Status::Ok();
  }

  Status close() override {
    {
      std::lock_guard lk(bg_mu_);
      if (closed_) return Status::Ok();
      closed_ = true;
    }
    {
      std::lock_guard lk(txn_mu_);
      for (auto& [id, st] : txn_states_) {
        std::lock_guard sl(st->mu);
        st->log_closed = true;
      }
    }
    bg_cv_.notify_all();
    if (bg_.joinable()) bg_.join();
    Status result;
    {
      std::unique_lock lk(mu_);
      for (auto& [n, t] : topics_) {
        for (auto& p : t->partitions) {
          Status s = p->close();
          if (result.ok()) result = s;
        }
      }
    }
    Status s = offsets_.close();
    if (result.ok()) result = s;
    if (lock_fd_ >= 0) {
      ::close(lock_fd_);
      lock_fd_ = -1;
    }
    return result;
  }

 private:
  std::string topic_dir(const std::string& name) const {
    return path_join(path_join(cfg_.data_dir, "topics"), name);
  }

  PartitionOptions partition_options(const TopicInfo& meta) const {
    PartitionOptions o;
    o.segment_bytes = cfg_.segment_bytes;
    o.segment_ms = cfg_.segment_ms;
    o.fsync = cfg_.fsync;
    o.index_interval_bytes = cfg_.index_interval_bytes;
    o.compression = meta.compression;
    o.retention = meta.retention;
    o.fs = fs_;
    o.clock = clock_;
    o.counters = &counters_;
    return o;
  }

  Status open_partitions(Topic& t) {
    for (uint32_t i = 0; i < t.meta.partitions; ++i) {
      auto p = std::make_unique<Partition>(path_join(topic_dir(t.meta.name), std::to_string(i)),
                                           i, partition_options(t.meta));
      SPATE_RETURN_IF_ERROR(p->open().with_context("opening " + t.meta.name + "/" +
                                                   std::to_string(i)));
      if (opening_) opening_(*p);
      t.partitions.push_back(std::move(p));
    }
    return Status::Ok();
  }

  Status create(const TopicSpec& spec, bool ok_if_exists) {
    SPATE_RETURN_IF_ERROR(validate_topic_name(spec.name));
    if (spec.partitions == 0 || spec.partitions > 100000) {
      return InvalidArgument("partitions must be between 1 and 100000");
    }
    std::unique_lock lk(mu_);
    if (topics_.count(spec.name)) {
      if (ok_if_exists) return Status::Ok();
      return AlreadyExists("topic \"" + spec.name + "\" already exists");
    }
    auto t = std::make_unique<Topic>();
    t->meta.name = spec.name;
    t->meta.partitions = spec.partitions;
    t->meta.retention = spec.retention.value_or(cfg_.retention);
    t->meta.compression = spec.compression.value_or(cfg_.compression);
    std::string dir = topic_dir(spec.name);
    SPATE_RETURN_IF_ERROR(fs_->create_dirs(dir));
    SPATE_RETURN_IF_ERROR(open_partitions(*t));
    // The meta file is written last and atomically: a topic without it is ignored on open.
    SPATE_RETURN_IF_ERROR(fs_->write_file_atomic(path_join(dir, "topic.meta"), encode_meta(t->meta)));
    SPATE_RETURN_IF_ERROR(fs_->sync_dir(path_join(cfg_.data_dir, "topics")));
    topics_[spec.name] = std::move(t);
    return Status::Ok();
  }

  Result<Partition*> partition_of(const Topic& t, uint32_t partition) const {
    if (partition >= t.partitions.size()) {
      return NotFound("partition " + std::to_string(partition) + " of topic \"" + t.meta.name +
                      "\" does not exist (it has " + std::to_string(t.partitions.size()) + ")");
    }
    return t.partitions[partition].get();
  }

  Result<Partition*> find(std::string_view topic, uint32_t partition) const {
    std::shared_lock lk(mu_);
    auto it = topics_.find(std::string(topic));
    if (it == topics_.end()) return NotFound("topic \"" + std::string(topic) + "\" does not exist");
    return partition_of(*it->second, partition);
  }

  void background() {
    int64_t next_retention = clock_->now_ms() + cfg_.retention_check_interval_ms;
    std::unique_lock lk(bg_mu_);
    while (!closed_) {
      int64_t tick = cfg_.fsync == FsyncPolicy::kInterval
                         ? std::max<int64_t>(1, cfg_.fsync_interval_ms)
                         : std::min<int64_t>(1000, cfg_.retention_check_interval_ms);
      bg_cv_.wait_for(lk, std::chrono::milliseconds(tick));
      if (closed_) break;
      lk.unlock();
      if (cfg_.fsync == FsyncPolicy::kInterval) {
        std::shared_lock tl(mu_);
        for (const auto& [n, t] : topics_) {
          for (const auto& p : t->partitions) (void)p->sync_if_dirty();
        }
      }
      if (clock_->now_ms() >= next_retention) {
        (void)enforce_retention();
        next_retention = clock_->now_ms() + cfg_.retention_check_interval_ms;
      }
      lk.lock();
    }
  }

  LogConfig cfg_;
  mutable LogCounters counters_;  // updated by partitions through their options
  FileSystem* fs_;
  Clock* clock_;
  OffsetStore offsets_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Topic>> topics_;
  int lock_fd_ = -1;

  std::mutex txn_mu_;  // guards txn_states_, max_pid_; taken before a TxnState's mu
  std::map<std::string, std::shared_ptr<TxnState>, std::less<>> txn_states_;
  int64_t max_pid_ = -1;

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool closed_ = false;
  std::thread bg_;
  std::function<void(const Partition&)> opening_;  // set while open() recovers the topics
  ParallelSync parallel_sync_;  // last: its helpers stop before the partitions go
};

Status EmbeddedTxnProducer::check_locked() const {
  if (st_->log_closed) return Unavailable("log is closed");
  if (st_->epoch != epoch_) {
    return Fenced("transactional producer \"" + st_->transactional_id +
                  "\" was superseded by a newer one");
  }
  return Status::Ok();
}

EmbeddedTxnProducer::~EmbeddedTxnProducer() {
  std::lock_guard lk(st_->mu);
  if (check_locked().ok() && st_->open) (void)log_->abort_locked(*st_);
}

Status EmbeddedTxnProducer::begin() {
  std::lock_guard lk(st_->mu);
  SPATE_RETURN_IF_ERROR(check_locked());
  return log_->begin_locked(*st_);
}

Result<int64_t> EmbeddedTxnProducer::append(std::string_view topic, uint32_t partition,
                                            const RecordIn* records, size_t count) {
  std::lock_guard lk(st_->mu);
  SPATE_RETURN_IF_ERROR(check_locked());
  return log_->append_locked(*st_, topic, partition, records, count);
}

Status EmbeddedTxnProducer::send_offsets(std::string_view group, std::string_view topic,
                                         const std::map<uint32_t, int64_t>& next_offsets) {
  std::lock_guard lk(st_->mu);
  SPATE_RETURN_IF_ERROR(check_locked());
  return log_->send_offsets_locked(*st_, group, topic, next_offsets);
}

Status EmbeddedTxnProducer::commit() {
  std::lock_guard lk(st_->mu);
  SPATE_RETURN_IF_ERROR(check_locked());
  return log_->commit_locked(*st_);
}

Status EmbeddedTxnProducer::abort() {
  std::lock_guard lk(st_->mu);
  SPATE_RETURN_IF_ERROR(check_locked());
  return log_->abort_locked(*st_);
}

}  // namespace

Result<std::unique_ptr<Log>> open_embedded_log(const LogConfig& config) {
  auto log = std::make_unique<EmbeddedLog>(config);
  SPATE_RETURN_IF_ERROR(log->open());
  return std::unique_ptr<Log>(std::move(log));
}

}  // namespace spate
