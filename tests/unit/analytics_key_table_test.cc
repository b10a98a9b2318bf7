// The analytics engine's state containers against the standard ones on random operations:
// KeyTable (open addressing with backward-shift erase) against std::unordered_map, including
// keys forced into one probe run, and FlatMap against std::map.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <unordered_map>

#include "analytics/flat_map.h"
#include "analytics/key_table.h"

namespace spate::analytics {
namespace {

// Every state is found under its key at its own address, and all() lists exactly the model.
void expect_same(const KeyTable& t, const std::unordered_map<std::string, KeyState*>& model) {
  ASSERT_EQ(t.size(), model.size());
  for (const auto& [k, ks] : model) {
    ASSERT_EQ(t.find(k), ks) << k;
    ASSERT_EQ(ks->key, k);
  }
  for (size_t i = 0; i < t.all().size(); ++i) {
    ASSERT_EQ(t.all()[i]->table_pos, i);
    ASSERT_EQ(model.at(t.all()[i]->key), t.all()[i].get());
  }
}

TEST(KeyTableTest, RandomInsertFindEraseMatchesUnorderedMap) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    std::mt19937_64 rng(seed);
    KeyTable t;
    std::unordered_map<std::string, KeyState*> model;
    for (int op = 0; op < 20'000; ++op) {
      const std::string k = "k" + std::to_string(rng() % 3000);
      const bool present = model.count(k) != 0;
      if (rng() % 3 != 0) {
        if (present) continue;
        KeyState ks;
        ks.key = k;
        ks.events = static_cast<uint64_t>(op);
        KeyState* p = t.insert(std::move(ks), KeyTable::hash(k));
        model[k] = p;
      } else if (present) {
        t.erase(model[k]);
        model.erase(k);
      } else {
        ASSERT_EQ(t.find(k), nullptr);
      }
      if (op % 997 == 0) expect_same(t, model);
    }
    expect_same(t, model);
  }
}

TEST(KeyTableTest, CollidingHashesShareOneProbeRun) {
  // Hashes chosen to share home slots and wrap around the end of the index.
  KeyTable t;
  std::unordered_map<std::string, KeyState*> model;
  for (int i = 0; i < 30; ++i) {
    KeyState ks;
    const std::string k = "c" + std::to_string(i);
    ks.key = k;
    const uint64_t h = (i % 3 == 0) ? 63 : 62;  // two homes near the end of a 64-slot index
    model[k] = t.insert(std::move(ks), h);
  }
  auto fake = [](int i) -> uint64_t { return (i % 3 == 0) ? 63 : 62; };
  // Erase every other key from the middle of the run; the rest stay findable.
  for (int i = 0; i < 30; i += 2) {
    const std::string k = "c" + std::to_string(i);
    t.erase(model[k], fake(i));
    model.erase(k);
    for (int j = 0; j < 30; ++j) {
      const std::string kj = "c" + std::to_string(j);
      ASSERT_EQ(t.find(kj, fake(j)), model.count(kj) ? model[kj] : nullptr) << i << " " << j;
    }
  }
  ASSERT_EQ(t.size(), 15u);
}

TEST(FlatMapTest, RandomOperationsMatchStdMap) {
  std::mt19937_64 rng(7);
  FlatMap<int64_t, int> f;
  std::map<int64_t, int> m;
  for (int op = 0; op < 20'000; ++op) {
    const int64_t k = static_cast<int64_t>(rng() % 64) - 32;
    switch (rng() % 4) {
      case 0: {
        auto [it, fresh] = f.try_emplace(k, op);
        auto [mit, mfresh] = m.try_emplace(k, op);
        ASSERT_EQ(fresh, mfresh);
        ASSERT_EQ(it->second, mit->second);
        break;
      }
      case 1:
        f[k] += 1;
        m[k] += 1;
        break;
      case 2: {
        auto it = f.lower_bound(k);
        auto mit = m.lower_bound(k);
        ASSERT_EQ(it == f.end(), mit == m.end());
        if (mit != m.end()) {
          ASSERT_EQ(it->first, mit->first);
        }
        break;
      }
      default:
        if (!m.empty()) {
          ASSERT_EQ(f.begin()->first, m.begin()->first);
          f.erase(f.begin());
          m.erase(m.begin());
        }
    }
    ASSERT_EQ(f.size(), m.size());
  }
  auto it = f.begin();
  for (const auto& [k, v] : m) {
    ASSERT_EQ(it->first, k);
    ASSERT_EQ(it->second, v);
    ++it;
  }
}

}  // namespace
}  // namespace spate::analytics
