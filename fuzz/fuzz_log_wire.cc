// Fuzz target: the log API's wire decoders (log_wire.h), which read request bodies from other
// processes. The first byte picks the decoder; the rest is its input. Every decoder must reject
// malformed input with an error and never read out of bounds; what decodes must re-encode to
// the same bytes (records, offsets) or decode again to the same values.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/log_wire.h"

using namespace spate;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      std::vector<RecordIn> recs;
      std::vector<RecordHeader> headers;
      if (logwire::decode_records(in, &recs, &headers).ok()) {
        std::string again;
        logwire::encode_records(again, recs.data(), recs.size());
        // Offsets are not carried for appends (encoded as 0), so compare the decoded values.
        std::vector<RecordIn> recs2;
        std::vector<RecordHeader> headers2;
        if (!logwire::decode_records(again, &recs2, &headers2).ok() || recs2.size() != recs.size()) {
          std::abort();
        }
        for (size_t i = 0; i < recs.size(); ++i) {
          if (recs[i].value != recs2[i].value || recs[i].key != recs2[i].key ||
              recs[i].header_count != recs2[i].header_count) {
            std::abort();
          }
        }
      }
      break;
    }
    case 1: {
      FetchResult fr;
      if (logwire::decode_fetch(std::string(in), &fr).ok()) {
        std::string again;
        logwire::encode_fetch(again, fr);
        if (again != in) std::abort();
      }
      break;
    }
    case 2: {
      std::map<uint32_t, int64_t> offs;
      (void)logwire::decode_offsets(in, &offs);
      break;
    }
    case 3: {
      TopicInfo info;
      if (logwire::decode_topic(in, &info).ok()) {
        std::string again;
        logwire::encode_topic(again, info);
        if (again != in) std::abort();
      }
      break;
    }
    default: {
      TopicSpec spec;
      (void)logwire::decode_topic_spec(in, &spec);
      break;
    }
  }
  return 0;
}
