#include "ingest/sources/file_checkpoint.h"

#include <simdjson.h>

#include "base/json_escape.h"

namespace spate::ingest {

std::string encode_file_checkpoint(const FileCheckpoint& cp) {
  std::string out = "{\"version\":1,\"end_offsets\":{";
  bool first = true;
  for (const auto& [topic, offsets] : cp.end_offsets) {
    if (!first) out += ',';
    first = false;
    append_json_quoted(out, topic);
    out += ":[";
    for (size_t i = 0; i < offsets.size(); ++i) {
      if (i > 0) out += ',';
      out += std::to_string(offsets[i]);
    }
    out += ']';
  }
  out += "},\"files\":[";
  for (size_t i = 0; i < cp.files.size(); ++i) {
    const FileCheckpointEntry& f = cp.files[i];
    if (i > 0) out += ',';
    out += "\n {\"dev\":" + std::to_string(f.dev) + ",\"ino\":" + std::to_string(f.ino) +
           ",\"gen\":" + std::to_string(f.gen) + ",\"pos\":" + std::to_string(f.pos) +
           ",\"skipping\":" + (f.skipping ? "true" : "false") + ",\"path\":";
    append_json_quoted(out, f.path);
    out += '}';
  }
  out += "]}\n";
  return out;
}

Result<FileCheckpoint> decode_file_checkpoint(std::string_view text) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto bad = [](std::string_view what) {
    return Corruption("file source checkpoint: " + std::string(what));
  };
  if (auto err = parser.parse(text.data(), text.size()).get(doc)) {
    return bad(std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  uint64_t version = 0;
  if (doc["version"].get_uint64().get(version) || version != 1) return bad("unknown version");
  FileCheckpoint cp;
  simdjson::dom::object offsets;
  if (doc["end_offsets"].get_object().get(offsets)) return bad("end_offsets is not an object");
  for (auto field : offsets) {
    simdjson::dom::array arr;
    if (field.value.get_array().get(arr)) return bad("end_offsets entries must be arrays");
    std::vector<int64_t>& v = cp.end_offsets[std::string(field.key)];
    for (simdjson::dom::element e : arr) {
      int64_t o = 0;
      if (e.get_int64().get(o)) return bad("offsets must be integers");
      v.push_back(o);
    }
  }
  simdjson::dom::array files;
  if (doc["files"].get_array().get(files)) return bad("files is not an array");
  for (simdjson::dom::element f : files) {
    FileCheckpointEntry e;
    std::string_view path;
    if (f["dev"].get_uint64().get(e.dev) || f["ino"].get_uint64().get(e.ino) ||
        f["gen"].get_uint64().get(e.gen) || f["pos"].get_uint64().get(e.pos) ||
        f["skipping"].get_bool().get(e.skipping) || f["path"].get_string().get(path)) {
      return bad("a file entry lacks dev, ino, gen, pos, skipping or path");
    }
    e.path = std::string(path);
    cp.files.push_back(std::move(e));
  }
  return cp;
}

}  // namespace spate::ingest
