// CRC32C (Castagnoli), as used by the log's record batches.
//
// Contract: pure functions, thread-safe. Uses the SSE4.2 crc32 instruction when the CPU has it
// (checked once at start-up) and a slicing-by-8 table otherwise; both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spate::crc32c {

/// Extend `crc` (0 to start) with [data, data+n).
uint32_t extend(uint32_t crc, const void* data, size_t n);
inline uint32_t value(const void* data, size_t n) { return extend(0, data, n); }
/// True when the hardware path is in use.
bool hardware_accelerated();

}  // namespace spate::crc32c
