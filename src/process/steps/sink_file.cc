// kind: file — events appended to a file as NDJSON (one line each), fsync'd at flush.
//
// Exactly-once across crashes, for one writer per file: next to the file, `<path>.offsets`
// records (atomically, after the data's fsync) the file's size and, per input partition, the
// offset after the last event written. On start the file is cut back to the recorded size
// (lines of a flush that did not record its offsets are written again by the replayed batch),
// and replayed events below a recorded offset are skipped. That holds for process crashes; for
// machine crashes only with `fsync: true` (the default), since the data is fsync'd before its
// offsets are recorded. Several processes or workers writing one file are not supported.
#include <fmt/format.h>

#include <map>
#include <sstream>

#include "base/fs.h"
#include "process/steps/sink.h"

namespace spate::process::sink {
namespace {

struct FileOptions {
  std::string path;
  bool fsync = true;
};

class FileSink final : public EventProcessor {
 public:
  FileSink(FileOptions o, FileSystem* fs, const std::string& processor, MetricsRegistry* metrics)
      : o_(std::move(o)), fs_(fs), downstream_("file:" + o_.path),
        metrics_(metrics, processor, "file", downstream_) {}

  StepOutcome process(ProcessorEvent& ev, StepError*) override {
    const std::string tp = fmt::format("{} {}", ev.topic(), ev.partition());
    pending_.push_back({tp, ev.offset(), std::string(ev.json())});
    return StepOutcome::kPass;
  }

  Status flush(std::vector<FlushFailure>*) override {
    if (pending_.empty()) return Status::Ok();
    const int64_t t0 = steady_ns();
    if (file_ == nullptr) SPATE_RETURN_IF_ERROR(open().with_context(downstream_));
    std::string buf;
    std::map<std::string, int64_t> next = next_;
    size_t lines = 0;
    for (const Line& l : pending_) {
      auto it = next.find(l.tp);
      if (it != next.end() && l.offset < it->second) continue;  // written before a crash
      buf += l.json;
      buf += '\n';
      next[l.tp] = l.offset + 1;
      ++lines;
    }
    if (!buf.empty()) {
      Status s = file_->append(buf.data(), buf.size());
      if (s.ok() && o_.fsync) s = file_->sync();
      if (s.ok()) s = fs_->write_file_atomic(o_.path + ".offsets", encode(file_->size(), next));
      if (!s.ok()) {
        // Back to the recorded state: the whole flush is written again by the retry.
        file_.reset();
        metrics_.failure("transient");
        return s.with_context(downstream_);
      }
    }
    next_ = std::move(next);
    metrics_.flushed(t0, lines, 0);
    pending_.clear();
    return Status::Ok();
  }

  void discard() override { pending_.clear(); }
  std::string downstream() const override { return downstream_; }
  bool calls_downstream_in_flush_only() const override { return true; }

 private:
  struct Line {
    std::string tp;  // "topic partition"
    int64_t offset;
    std::string json;
  };

  static std::string encode(uint64_t size, const std::map<std::string, int64_t>& next) {
    std::string s = fmt::format("size {}\n", size);
    for (const auto& [tp, off] : next) s += fmt::format("{} {}\n", tp, off);
    return s;
  }

  // Read the recorded state, cut the file back to it, open for appending.
  Status open() {
    uint64_t size = 0;
    next_.clear();
    SPATE_ASSIGN_OR_RETURN(bool has_state, fs_->exists(o_.path + ".offsets"));
    if (has_state) {
      SPATE_ASSIGN_OR_RETURN(std::string text, fs_->read_file(o_.path + ".offsets"));
      std::istringstream in(text);
      std::string word;
      if (!(in >> word >> size) || word != "size") return Corruption(o_.path + ".offsets: no size line");
      std::string topic;
      uint32_t partition = 0;
      int64_t off = 0;
      while (in >> topic >> partition >> off) next_[fmt::format("{} {}", topic, partition)] = off;
    }
    SPATE_ASSIGN_OR_RETURN(bool exists, fs_->exists(o_.path));
    if (exists) {
      SPATE_ASSIGN_OR_RETURN(uint64_t actual, fs_->file_size(o_.path));
      if (actual > size) SPATE_RETURN_IF_ERROR(fs_->truncate(o_.path, size));
      if (actual < size) return Corruption(fmt::format("{} is shorter ({} bytes) than recorded ({})", o_.path, actual, size));
    }
    SPATE_ASSIGN_OR_RETURN(file_, fs_->open_appendable(o_.path));
    return Status::Ok();
  }

  FileOptions o_;
  FileSystem* fs_;
  std::string downstream_;
  SinkMetrics metrics_;
  std::unique_ptr<WritableFile> file_;
  std::map<std::string, int64_t> next_;  // recorded: "topic partition" -> next offset
  std::vector<Line> pending_;
};

}  // namespace

// {kind: file, path, format: ndjson, fsync: true}; `{worker}` in the path is the worker index
// (required with workers > 1: one writer per file).
Result<std::unique_ptr<EventProcessor>> make_file_sink(StepContext& ctx) {
  StepOptions& o = *ctx.options;
  FileOptions f;
  o.get_string("path", &f.path, true);
  std::string format = "ndjson";
  o.get_enum("format", &format, {"ndjson"});
  o.get_bool("fsync", &f.fsync);
  const size_t w = f.path.find("{worker}");
  if (w != std::string::npos) {
    f.path.replace(w, 8, std::to_string(ctx.worker));
  } else if (ctx.processor->workers > 1) {
    o.error("path", "with workers > 1 each worker needs a file of its own: put {worker} in the path");
  }
  SPATE_RETURN_IF_ERROR(o.finish());
  return std::unique_ptr<EventProcessor>(new FileSink(std::move(f), default_fs(), ctx.processor->name, ctx.metrics));
}

}  // namespace spate::process::sink
