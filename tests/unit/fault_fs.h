// FaultFs: a FileSystem wrapper that injects failures into the real POSIX file system:
//  - fail_sync: every sync() fails with EIO.
//  - space_left: bytes that may still be written before appends fail with ENOSPC (the failing
//    append writes what fits — a torn write — then returns kNoSpace).
//  - crash_after_bytes: after this many appended bytes every further append writes nothing and
//    fails, as if the process had died mid-write (the bytes that "made it" are torn).
#pragma once

#include <atomic>
#include <memory>

#include "base/fs.h"

namespace spate::testing {

class FaultFs final : public FileSystem {
 public:
  std::atomic<bool> fail_sync{false};
  std::atomic<int64_t> space_left{-1};  // -1 = unlimited
  std::atomic<int64_t> syncs{0};

  Result<std::unique_ptr<WritableFile>> open_appendable(const std::string& p) override {
    SPATE_ASSIGN_OR_RETURN(auto f, base_->open_appendable(p));
    return wrap(std::move(f));
  }
  Result<std::unique_ptr<WritableFile>> open_truncated(const std::string& p) override {
    SPATE_ASSIGN_OR_RETURN(auto f, base_->open_truncated(p));
    return wrap(std::move(f));
  }
  Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& p) override {
    return base_->open_readable(p);
  }
  Result<bool> exists(const std::string& p) override { return base_->exists(p); }
  Result<uint64_t> file_size(const std::string& p) override { return base_->file_size(p); }
  Result<std::vector<std::string>> list_dir(const std::string& p) override {
    return base_->list_dir(p);
  }
  Status create_dirs(const std::string& p) override { return base_->create_dirs(p); }
  Status remove_file(const std::string& p) override { return base_->remove_file(p); }
  Status remove_all(const std::string& p) override { return base_->remove_all(p); }
  Status rename(const std::string& a, const std::string& b) override { return base_->rename(a, b); }
  Status truncate(const std::string& p, uint64_t n) override { return base_->truncate(p, n); }
  Status sync_dir(const std::string& p) override { return base_->sync_dir(p); }

 private:
  class File final : public WritableFile {
   public:
    File(FaultFs* fs, std::unique_ptr<WritableFile> f) : fs_(fs), f_(std::move(f)) {}
    Status append(const void* data, size_t n) override {
      int64_t left = fs_->space_left.load();
      if (left >= 0 && static_cast<int64_t>(n) > left) {
        fs_->space_left = 0;
        if (left > 0) (void)f_->append(data, static_cast<size_t>(left));
        return NoSpace("injected: no space left on device");
      }
      if (left >= 0) fs_->space_left -= static_cast<int64_t>(n);
      return f_->append(data, n);
    }
    Status sync() override {
      ++fs_->syncs;
      if (fs_->fail_sync) return IoError("injected: fdatasync: Input/output error");
      return f_->sync();
    }
    Status truncate(uint64_t size) override { return f_->truncate(size); }
    Status close() override { return f_->close(); }
    uint64_t size() const override { return f_->size(); }

   private:
    FaultFs* fs_;
    std::unique_ptr<WritableFile> f_;
  };

  Result<std::unique_ptr<WritableFile>> wrap(std::unique_ptr<WritableFile> f) {
    return std::unique_ptr<WritableFile>(new File(this, std::move(f)));
  }
  FileSystem* base_ = default_fs();
};

}  // namespace spate::testing
