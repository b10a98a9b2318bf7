// Status and Result<T>: Spate's error values.
//
// Contract: expected failures (I/O errors, bad input, missing things) are returned as values,
// never thrown. A Status is either ok() or carries an error code and a one-line message.
// Result<T> holds either a T or a non-ok Status. Both are cheap to move; neither is
// thread-safe for concurrent mutation (treat them as values).
#pragma once

#include <cassert>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace spate {

/// Error codes shared by all subsystems. Keep the list short; the message carries detail.
enum class Errc : int {
  kOk = 0,
  kInvalidArgument,  // caller passed something malformed (bad config value, bad record)
  kNotFound,         // topic/partition/file/group does not exist
  kAlreadyExists,    // create of something that exists
  kOutOfRange,       // offset beyond the log's end or before its start
  kIo,               // an operating-system I/O call failed
  kCorruption,       // on-disk data failed a checksum or structural check
  kNoSpace,          // disk full (ENOSPC / EDQUOT)
  kUnavailable,      // temporarily unable (shutting down, overloaded); retry may succeed
  kTimeout,          // a bounded wait expired
  kConfig,           // configuration error (usage errors map to exit code 2)
  kInternal,         // a broken invariant inside Spate
  kFenced,           // a transactional producer superseded by a newer one with the same id
  kUnimplemented,    // the operation is not supported by this implementation
};

/// Human-readable name of an error code ("io", "corruption", ...).
std::string_view errc_name(Errc code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == Errc::kOk; }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "corruption: bad crc in segment 00000000000000000000.log at 4096"
  std::string to_string() const;

  /// Prefix the message with context, keeping the code ("opening topic x: ...").
  Status with_context(std::string_view context) const;

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Errc::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Errc::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {Errc::kAlreadyExists, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {Errc::kOutOfRange, std::move(m)}; }
inline Status IoError(std::string m) { return {Errc::kIo, std::move(m)}; }
inline Status Corruption(std::string m) { return {Errc::kCorruption, std::move(m)}; }
inline Status NoSpace(std::string m) { return {Errc::kNoSpace, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Errc::kUnavailable, std::move(m)}; }
inline Status Timeout(std::string m) { return {Errc::kTimeout, std::move(m)}; }
inline Status ConfigError(std::string m) { return {Errc::kConfig, std::move(m)}; }
inline Status Internal(std::string m) { return {Errc::kInternal, std::move(m)}; }
inline Status Fenced(std::string m) { return {Errc::kFenced, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {Errc::kUnimplemented, std::move(m)}; }

/// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) {
      v_ = Status(Errc::kInternal, "Result constructed from an ok Status");
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { check(); return std::get<T>(v_); }
  const T& value() const& { check(); return std::get<T>(v_); }
  T&& value() && { check(); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void check() const {
    if (!ok()) {
      // Invariant: callers check ok() first. Stays on in release builds.
      fatal_unchecked_result(std::get<Status>(v_));
    }
  }
  [[noreturn]] static void fatal_unchecked_result(const Status& s);
  std::variant<T, Status> v_;
};

[[noreturn]] void fatal(std::string_view what);

template <typename T>
void Result<T>::fatal_unchecked_result(const Status& s) {
  fatal("value() on an error Result: " + s.to_string());
}

}  // namespace spate

#define SPATE_CONCAT_INNER_(a, b) a##b
#define SPATE_CONCAT_(a, b) SPATE_CONCAT_INNER_(a, b)

/// Return the Status from the enclosing function if `expr` is not ok.
#define SPATE_RETURN_IF_ERROR(expr)               \
  do {                                            \
    ::spate::Status spate_status_ = (expr);       \
    if (!spate_status_.ok()) return spate_status_; \
  } while (0)

#define SPATE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

/// `SPATE_ASSIGN_OR_RETURN(auto x, f());` — declare/assign from a Result or return its Status.
#define SPATE_ASSIGN_OR_RETURN(lhs, expr) \
  SPATE_ASSIGN_OR_RETURN_IMPL_(SPATE_CONCAT_(spate_result_, __LINE__), lhs, expr)

/// Invariant check that stays on in release builds and says what broke.
#define SPATE_CHECK(cond, what)                                                   \
  do {                                                                            \
    if (!(cond)) ::spate::fatal(std::string("check failed: " #cond ": ") + (what)); \
  } while (0)
