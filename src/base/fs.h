// FileSystem: the small file-system interface every durable component uses.
//
// Contract: all disk access of the log and the state stores goes through FileSystem so tests can
// inject torn writes, failed fsyncs and full disks (see tests/unit/fault_fs.h). Methods return
// Status/Result; ENOSPC/EDQUOT map to Errc::kNoSpace, other errno values to Errc::kIo with the
// path and strerror in the message. A FileSystem object is thread-safe; a single file handle is
// not (callers serialise appends to one WritableFile; ReadableFile::read_at is safe to call
// concurrently since it is positional).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spate/status.h"

namespace spate {

/// An append-only file handle.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  /// Append all of [data, data+n). On failure some prefix may have been written.
  virtual Status append(const void* data, size_t n) = 0;
  /// Append several buffers with one system call where possible.
  struct Slice {
    const void* data;
    size_t size;
  };
  virtual Status append_v(const Slice* slices, size_t count);
  /// Make everything appended so far durable (fdatasync).
  virtual Status sync() = 0;
  /// Shrink the file to `size` bytes; later appends continue at `size`.
  virtual Status truncate(uint64_t size) = 0;
  virtual Status close() = 0;
  /// Bytes in the file (including everything appended through this handle).
  virtual uint64_t size() const = 0;
};

/// A positional-read file handle; read_at may be called from several threads.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  /// Read up to n bytes at `offset` into dst; returns the count read (short at end of file).
  virtual Result<size_t> read_at(uint64_t offset, size_t n, void* dst) const = 0;
  virtual Result<uint64_t> size() const = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  /// Open for appending, creating the file if missing; the position is the current end.
  virtual Result<std::unique_ptr<WritableFile>> open_appendable(const std::string& path) = 0;
  /// Create or truncate, then open for appending.
  virtual Result<std::unique_ptr<WritableFile>> open_truncated(const std::string& path) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& path) = 0;
  virtual Result<bool> exists(const std::string& path) = 0;
  virtual Result<uint64_t> file_size(const std::string& path) = 0;
  /// Names (not paths) of the entries of a directory, unsorted.
  virtual Result<std::vector<std::string>> list_dir(const std::string& path) = 0;
  /// mkdir -p.
  virtual Status create_dirs(const std::string& path) = 0;
  virtual Status remove_file(const std::string& path) = 0;
  /// Remove a directory tree.
  virtual Status remove_all(const std::string& path) = 0;
  /// Atomic rename (same file system).
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Status truncate(const std::string& path, uint64_t size) = 0;
  /// fsync a directory so that creates/renames/removes in it are durable.
  virtual Status sync_dir(const std::string& path) = 0;

  /// Write `data` to `path` atomically and durably (temp file, fsync, rename, fsync dir).
  Status write_file_atomic(const std::string& path, std::string_view data);
  /// Read a whole (small) file.
  Result<std::string> read_file(const std::string& path);
};

/// The process-wide POSIX file system.
FileSystem* default_fs();

/// Join path components with '/'.
std::string path_join(const std::string& a, const std::string& b);

}  // namespace spate
