// The log API's wire format: how records, fetch results, offsets and topic descriptions travel
// between a process that owns an embedded log (LogApi, log_api.h) and processes that use it
// remotely (RemoteLog, remote_log.h). Internal to Spate; both ends come from the same build,
// and the format carries a version byte so a mismatch is an error, not garbage.
//
// Encoding: little-endian fixed-width integers, byte strings as u32 length + bytes.
//   records:   u8 version(1) · u32 count · count × record
//   record:    i64 offset · i64 timestamp_ms · u8 has_key · str key · str value ·
//              u32 header_count · header_count × (str key · str value)
//   fetch:     u8 version(1) · i64 next_offset · i64 end_offset · i64 last_stable_offset · records
//   offsets:   u8 version(1) · u32 count · count × (u32 partition · i64 offset)
//   topic:     u8 version(1) · str name · u32 partitions · i64 retention_ms · i64 retention_bytes ·
//              u8 compression · u32 count · count × (u32 partition · i64 start · i64 end ·
//              u64 size_bytes · u32 segments)
//   topic spec: u8 version(1) · str name · u32 partitions · u8 has_retention · i64 ms · i64 bytes ·
//              u8 has_compression · u8 compression
// Errors travel as HTTP status + header `spate-errc` (errc_name of the code) + a JSON body
// {"error": message}.
//
// Contract: every decode_* validates lengths and counts against the input and returns
// kInvalidArgument for truncated or malformed input (never reads out of bounds); decoded views
// point into the input, which must outlive them. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "spate/log.h"
#include "spate/status.h"

namespace spate::logwire {

inline constexpr std::string_view kErrcHeader = "spate-errc";
inline constexpr std::string_view kContentType = "application/x-spate-log";

void encode_records(std::string& out, const RecordIn* records, size_t count);
/// Records to append; views (and header pointers) point into `in` and `headers`.
Status decode_records(std::string_view in, std::vector<RecordIn>* records,
                      std::vector<RecordHeader>* headers);

void encode_fetch(std::string& out, const FetchResult& fr);
/// Takes ownership of `in` (kept in out->buffers_); records view into it.
Status decode_fetch(std::string in, FetchResult* out);

void encode_offsets(std::string& out, const std::map<uint32_t, int64_t>& offsets);
Status decode_offsets(std::string_view in, std::map<uint32_t, int64_t>* out);

void encode_topic(std::string& out, const TopicInfo& info);
Status decode_topic(std::string_view in, TopicInfo* out);

void encode_topic_spec(std::string& out, const TopicSpec& spec);
Status decode_topic_spec(std::string_view in, TopicSpec* out);

/// The code errc_name() gives `name`; kInternal if none does.
Errc errc_from_name(std::string_view name);
/// HTTP status for an error code (400, 404, 409, 416, 503, 504, 507, 501, 500).
int http_status_for(Errc code);

}  // namespace spate::logwire
