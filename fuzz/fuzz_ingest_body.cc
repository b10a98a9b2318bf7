// Fuzz target: the ingestion body decoder — decompression (gzip/zstd, with the size cap) and
// splitting into events (JSON object, array, NDJSON). The first input byte picks the encoding
// and the format; the rest is the body. Must never crash, hang or exceed the cap.
#include <cstdint>
#include <string_view>
#include <vector>

#include "ingest/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  static constexpr std::string_view kEnc[] = {"", "gzip", "zstd", "identity"};
  static constexpr spate::BodyFormat kFmt[] = {spate::BodyFormat::kAuto, spate::BodyFormat::kJson,
                                              spate::BodyFormat::kNdjson};
  constexpr size_t kCap = 1 << 20;
  auto decoded = spate::ingest::decompress(kEnc[mode & 3], body, kCap);
  if (!decoded.ok()) return 0;
  if (decoded->size() > kCap) __builtin_trap();
  std::vector<spate::ingest::RawEvent> events;
  if (spate::ingest::split_events(*decoded, kFmt[(mode >> 2) % 3], &events).ok()) {
    for (const auto& e : events) {
      // Every event is a slice of the decoded body.
      if (e.json.data() < decoded->data() || e.json.data() + e.json.size() > decoded->data() + decoded->size()) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
