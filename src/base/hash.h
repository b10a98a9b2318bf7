// Hashing helpers (xxHash3). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

namespace spate {

/// 64-bit xxh3 of bytes; stable across versions and machines (used for partitioning).
uint64_t hash64(std::string_view bytes);

/// Partition for a key: hash64(key) mod partitions. partitions must be > 0.
inline uint32_t partition_for_key(std::string_view key, uint32_t partitions) {
  return static_cast<uint32_t>(hash64(key) % partitions);
}

}  // namespace spate
