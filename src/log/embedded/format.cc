#include "log/embedded/format.h"

#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <memory>

#include "base/crc32c.h"

namespace spate::logfmt {
namespace {

inline void put_varint(std::string* out, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}
inline uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Bounds-checked reader over a byte range.
struct Reader {
  const char* p;
  const char* end;
  bool bad = false;

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) {
        bad = true;
        return 0;
      }
      auto b = static_cast<uint8_t>(*p++);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    bad = true;
    return 0;
  }
  std::string_view bytes(uint64_t n) {
    if (bad || n > static_cast<uint64_t>(end - p)) {
      bad = true;
      return {};
    }
    std::string_view s(p, n);
    p += n;
    return s;
  }
};

}  // namespace

Status encode_batch(const RecordIn* records, size_t count, int64_t now_ms, Compression compression,
                    std::string* out, std::string* scratch, const TxnTag* txn) {
  if (count == 0) return InvalidArgument("empty batch");
  if (count > UINT32_MAX) return InvalidArgument("batch has too many records");
  const size_t hs = txn == nullptr ? kHeaderSize : kHeaderSize + kTxnExtSize;
  out->clear();
  out->resize(hs);
  int64_t first_ts = records[0].timestamp_ms != 0 ? records[0].timestamp_ms : now_ms;
  int64_t max_ts = INT64_MIN;
  std::string* payload = compression == Compression::kNone ? out : scratch;
  if (payload != out) payload->clear();
  for (size_t i = 0; i < count; ++i) {
    const RecordIn& r = records[i];
    int64_t ts = r.timestamp_ms != 0 ? r.timestamp_ms : now_ms;
    max_ts = std::max(max_ts, ts);
    // Record: body_length (padded 5-byte varint), ts_delta, key_len (-1 = null), key,
    // value_len, value, header_count, headers.
    size_t len_pos = payload->size();
    payload->append(5, '\0');  // max varint for u32 body length, fixed 5 bytes (padded form)
    size_t body_start = payload->size();
    put_varint(payload, zigzag(ts - first_ts));
    if (r.key) {
      put_varint(payload, zigzag(static_cast<int64_t>(r.key->size())));
      payload->append(*r.key);
    } else {
      put_varint(payload, zigzag(-1));
    }
    put_varint(payload, r.value.size());
    payload->append(r.value);
    put_varint(payload, r.header_count);
    for (uint32_t h = 0; h < r.header_count; ++h) {
      put_varint(payload, r.headers[h].key.size());
      payload->append(r.headers[h].key);
      put_varint(payload, r.headers[h].value.size());
      payload->append(r.headers[h].value);
    }
    uint64_t body_len = payload->size() - body_start;
    if (body_len > kMaxBatchBytes) return InvalidArgument("record too large");
    // Padded 5-byte varint: continuation bits on the first four bytes.
    char* lp = payload->data() + len_pos;
    for (int k = 0; k < 4; ++k) {
      lp[k] = static_cast<char>((body_len & 0x7F) | 0x80);
      body_len >>= 7;
    }
    lp[4] = static_cast<char>(body_len & 0x7F);
  }
  uint64_t raw_size = payload == out ? out->size() - hs : payload->size();
  if (raw_size > kMaxBatchBytes) return InvalidArgument("batch too large");
  uint8_t attributes = static_cast<uint8_t>(compression);
  if (compression == Compression::kLz4) {
    int bound = LZ4_compressBound(static_cast<int>(raw_size));
    out->resize(hs + static_cast<size_t>(bound));
    int n = LZ4_compress_default(payload->data(), out->data() + hs,
                                 static_cast<int>(raw_size), bound);
    if (n <= 0) return Internal("lz4 compression failed");
    out->resize(hs + static_cast<size_t>(n));
  } else if (compression == Compression::kZstd) {
    size_t bound = ZSTD_compressBound(raw_size);
    out->resize(hs + bound);
    size_t n = ZSTD_compress(out->data() + hs, bound, payload->data(), raw_size, 1);
    if (ZSTD_isError(n)) return Internal(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
    out->resize(hs + n);
  }
  if (txn != nullptr) {
    attributes |= txn->control ? kAttrControl : kAttrTransactional;
    put_i64(out->data() + kHeaderSize, txn->producer_id);
    put_i64(out->data() + kHeaderSize + 8, txn->txn_seq);
  }
  char* h = out->data();
  put_i64(h, 0);
  put_u32(h + 8, static_cast<uint32_t>(out->size() - kLengthFieldEnd));
  h[16] = static_cast<char>(kMagic);
  h[17] = static_cast<char>(attributes);
  h[18] = 0;
  h[19] = 0;
  put_u32(h + 20, static_cast<uint32_t>(count));
  put_i64(h + 24, first_ts);
  put_i64(h + 32, max_ts);
  put_u32(h + 40, static_cast<uint32_t>(raw_size));
  put_u32(h + 12, crc32c::value(h + 16, out->size() - 16));
  return Status::Ok();
}

Status parse_header(const char* p, size_t avail, BatchHeader* h) {
  if (avail < kHeaderSize) return Corruption("truncated batch header");
  h->base_offset = get_i64(p);
  h->batch_length = get_u32(p + 8);
  h->crc = get_u32(p + 12);
  h->magic = static_cast<uint8_t>(p[16]);
  h->attributes = static_cast<uint8_t>(p[17]);
  h->record_count = get_u32(p + 20);
  h->first_timestamp = get_i64(p + 24);
  h->max_timestamp = get_i64(p + 32);
  h->raw_payload_size = get_u32(p + 40);
  if (h->magic != kMagic) return Corruption("bad batch magic");
  if (h->batch_length < kHeaderSize - kLengthFieldEnd || h->batch_length > kMaxBatchBytes) {
    return Corruption("bad batch length");
  }
  if ((h->attributes & ~0xF) != 0 || (h->attributes & 0x3) == 3 ||
      (h->attributes & (kAttrTransactional | kAttrControl)) ==
          (kAttrTransactional | kAttrControl)) {
    return Corruption("bad batch attributes");
  }
  if (h->has_ext()) {
    if (h->batch_length < kHeaderSize + kTxnExtSize - kLengthFieldEnd) {
      return Corruption("bad transactional batch length");
    }
    if (avail >= kHeaderSize + kTxnExtSize) parse_ext(p, h);
  }
  if (h->record_count == 0 || h->base_offset < 0) return Corruption("bad batch record count");
  if (h->raw_payload_size > kMaxBatchBytes) return Corruption("bad batch payload size");
  return Status::Ok();
}

bool crc_ok(const char* p, const BatchHeader& h) {
  return crc32c::value(p + 16, h.total_size() - 16) == h.crc;
}

Status decode_records(const char* batch, const BatchHeader& h, int64_t min_offset,
                      FetchResult* out, size_t max_records) {
  const char* payload = batch + h.header_size();
  size_t payload_size = h.total_size() - h.header_size();
  if (h.compression() != Compression::kNone) {
    auto buf = std::make_unique<std::string>(h.raw_payload_size, '\0');
    if (h.compression() == Compression::kLz4) {
      int n = LZ4_decompress_safe(payload, buf->data(), static_cast<int>(payload_size),
                                  static_cast<int>(h.raw_payload_size));
      if (n < 0 || static_cast<uint32_t>(n) != h.raw_payload_size) {
        return Corruption("lz4 payload does not decompress");
      }
    } else {
      size_t n = ZSTD_decompress(buf->data(), buf->size(), payload, payload_size);
      if (ZSTD_isError(n) || n != h.raw_payload_size) {
        return Corruption("zstd payload does not decompress");
      }
    }
    payload = buf->data();
    payload_size = buf->size();
    out->buffers_.push_back(std::move(buf));
  } else if (payload_size != h.raw_payload_size) {
    return Corruption("payload size mismatch");
  }
  Reader rd{payload, payload + payload_size};
  for (uint32_t i = 0; i < h.record_count; ++i) {
    uint64_t body_len = rd.varint();
    std::string_view body = rd.bytes(body_len);
    if (rd.bad) return Corruption("record extends past batch");
    int64_t offset = h.base_offset + i;
    if (offset < min_offset) continue;
    if (out->records_.size() >= max_records) break;
    Reader br{body.data(), body.data() + body.size()};
    RecordView v;
    v.offset = offset;
    v.timestamp_ms = h.first_timestamp + unzigzag(br.varint());
    int64_t key_len = unzigzag(br.varint());
    if (key_len >= 0) {
      v.has_key = true;
      v.key = br.bytes(static_cast<uint64_t>(key_len));
    } else if (key_len != -1) {
      return Corruption("bad key length");
    }
    v.value = br.bytes(br.varint());
    uint64_t nh = br.varint();
    if (nh > body.size()) return Corruption("bad header count");
    v.header_begin = static_cast<uint32_t>(out->headers_.size());
    v.header_count = static_cast<uint32_t>(nh);
    for (uint64_t k = 0; k < nh && !br.bad; ++k) {
      RecordHeader hd;
      hd.key = br.bytes(br.varint());
      hd.value = br.bytes(br.varint());
      out->headers_.push_back(hd);
    }
    if (br.bad) return Corruption("record fields extend past record");
    out->records_.push_back(v);
  }
  return Status::Ok();
}

Status encode_marker(int64_t producer_id, int64_t txn_seq, bool commit, int64_t now_ms,
                     std::string* out) {
  RecordIn r;
  r.value = commit ? std::string_view("\x01", 1) : std::string_view("\x00", 1);
  TxnTag tag{producer_id, txn_seq, true};
  std::string scratch;
  return encode_batch(&r, 1, now_ms, Compression::kNone, out, &scratch, &tag);
}

Result<bool> marker_is_commit(const char* batch, const BatchHeader& h) {
  FetchResult tmp;
  SPATE_RETURN_IF_ERROR(decode_records(batch, h, 0, &tmp, 1));
  if (tmp.records_.size() != 1 || tmp.records_[0].value.size() != 1) {
    return Corruption("bad transaction marker");
  }
  return tmp.records_[0].value[0] == 1;
}

}  // namespace spate::logfmt
