// Lowercase hexadecimal of bytes, for digests and keys. Pure, thread-safe, no allocation beyond
// `out`'s growth.
#pragma once

#include <cstddef>
#include <string>

namespace spate {

inline void append_hex(std::string& out, const void* data, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
}

}  // namespace spate
