#include "log/embedded/offset_store.h"

#include "base/crc32c.h"
#include "log/embedded/format.h"

namespace spate {

// Record: u32 length of body, u32 crc32c(body), body:
//   u16 group_len, group, u16 topic_len, topic, u32 count, count x (u32 partition, i64 offset)

OffsetStore::OffsetStore(FileSystem* fs, std::string dir)
    : fs_(fs), dir_(std::move(dir)), path_(path_join(dir_, "offsets.log")) {}

std::string OffsetStore::encode(std::string_view group, std::string_view topic,
                                const std::map<uint32_t, int64_t>& offsets) {
  std::string body;
  auto put16 = [&](size_t v) {
    char b[2] = {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF)};
    body.append(b, 2);
  };
  put16(group.size());
  body.append(group);
  put16(topic.size());
  body.append(topic);
  char b[12];
  logfmt::put_u32(b, static_cast<uint32_t>(offsets.size()));
  body.append(b, 4);
  for (const auto& [p, o] : offsets) {
    logfmt::put_u32(b, p);
    logfmt::put_i64(b + 4, o);
    body.append(b, 12);
  }
  std::string rec(8, '\0');
  logfmt::put_u32(rec.data(), static_cast<uint32_t>(body.size()));
  logfmt::put_u32(rec.data() + 4, crc32c::value(body.data(), body.size()));
  rec += body;
  return rec;
}

Status OffsetStore::open() {
  std::lock_guard lk(mu_);
  SPATE_RETURN_IF_ERROR(fs_->create_dirs(dir_));
  SPATE_ASSIGN_OR_RETURN(bool exists, fs_->exists(path_));
  if (exists) {
    SPATE_ASSIGN_OR_RETURN(std::string data, fs_->read_file(path_));
    size_t p = 0;
    while (data.size() - p >= 8) {
      uint32_t len = logfmt::get_u32(data.data() + p);
      uint32_t crc = logfmt::get_u32(data.data() + p + 4);
      if (len > data.size() - p - 8) break;
      const char* body = data.data() + p + 8;
      if (crc32c::value(body, len) != crc) break;
      // Parse (bounds-checked).
      size_t q = 0;
      auto get16 = [&](size_t* v) {
        if (q + 2 > len) return false;
        *v = static_cast<uint8_t>(body[q]) | (static_cast<size_t>(static_cast<uint8_t>(body[q + 1])) << 8);
        q += 2;
        return true;
      };
      size_t gl, tl;
      if (!get16(&gl) || q + gl > len) break;
      std::string group(body + q, gl);
      q += gl;
      if (!get16(&tl) || q + tl > len) break;
      std::string topic(body + q, tl);
      q += tl;
      if (q + 4 > len) break;
      uint32_t n = logfmt::get_u32(body + q);
      q += 4;
      if (static_cast<uint64_t>(n) * 12 != len - q) break;
      for (uint32_t i = 0; i < n; ++i, q += 12) {
        offsets_[{group, topic, logfmt::get_u32(body + q)}] = logfmt::get_i64(body + q + 4);
      }
      p += 8 + len;
    }
    if (p < data.size()) SPATE_RETURN_IF_ERROR(fs_->truncate(path_, p));
  }
  SPATE_ASSIGN_OR_RETURN(file_, fs_->open_appendable(path_));
  if (file_->size() > (1u << 20)) SPATE_RETURN_IF_ERROR(compact_locked());
  return Status::Ok();
}

Status OffsetStore::compact_locked() {
  std::map<std::pair<std::string, std::string>, std::map<uint32_t, int64_t>> grouped;
  for (const auto& [k, v] : offsets_) grouped[{std::get<0>(k), std::get<1>(k)}][std::get<2>(k)] = v;
  std::string all;
  for (const auto& [gt, m] : grouped) all += encode(gt.first, gt.second, m);
  if (file_) (void)file_->close();
  SPATE_RETURN_IF_ERROR(fs_->write_file_atomic(path_, all));
  SPATE_ASSIGN_OR_RETURN(file_, fs_->open_appendable(path_));
  return Status::Ok();
}

Status OffsetStore::commit(std::string_view group, std::string_view topic,
                           const std::map<uint32_t, int64_t>& offsets) {
  if (group.empty() || group.size() > 1000) return InvalidArgument("bad group name");
  std::string rec = encode(group, topic, offsets);
  std::lock_guard lk(mu_);
  if (!file_) return Unavailable("offset store is closed");
  uint64_t before = file_->size();
  Status s = file_->append(rec.data(), rec.size());
  if (s.ok()) s = file_->sync();
  if (!s.ok()) {
    (void)file_->truncate(before);
    return s.with_context("committing offsets");
  }
  for (const auto& [p, o] : offsets) offsets_[{std::string(group), std::string(topic), p}] = o;
  if (file_->size() > (4u << 20) && file_->size() > offsets_.size() * 64 * 16) {
    SPATE_RETURN_IF_ERROR(compact_locked());
  }
  return Status::Ok();
}

std::optional<int64_t> OffsetStore::get(std::string_view group, std::string_view topic,
                                        uint32_t partition) const {
  std::lock_guard lk(mu_);
  auto it = offsets_.find({std::string(group), std::string(topic), partition});
  if (it == offsets_.end()) return std::nullopt;
  return it->second;
}

Status OffsetStore::close() {
  std::lock_guard lk(mu_);
  if (!file_) return Status::Ok();
  Status s = file_->close();
  file_.reset();
  return s;
}

}  // namespace spate
