// Byte-level helpers for the aggregate states' encode()/decode(): little-endian fixed 64-bit
// words, LEB128 varints, zigzag for signed values, length-prefixed bytes. A Reader never reads
// past its input: on underflow it records the failure, returns zeros, and ok() turns false.
// Internal to src/analytics.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace spate::analytics::codec {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void u8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void svarint(int64_t v) {
    varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void f64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    u64(bits);
  }
  void bytes(std::string_view s) {
    varint(s.size());
    out_->append(s.data(), s.size());
  }
  /// The opening of an encoding: a tag byte naming the state, then its format version.
  void header(char tag, uint8_t version) {
    u8(static_cast<uint8_t>(tag));
    u8(version);
  }

 private:
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

  uint8_t u8() {
    if (!need(1)) return 0;
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!need(1)) return 0;
      const auto b = static_cast<uint8_t>(in_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok_ = false;  // more than 10 bytes
    return 0;
  }
  int64_t svarint() {
    const uint64_t z = varint();
    return static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
  }
  uint64_t u64() {
    if (!need(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return v;
  }
  double f64() {
    const uint64_t bits = u64();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    if (!need(n)) return {};
    std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  /// Reads Writer::header(); true if it is (tag, version).
  bool header(char tag, uint8_t version) {
    const uint8_t t = u8();
    return u8() == version && t == static_cast<uint8_t>(tag) && ok_;
  }
  /// Fails the reader (e.g. a value out of its allowed range).
  void fail() { ok_ = false; }

 private:
  bool need(uint64_t n) {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace spate::analytics::codec
