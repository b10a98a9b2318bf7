#include "ingest/decode.h"

#include <zlib.h>
#include <zstd.h>

#include <memory>

namespace spate::ingest {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

Result<std::string> gunzip(std::string_view in, size_t max_bytes) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return Internal("zlib init failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[64 * 1024];
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    int rc = inflate(&z, Z_NO_FLUSH);
    size_t produced = sizeof(buf) - z.avail_out;
    if (out.size() + produced > max_bytes) {
      return OutOfRange("decompressed body larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      // Concatenated gzip members are allowed (RFC 1952).
      if (z.avail_in == 0) break;
      if (inflateReset(&z) != Z_OK) return InvalidArgument("corrupt gzip body");
      continue;
    }
    if (rc == Z_BUF_ERROR && z.avail_in == 0) return InvalidArgument("truncated gzip body");
    if (rc != Z_OK) return InvalidArgument(std::string("corrupt gzip body: ") + (z.msg ? z.msg : "inflate failed"));
  }
  return out;
}

Result<std::string> unzstd(std::string_view in, size_t max_bytes) {
  std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> ds(ZSTD_createDStream(), ZSTD_freeDStream);
  if (!ds) return Internal("zstd init failed");
  std::string out;
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  char buf[64 * 1024];
  size_t last = 1;
  while (ib.pos < ib.size) {
    ZSTD_outBuffer ob{buf, sizeof(buf), 0};
    last = ZSTD_decompressStream(ds.get(), &ob, &ib);
    if (ZSTD_isError(last)) {
      return InvalidArgument(std::string("corrupt zstd body: ") + ZSTD_getErrorName(last));
    }
    if (out.size() + ob.pos > max_bytes) {
      return OutOfRange("decompressed body larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, ob.pos);
    if (ob.pos == 0 && ib.pos == ib.size) break;
  }
  // Flush what the decoder still holds.
  while (last != 0) {
    ZSTD_outBuffer ob{buf, sizeof(buf), 0};
    last = ZSTD_decompressStream(ds.get(), &ob, &ib);
    if (ZSTD_isError(last)) {
      return InvalidArgument(std::string("corrupt zstd body: ") + ZSTD_getErrorName(last));
    }
    if (out.size() + ob.pos > max_bytes) {
      return OutOfRange("decompressed body larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, ob.pos);
    if (ob.pos == 0) break;
  }
  if (last != 0) return InvalidArgument("truncated zstd body");
  return out;
}

// Split "[a, b, ...]" at top-level commas. `body` starts with '['.
Status split_array(std::string_view body, std::vector<RawEvent>* out) {
  size_t depth = 0;
  bool in_string = false;
  size_t start = 1;
  size_t i = 1;
  bool closed = false;
  auto emit = [&](size_t end) {
    std::string_view piece = trim(body.substr(start, end - start));
    out->push_back({piece, out->size()});
  };
  for (; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (depth == 0) {
        if (c != ']') return InvalidArgument("unbalanced '}' in JSON array body");
        std::string_view last = trim(body.substr(start, i - start));
        if (!last.empty() || !out->empty()) {
          if (last.empty()) return InvalidArgument("trailing comma in JSON array body");
          emit(i);
        }
        closed = true;
        ++i;
        break;
      }
      --depth;
    } else if (c == ',' && depth == 0) {
      emit(i);
      if (out->back().json.empty()) return InvalidArgument("empty element in JSON array body");
      start = i + 1;
    }
  }
  if (!closed) return InvalidArgument("unterminated JSON array body");
  if (!trim(body.substr(i)).empty()) return InvalidArgument("unexpected data after the JSON array");
  return Status::Ok();
}

}  // namespace

Result<std::string> decompress(std::string_view encoding, std::string_view body, size_t max_bytes) {
  if (encoding == "gzip" || encoding == "x-gzip") return gunzip(body, max_bytes);
  if (encoding == "zstd") return unzstd(body, max_bytes);
  if (encoding.empty() || encoding == "identity") {
    if (body.size() > max_bytes) {
      return OutOfRange("body larger than " + std::to_string(max_bytes) + " bytes");
    }
    return std::string(body);
  }
  return NotFound("unsupported Content-Encoding \"" + std::string(encoding) +
                  "\" (supported: gzip, zstd, identity)");
}

Status split_events(std::string_view body, BodyFormat format, std::vector<RawEvent>* out) {
  out->clear();
  std::string_view t = trim(body);
  if (t.empty()) return InvalidArgument("empty body");
  if (format == BodyFormat::kAuto || format == BodyFormat::kJson) {
    if (t.front() == '[') return split_array(t, out);
    if (format == BodyFormat::kJson) {
      out->push_back({t, 0});
      return Status::Ok();
    }
  }
  // NDJSON (or auto-detected: several lines). One non-empty line = one event.
  size_t pos = 0;
  while (pos <= t.size()) {
    size_t nl = t.find('\n', pos);
    if (nl == std::string_view::npos) nl = t.size();
    std::string_view line = trim(t.substr(pos, nl - pos));
    if (!line.empty()) out->push_back({line, out->size()});
    pos = nl + 1;
  }
  // Auto mode: a single pretty-printed object spans several lines — treat it as one event if
  // the first line does not stand on its own.
  if (format == BodyFormat::kAuto && out->size() > 1 && t.front() == '{') {
    std::string_view first = out->front().json;
    if (first.back() != '}') {
      out->clear();
      out->push_back({t, 0});
    }
  }
  return Status::Ok();
}

}  // namespace spate::ingest
