// Micro-benchmarks of the ingestion stages between decode and routing, next to their peer in the
// same binary: raw simdjson DOM parsing of the same events (the floor every stage adds to).
//   build/bench/ingest_stages_bench            (bench/run.sh runs it and prints the ratios)
// Events: ~150-byte orders like examples/data_quality.yaml's, 1,000 distinct ones, cycled.
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "ingest/transform/transform.h"
#include "ingest/validate/quality.h"
#include "spate/config.h"

namespace {

std::vector<simdjson::padded_string> make_events() {
  std::vector<simdjson::padded_string> out;
  for (int i = 0; i < 1000; ++i) {
    std::string e = "{\"order_id\":\"o" + std::to_string(i) + "\",\"customer\":\"c" +
                    std::to_string(i % 97) + "\",\"amount\":" + std::to_string(10 + i % 500) +
                    ".5,\"quantity\":\"" + std::to_string(1 + i % 9) +
                    "\",\"currency\":\"EUR\",\"card\":\"4111111111111111\",\"email\":\"u" +
                    std::to_string(i) + "@example.com\",\"created_at\":1796000000000}";
    out.emplace_back(e);
  }
  return out;
}

const std::vector<simdjson::padded_string>& events() {
  static const auto e = make_events();
  return e;
}

spate::IngestionConfig stages_config() {
  auto r = spate::load_pipeline_string(R"(
ingestion:
  timestamp_field: created_at
  quality:
    - {name: ids, required: [order_id, customer]}
    - {name: currency, allowed: currency, values: [EUR, USD, GBP]}
    - {name: amount, range: amount, min: 0, max: 100000}
    - {name: email, regex: email, pattern: '^[^@]+@[^@]+$'}
    - {name: stale, max_age: 3650d}
  transforms:
    - {cast: quantity, to: int}
    - {rename: customer, to: customer_info.id}
    - {mask: card, keep_last: 4}
    - {default: channel, value: web}
    - {remove: [cvv]}
    - metadata: {received_at: _ingest.received_at, source: _ingest.source}
)", "bench.yaml");
  if (!r.ok()) std::abort();
  return r->ingestion;
}

void count(benchmark::State& state, size_t bytes) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

// Peer: parse each event once (what decoding costs without any stage).
void BM_Peer_SimdjsonParse(benchmark::State& state) {
  simdjson::dom::parser p;
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& ev = events()[i++ % events().size()];
    simdjson::dom::element doc;
    if (p.parse(ev).get(doc)) std::abort();
    benchmark::DoNotOptimize(doc);
    bytes += ev.size();
  }
  count(state, bytes);
}

void BM_ParseAndQualityChecks(benchmark::State& state) {
  auto cfg = stages_config();
  auto q = spate::ingest::QualityChecks::compile(cfg.quality, cfg.timestamp_field, false).value();
  simdjson::dom::parser p;
  spate::ingest::QualityChecks::Outcome out;
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& ev = events()[i++ % events().size()];
    simdjson::dom::element doc;
    if (p.parse(ev).get(doc)) std::abort();
    q.evaluate(doc, 1796000000000, &out);
    if (!out.failed.empty()) std::abort();
    bytes += ev.size();
  }
  count(state, bytes);
}

// Parse + six transform rules + writing the new event and parsing it again (the stages after
// the transforms read the transformed event).
void BM_ParseAndTransforms(benchmark::State& state) {
  auto cfg = stages_config();
  auto chain = spate::ingest::TransformChain::compile(cfg.transforms).value();
  simdjson::dom::parser p;
  spate::ingest::TransformInput in;
  in.received_at_ms = 1796000000000;
  in.source = "http";
  spate::ingest::TransformChain::Outcome out;
  std::string reason;
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& ev = events()[i++ % events().size()];
    simdjson::dom::element doc;
    if (p.parse(ev).get(doc)) std::abort();
    if (!chain.apply(doc, in, &out, &reason) || !out.changed) std::abort();
    benchmark::DoNotOptimize(out.json.data());
    bytes += ev.size();
  }
  count(state, bytes);
}

// A rule that reads what an earlier rule wrote forces an extra write + parse in the middle.
void BM_ParseAndTransformsReadingEdits(benchmark::State& state) {
  auto r = spate::load_pipeline_string(R"(
ingestion:
  transforms:
    - {cast: quantity, to: int}
    - {set: total, expr: 'amount * quantity'}
    - {set: big, value: true, when: 'total > 1000'}
)", "bench.yaml");
  auto chain = spate::ingest::TransformChain::compile(r->ingestion.transforms).value();
  simdjson::dom::parser p;
  spate::ingest::TransformInput in;
  spate::ingest::TransformChain::Outcome out;
  std::string reason;
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& ev = events()[i++ % events().size()];
    simdjson::dom::element doc;
    if (p.parse(ev).get(doc)) std::abort();
    if (!chain.apply(doc, in, &out, &reason)) std::abort();
    benchmark::DoNotOptimize(out.json.data());
    bytes += ev.size();
  }
  count(state, bytes);
}

BENCHMARK(BM_Peer_SimdjsonParse);
BENCHMARK(BM_ParseAndQualityChecks);
BENCHMARK(BM_ParseAndTransforms);
BENCHMARK(BM_ParseAndTransformsReadingEdits);

}  // namespace

BENCHMARK_MAIN();
