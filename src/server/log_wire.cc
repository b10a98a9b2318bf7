#include "server/log_wire.h"

#include <bit>
#include <cstring>

namespace spate::logwire {

static_assert(std::endian::native == std::endian::little, "the log wire format assumes little-endian");

namespace {

constexpr uint8_t kVersion = 1;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_str(std::string& out, std::string_view s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  template <typename T>
  bool get(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return fail();
    std::memcpy(v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool get_str(std::string_view* s) {
    uint32_t n = 0;
    if (!get(&n)) return false;
    if (in_.size() - pos_ < n) return fail();
    *s = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool version() {
    uint8_t v = 0;
    if (!get(&v)) return false;
    if (v != kVersion) {
      bad_version_ = true;
      return fail();
    }
    return true;
  }
  /// A count of items of at least `min_item_bytes` each must fit in what is left.
  bool count(uint32_t* n, size_t min_item_bytes) {
    if (!get(n)) return false;
    if (static_cast<uint64_t>(*n) * min_item_bytes > in_.size() - pos_) return fail();
    return true;
  }
  bool done() const { return ok_ && pos_ == in_.size(); }
  /// Marks the input malformed (a value no encoder writes); returns false.
  bool reject() { return fail(); }
  Status status(std::string_view what) const {
    if (bad_version_) return InvalidArgument(std::string(what) + ": unsupported wire version");
    if (!ok_) return InvalidArgument(std::string(what) + ": truncated or malformed");
    if (pos_ != in_.size()) return InvalidArgument(std::string(what) + ": trailing bytes");
    return Status::Ok();
  }

 private:
  bool fail() {
    ok_ = false;
    return false;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
  bool bad_version_ = false;
};

// Smallest encoded record: offset, timestamp, has_key, key len, value len, header count.
constexpr size_t kMinRecordBytes = 8 + 8 + 1 + 4 + 4 + 4;

void put_record(std::string& out, int64_t offset, int64_t ts, bool has_key, std::string_view key,
                std::string_view value, const RecordHeader* headers, uint32_t header_count) {
  put<int64_t>(out, offset);
  put<int64_t>(out, ts);
  put<uint8_t>(out, has_key ? 1 : 0);
  put_str(out, has_key ? key : std::string_view());
  put_str(out, value);
  put<uint32_t>(out, header_count);
  for (uint32_t i = 0; i < header_count; ++i) {
    put_str(out, headers[i].key);
    put_str(out, headers[i].value);
  }
}

// Reads `count` records, calling sink(offset, ts, has_key, key, value, header_first, n) after
// the headers of each were appended to `headers`.
template <typename Sink>
bool read_records(Reader& r, std::vector<RecordHeader>* headers, Sink&& sink) {
  uint32_t n = 0;
  if (!r.count(&n, kMinRecordBytes)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    int64_t offset = 0;
    int64_t ts = 0;
    uint8_t has_key = 0;
    std::string_view key;
    std::string_view value;
    uint32_t hc = 0;
    if (!r.get(&offset) || !r.get(&ts) || !r.get(&has_key) || !r.get_str(&key) ||
        !r.get_str(&value) || !r.count(&hc, 8)) {
      return false;
    }
    // The key flag is 0 or 1, and a record without a key carries an empty one: anything else
    // is not what an encoder writes (found by fuzz_log_wire).
    if (has_key > 1 || (has_key == 0 && !key.empty())) return r.reject();
    const size_t first = headers->size();
    for (uint32_t h = 0; h < hc; ++h) {
      RecordHeader rh;
      if (!r.get_str(&rh.key) || !r.get_str(&rh.value)) return false;
      headers->push_back(rh);
    }
    sink(offset, ts, has_key != 0, key, value, first, hc);
  }
  return true;
}

}  // namespace

void encode_records(std::string& out, const RecordIn* records, size_t count) {
  put<uint8_t>(out, kVersion);
  put<uint32_t>(out, static_cast<uint32_t>(count));
  for (size_t i = 0; i < count; ++i) {
    const RecordIn& r = records[i];
    put_record(out, 0, r.timestamp_ms, r.key.has_value(), r.key.value_or(std::string_view()),
               r.value, r.headers, r.header_count);
  }
}

Status decode_records(std::string_view in, std::vector<RecordIn>* records,
                      std::vector<RecordHeader>* headers) {
  records->clear();
  headers->clear();
  Reader r(in);
  std::vector<std::pair<size_t, uint32_t>> spans;  // header index ranges (headers may move)
  if (r.version()) {
    (void)read_records(r, headers,
                       [&](int64_t, int64_t ts, bool has_key, std::string_view key,
                           std::string_view value, size_t first, uint32_t n) {
                         RecordIn rec;
                         if (has_key) rec.key = key;
                         rec.value = value;
                         rec.timestamp_ms = ts;
                         records->push_back(rec);
                         spans.emplace_back(first, n);
                       });
  }
  SPATE_RETURN_IF_ERROR(r.status("records"));
  for (size_t i = 0; i < records->size(); ++i) {
    (*records)[i].headers = spans[i].second ? headers->data() + spans[i].first : nullptr;
    (*records)[i].header_count = spans[i].second;
  }
  return Status::Ok();
}

void encode_fetch(std::string& out, const FetchResult& fr) {
  put<uint8_t>(out, kVersion);
  put<int64_t>(out, fr.next_offset);
  put<int64_t>(out, fr.end_offset);
  put<int64_t>(out, fr.last_stable_offset);
  put<uint8_t>(out, kVersion);
  put<uint32_t>(out, static_cast<uint32_t>(fr.records().size()));
  for (const RecordView& rv : fr.records()) {
    const RecordHeader* h = fr.headers_.data() + rv.header_begin;
    put_record(out, rv.offset, rv.timestamp_ms, rv.has_key, rv.key, rv.value,
               rv.header_count ? h : nullptr, rv.header_count);
  }
}

Status decode_fetch(std::string in, FetchResult* out) {
  auto buf = std::make_unique<std::string>(std::move(in));
  Reader r(*buf);
  out->records_.clear();
  out->headers_.clear();
  if (r.version() && r.get(&out->next_offset) && r.get(&out->end_offset) &&
      r.get(&out->last_stable_offset) && r.version()) {
    (void)read_records(r, &out->headers_,
                       [&](int64_t offset, int64_t ts, bool has_key, std::string_view key,
                           std::string_view value, size_t first, uint32_t n) {
                         RecordView v;
                         v.offset = offset;
                         v.timestamp_ms = ts;
                         v.has_key = has_key;
                         v.key = key;
                         v.value = value;
                         v.header_begin = static_cast<uint32_t>(first);
                         v.header_count = n;
                         out->records_.push_back(v);
                       });
  }
  SPATE_RETURN_IF_ERROR(r.status("fetch result"));
  out->buffers_.push_back(std::move(buf));  // the views point into it; moving the pointer is safe
  return Status::Ok();
}

void encode_offsets(std::string& out, const std::map<uint32_t, int64_t>& offsets) {
  put<uint8_t>(out, kVersion);
  put<uint32_t>(out, static_cast<uint32_t>(offsets.size()));
  for (const auto& [p, o] : offsets) {
    put<uint32_t>(out, p);
    put<int64_t>(out, o);
  }
}

Status decode_offsets(std::string_view in, std::map<uint32_t, int64_t>* out) {
  out->clear();
  Reader r(in);
  uint32_t n = 0;
  if (r.version() && r.count(&n, 12)) {
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t p = 0;
      int64_t o = 0;
      if (!r.get(&p) || !r.get(&o)) break;
      (*out)[p] = o;
    }
  }
  return r.status("offsets");
}

void encode_topic(std::string& out, const TopicInfo& info) {
  put<uint8_t>(out, kVersion);
  put_str(out, info.name);
  put<uint32_t>(out, info.partitions);
  put<int64_t>(out, info.retention.ms);
  put<int64_t>(out, info.retention.bytes);
  put<uint8_t>(out, static_cast<uint8_t>(info.compression));
  put<uint32_t>(out, static_cast<uint32_t>(info.partition_info.size()));
  for (const PartitionInfo& p : info.partition_info) {
    put<uint32_t>(out, p.partition);
    put<int64_t>(out, p.start_offset);
    put<int64_t>(out, p.end_offset);
    put<uint64_t>(out, p.size_bytes);
    put<uint32_t>(out, p.segments);
  }
}

Status decode_topic(std::string_view in, TopicInfo* out) {
  *out = TopicInfo();
  Reader r(in);
  std::string_view name;
  uint8_t comp = 0;
  uint32_t n = 0;
  if (r.version() && r.get_str(&name) && r.get(&out->partitions) && r.get(&out->retention.ms) &&
      r.get(&out->retention.bytes) && r.get(&comp) && r.count(&n, 32)) {
    out->name = std::string(name);
    out->compression = static_cast<Compression>(comp);
    for (uint32_t i = 0; i < n; ++i) {
      PartitionInfo p;
      if (!r.get(&p.partition) || !r.get(&p.start_offset) || !r.get(&p.end_offset) ||
          !r.get(&p.size_bytes) || !r.get(&p.segments)) {
        break;
      }
      out->partition_info.push_back(p);
    }
  }
  if (comp > static_cast<uint8_t>(Compression::kZstd)) return InvalidArgument("topic: bad compression");
  return r.status("topic");
}

void encode_topic_spec(std::string& out, const TopicSpec& spec) {
  put<uint8_t>(out, kVersion);
  put_str(out, spec.name);
  put<uint32_t>(out, spec.partitions);
  put<uint8_t>(out, spec.retention ? 1 : 0);
  put<int64_t>(out, spec.retention ? spec.retention->ms : 0);
  put<int64_t>(out, spec.retention ? spec.retention->bytes : 0);
  put<uint8_t>(out, spec.compression ? 1 : 0);
  put<uint8_t>(out, static_cast<uint8_t>(spec.compression.value_or(Compression::kNone)));
}

Status decode_topic_spec(std::string_view in, TopicSpec* out) {
  *out = TopicSpec();
  Reader r(in);
  std::string_view name;
  uint8_t has_ret = 0;
  RetentionConfig ret;
  uint8_t has_comp = 0;
  uint8_t comp = 0;
  if (r.version() && r.get_str(&name) && r.get(&out->partitions) && r.get(&has_ret) &&
      r.get(&ret.ms) && r.get(&ret.bytes) && r.get(&has_comp) && r.get(&comp)) {
    out->name = std::string(name);
    if (has_ret) out->retention = ret;
    if (has_comp) out->compression = static_cast<Compression>(comp);
  }
  if (comp > static_cast<uint8_t>(Compression::kZstd)) return InvalidArgument("topic spec: bad compression");
  return r.status("topic spec");
}

Errc errc_from_name(std::string_view name) {
  for (int c = 0; c <= static_cast<int>(Errc::kUnimplemented); ++c) {
    if (errc_name(static_cast<Errc>(c)) == name) return static_cast<Errc>(c);
  }
  return Errc::kInternal;
}

int http_status_for(Errc code) {
  switch (code) {
    case Errc::kOk: return 200;
    case Errc::kInvalidArgument:
    case Errc::kConfig: return 400;
    case Errc::kNotFound: return 404;
    case Errc::kAlreadyExists:
    case Errc::kFenced: return 409;
    case Errc::kOutOfRange: return 416;
    case Errc::kUnavailable: return 503;
    case Errc::kTimeout: return 504;
    case Errc::kNoSpace: return 507;
    case Errc::kUnimplemented: return 501;
    default: return 500;
  }
}

}  // namespace spate::logwire
