#include "analytics/file_sink.h"

#include <fmt/format.h>

#include <filesystem>

#include "base/json_escape.h"

namespace spate::analytics {
namespace {

// The size of `path` without an incomplete last line (0 if it holds no complete line).
Result<uint64_t> complete_size(FileSystem* fs, const std::string& path) {
  SPATE_ASSIGN_OR_RETURN(auto in, fs->open_readable(path));
  SPATE_ASSIGN_OR_RETURN(uint64_t end, in->size());
  std::string buf(64 * 1024, '\0');
  while (end > 0) {
    const uint64_t from = end > buf.size() ? end - buf.size() : 0;
    SPATE_ASSIGN_OR_RETURN(size_t n,
                           in->read_at(from, static_cast<size_t>(end - from), buf.data()));
    if (n != end - from) return IoError(path + ": short read");
    for (size_t i = n; i > 0; --i) {
      if (buf[i - 1] == '\n') return from + i;
    }
    end = from;
  }
  return uint64_t{0};
}

}  // namespace

FileResultSink::FileResultSink(std::string path, FileSystem* fs)
    : path_(std::move(path)), fs_(fs) {}

Status FileResultSink::open() {
  file_.reset();
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  if (!dir.empty()) SPATE_RETURN_IF_ERROR(fs_->create_dirs(dir).with_context(describe()));
  SPATE_ASSIGN_OR_RETURN(bool exists, fs_->exists(path_));
  if (exists) {
    SPATE_ASSIGN_OR_RETURN(uint64_t size, fs_->file_size(path_));
    SPATE_ASSIGN_OR_RETURN(uint64_t keep, complete_size(fs_, path_));
    if (keep != size) SPATE_RETURN_IF_ERROR(fs_->truncate(path_, keep).with_context(describe()));
  }
  SPATE_ASSIGN_OR_RETURN(file_, fs_->open_appendable(path_));
  if (!exists) SPATE_RETURN_IF_ERROR(fs_->sync_dir(dir.empty() ? "." : dir));
  return Status::Ok();
}

Status FileResultSink::write(const std::vector<WindowResultRow>& rows, int64_t now_ms) {
  if (rows.empty()) return Status::Ok();
  if (file_ == nullptr) SPATE_RETURN_IF_ERROR(open());
  std::string buf;
  for (const WindowResultRow& r : rows) {
    buf += "{\"analytics\":";
    append_json_quoted(buf, r.analytics);
    fmt::format_to(std::back_inserter(buf), ",\"window_start\":{},\"window_end\":{},\"key\":{}",
                   r.window_start, r.window_end, r.key_json);
    fmt::format_to(std::back_inserter(buf),
                   ",\"result\":{},\"updates\":{},\"final\":{},\"updated_at\":{}}}\n",
                   r.result_json, r.updates, r.final ? "true" : "false", now_ms);
  }
  const uint64_t before = file_->size();
  Status s = file_->append(buf.data(), buf.size());
  if (s.ok()) s = file_->sync();
  if (!s.ok() && !file_->truncate(before).ok()) file_.reset();  // open() cuts the torn tail
  return s.with_context(describe());
}

}  // namespace spate::analytics
