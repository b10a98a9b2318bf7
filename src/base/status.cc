#include "spate/status.h"

#include <cstdio>

namespace spate {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid argument";
    case Errc::kNotFound: return "not found";
    case Errc::kAlreadyExists: return "already exists";
    case Errc::kOutOfRange: return "out of range";
    case Errc::kIo: return "io error";
    case Errc::kCorruption: return "corruption";
    case Errc::kNoSpace: return "no space";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kTimeout: return "timeout";
    case Errc::kConfig: return "config error";
    case Errc::kInternal: return "internal error";
    case Errc::kFenced: return "fenced";
    case Errc::kUnimplemented: return "unimplemented";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string out(errc_name(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return {code_, std::move(m)};
}

void fatal(std::string_view what) {
  std::fprintf(stderr, "spate: fatal: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace spate
