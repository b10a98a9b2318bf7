#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace spate {
namespace {

Status errno_status(const std::string& what, const std::string& path, int err) {
  std::string msg = what + " " + path + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) return NoSpace(std::move(msg));
  if (err == ENOENT) return NotFound(std::move(msg));
  return IoError(std::move(msg));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status append(const void* data, size_t n) override {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(size_));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno_status("write", path_, errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
    }
    return Status::Ok();
  }

  Status append_v(const Slice* slices, size_t count) override {
    constexpr size_t kMaxIov = 64;
    size_t i = 0;
    while (i < count) {
      iovec iov[kMaxIov];
      size_t k = 0;
      size_t total = 0;
      for (; k < kMaxIov && i + k < count; ++k) {
        iov[k].iov_base = const_cast<void*>(slices[i + k].data);
        iov[k].iov_len = slices[i + k].size;
        total += slices[i + k].size;
      }
      ssize_t w;
      do {
        w = ::pwritev(fd_, iov, static_cast<int>(k), static_cast<off_t>(size_));
      } while (w < 0 && errno == EINTR);
      if (w < 0) return errno_status("write", path_, errno);
      size_ += static_cast<uint64_t>(w);
      if (static_cast<size_t>(w) < total) {
        // Short write: finish the remainder buffer by buffer.
        size_t skip = static_cast<size_t>(w);
        for (size_t j = 0; j < k; ++j) {
          const auto& s = slices[i + j];
          if (skip >= s.size) {
            skip -= s.size;
            continue;
          }
          SPATE_RETURN_IF_ERROR(append(static_cast<const char*>(s.data) + skip, s.size - skip));
          skip = 0;
        }
      }
      i += k;
    }
    return Status::Ok();
  }

  Status sync() override {
    if (::fdatasync(fd_) != 0) return errno_status("fdatasync", path_, errno);
    return Status::Ok();
  }

  Status truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return errno_status("ftruncate", path_, errno);
    }
    size_ = size;
    return Status::Ok();
  }

  Status close() override {
    if (fd_ >= 0) {
      int rc = ::close(fd_);
      fd_ = -1;
      if (rc != 0) return errno_status("close", path_, errno);
    }
    return Status::Ok();
  }

  uint64_t size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixReadableFile() override { ::close(fd_); }

  Result<size_t> read_at(uint64_t offset, size_t n, void* dst) const override {
    char* p = static_cast<char*>(dst);
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno_status("read", path_, errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }

  Result<uint64_t> size() const override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return errno_status("stat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  std::string path_;
  int fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> open_appendable(const std::string& path) override {
    return open_w(path, O_WRONLY | O_CREAT | O_CLOEXEC);
  }
  Result<std::unique_ptr<WritableFile>> open_truncated(const std::string& path) override {
    return open_w(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC);
  }
  Result<std::unique_ptr<ReadableFile>> open_readable(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open", path, errno);
    return std::unique_ptr<ReadableFile>(new PosixReadableFile(path, fd));
  }
  Result<bool> exists(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return errno_status("stat", path, errno);
  }
  Result<uint64_t> file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_status("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  Result<std::vector<std::string>> list_dir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return errno_status("opendir", path, errno);
    std::vector<std::string> out;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      out.push_back(std::move(name));
    }
    ::closedir(d);
    return out;
  }
  Status create_dirs(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return errno_status("mkdir", path, ec.value());
    return Status::Ok();
  }
  Status remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status("unlink", path, errno);
    return Status::Ok();
  }
  Status remove_all(const std::string& path) override {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) return errno_status("remove", path, ec.value());
    return Status::Ok();
  }
  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename", from, errno);
    return Status::Ok();
  }
  Status truncate(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return errno_status("truncate", path, errno);
    }
    return Status::Ok();
  }
  Status sync_dir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status("open dir", path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return errno_status("fsync dir", path, err);
    return Status::Ok();
  }

 private:
  static Result<std::unique_ptr<WritableFile>> open_w(const std::string& path, int flags) {
    int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return errno_status("open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return errno_status("stat", path, err);
    }
    return std::unique_ptr<WritableFile>(
        new PosixWritableFile(path, fd, static_cast<uint64_t>(st.st_size)));
  }
};

}  // namespace

Status WritableFile::append_v(const Slice* slices, size_t count) {
  for (size_t i = 0; i < count; ++i) SPATE_RETURN_IF_ERROR(append(slices[i].data, slices[i].size));
  return Status::Ok();
}

Status FileSystem::write_file_atomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  SPATE_ASSIGN_OR_RETURN(auto f, open_truncated(tmp));
  SPATE_RETURN_IF_ERROR(f->append(data.data(), data.size()));
  SPATE_RETURN_IF_ERROR(f->sync());
  SPATE_RETURN_IF_ERROR(f->close());
  SPATE_RETURN_IF_ERROR(rename(tmp, path));
  auto slash = path.find_last_of('/');
  return sync_dir(slash == std::string::npos ? "." : path.substr(0, slash));
}

Result<std::string> FileSystem::read_file(const std::string& path) {
  SPATE_ASSIGN_OR_RETURN(auto f, open_readable(path));
  SPATE_ASSIGN_OR_RETURN(uint64_t n, f->size());
  std::string out(n, '\0');
  SPATE_ASSIGN_OR_RETURN(size_t got, f->read_at(0, n, out.data()));
  out.resize(got);
  return out;
}

FileSystem* default_fs() {
  static PosixFileSystem fs;
  return &fs;
}

std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

}  // namespace spate
