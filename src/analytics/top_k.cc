#include "analytics/top_k.h"

#include <algorithm>

#include "analytics/codec_internal.h"
#include "base/hash.h"

namespace spate::analytics {

Status TopKConfig::validate() const {
  if (capacity < 1 || capacity > (1u << 24)) {
    return InvalidArgument("top_k: capacity must be in [1, 16777216], got " +
                           std::to_string(capacity));
  }
  return Status::Ok();
}

size_t SpaceSaving::Hash::operator()(std::string_view s) const {
  return static_cast<size_t>(hash64(s));
}

SpaceSaving::SpaceSaving(const TopKConfig& config) : config_(config) {
  const Status s = config.validate();
  SPATE_CHECK(s.ok(), s.message());
}

void SpaceSaving::heap_swap(uint32_t a, uint32_t b) {
  std::swap(heap_[a], heap_[b]);
  slots_[heap_[a]].heap_pos = a;
  slots_[heap_[b]].heap_pos = b;
}

void SpaceSaving::sift_down(uint32_t pos) {
  const auto n = static_cast<uint32_t>(heap_.size());
  for (;;) {
    const uint32_t l = 2 * pos + 1;
    if (l >= n) return;
    uint32_t c = l;
    if (l + 1 < n && heap_less(l + 1, l)) c = l + 1;
    if (!heap_less(c, pos)) return;
    heap_swap(c, pos);
    pos = c;
  }
}

void SpaceSaving::sift_up(uint32_t pos) {
  while (pos > 0) {
    const uint32_t parent = (pos - 1) / 2;
    if (!heap_less(pos, parent)) return;
    heap_swap(pos, parent);
    pos = parent;
  }
}

void SpaceSaving::add(std::string_view item, uint64_t weight) {
  if (weight == 0) return;
  total_ += weight;
  auto it = index_.find(item);
  if (it != index_.end()) {
    Slot& s = slots_[it->second];
    s.count += weight;
    sift_down(s.heap_pos);
    return;
  }
  if (slots_.size() < config_.capacity) {
    const auto idx = static_cast<uint32_t>(slots_.size());
    const auto pos = static_cast<uint32_t>(heap_.size());
    slots_.push_back(Slot{std::string(item), weight, 0, pos});
    heap_.push_back(idx);
    index_.emplace(slots_.back().item, idx);
    sift_up(pos);
    return;
  }
  // Replace the minimum: reuse its map node (and the key string's buffer).
  const uint32_t idx = heap_[0];
  Slot& s = slots_[idx];
  auto node = index_.extract(s.item);
  node.key().assign(item.data(), item.size());
  index_.insert(std::move(node));
  s.item.assign(item.data(), item.size());
  s.error = s.count;
  s.count += weight;
  sift_down(0);
}

uint64_t SpaceSaving::min_count() const {
  if (slots_.size() < config_.capacity || heap_.empty()) return 0;
  return slots_[heap_[0]].count;
}

HeavyHitter SpaceSaving::find(std::string_view item) const {
  auto it = index_.find(item);
  if (it == index_.end()) return HeavyHitter{std::string(item), 0, min_count()};
  const Slot& s = slots_[it->second];
  return HeavyHitter{s.item, s.count, s.error};
}

std::vector<HeavyHitter> SpaceSaving::top(size_t k) const {
  std::vector<const Slot*> order;
  order.reserve(slots_.size());
  for (const Slot& s : slots_) order.push_back(&s);
  auto by_count = [](const Slot* a, const Slot* b) {
    return a->count != b->count ? a->count > b->count : a->item < b->item;
  };
  k = std::min(k, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(), by_count);
  std::vector<HeavyHitter> out;
  out.reserve(k);
  for (size_t i = 0; i < k; ++i) out.push_back({order[i]->item, order[i]->count, order[i]->error});
  return out;
}

void SpaceSaving::rebuild(std::vector<Slot> slots) {
  slots_ = std::move(slots);
  heap_.resize(slots_.size());
  index_.clear();
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    heap_[i] = i;
    slots_[i].heap_pos = i;
    index_.emplace(slots_[i].item, i);
  }
  for (auto i = static_cast<int64_t>(heap_.size() / 2) - 1; i >= 0; --i) {
    sift_down(static_cast<uint32_t>(i));
  }
}

Status SpaceSaving::merge(const SpaceSaving& o) {
  if (o.config_.capacity != config_.capacity) {
    return InvalidArgument("top_k: cannot merge summaries of different capacities");
  }
  if (o.total_ == 0) return Status::Ok();
  const uint64_t min_a = min_count();
  const uint64_t min_b = o.min_count();
  std::vector<Slot> combined;
  combined.reserve(slots_.size() + o.slots_.size());
  for (const Slot& s : slots_) {
    auto it = o.index_.find(s.item);
    if (it != o.index_.end()) {
      const Slot& t = o.slots_[it->second];
      combined.push_back(Slot{s.item, s.count + t.count, s.error + t.error, 0});
    } else {
      combined.push_back(Slot{s.item, s.count + min_b, s.error + min_b, 0});
    }
  }
  for (const Slot& t : o.slots_) {
    if (index_.count(t.item)) continue;
    combined.push_back(Slot{t.item, t.count + min_a, t.error + min_a, 0});
  }
  if (combined.size() > config_.capacity) {
    auto by_count = [](const Slot& a, const Slot& b) {
      return a.count != b.count ? a.count > b.count : a.item < b.item;
    };
    std::nth_element(combined.begin(), combined.begin() + config_.capacity, combined.end(),
                     by_count);
    combined.resize(config_.capacity);
  }
  total_ += o.total_;
  rebuild(std::move(combined));
  return Status::Ok();
}

void SpaceSaving::encode(std::string* out) const {
  codec::Writer w(out);
  w.u8('T');
  w.u8(1);
  w.varint(config_.capacity);
  w.varint(total_);
  w.varint(slots_.size());
  for (const Slot& s : slots_) {
    w.bytes(s.item);
    w.varint(s.count);
    w.varint(s.error);
  }
}

Result<SpaceSaving> SpaceSaving::decode(std::string_view in) {
  codec::Reader r(in);
  if (r.u8() != 'T' || r.u8() != 1) return Corruption("top_k: bad header");
  TopKConfig c;
  const uint64_t capacity = r.varint();
  c.capacity = static_cast<uint32_t>(std::min<uint64_t>(capacity, uint64_t{1} << 30));
  if (!r.ok() || !c.validate().ok()) return Corruption("top_k: bad configuration");
  SpaceSaving ss(c);
  const uint64_t total = r.varint();
  const uint64_t n = r.varint();
  // Each slot takes at least 3 bytes.
  if (!r.ok() || n > c.capacity || n > r.remaining() / 3) return Corruption("top_k: bad size");
  std::vector<Slot> slots;
  slots.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    Slot s;
    s.item = std::string(r.bytes());
    s.count = r.varint();
    s.error = r.varint();
    if (!r.ok() || s.count == 0 || s.error > s.count || s.count > total) {
      return Corruption("top_k: bad counter");
    }
    slots.push_back(std::move(s));
  }
  if (!r.done()) return Corruption("top_k: truncated or trailing bytes");
  ss.total_ = total;
  ss.rebuild(std::move(slots));
  if (ss.index_.size() != ss.slots_.size()) return Corruption("top_k: duplicate items");
  return ss;
}

}  // namespace spate::analytics
