// Fuzz target: the ingestion stages that read outside events after decoding — data-quality
// checks (src/ingest/validate/quality.h) and transforms over the JsonEdit overlay
// (src/ingest/transform/). Input: one JSON event. A fixed pipeline of every check kind and every
// transform operation runs over it; nothing may crash, every failure must come with a reason,
// and a transformed event must be valid JSON that parses to the document the chain returned.
#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/transform/transform.h"
#include "ingest/validate/quality.h"
#include "spate/config.h"

namespace {

constexpr const char* kPipeline = R"(
ingestion:
  timestamp_field: ts
  dead_letter_topic: dlq
  quality:
    - {required: [a, b.c], action: tag}
    - {range: n, min: -10, max: 1e6, action: tag}
    - {allowed: kind, values: [x, 1, true, null, 2.5], action: tag}
    - {allowed: k2, values: [a, b, c, d, e, f, g, h, i, j], action: tag}
    - {regex: s, pattern: '^[a-z]+\d*$', action: tag}
    - {max_age: 1h, action: tag}
    - {future_skew: 5m, field: a.t, action: tag}
    - {expr: 'len(s) < 100 or exists(a)', action: dead_letter}
  transforms:
    - {rename: a, to: moved.a}
    - {set: total, expr: 'n * 2 + coalesce(m, 0)'}
    - {set: moved.a.flag, value: true, when: 'exists(moved.a)'}
    - {remove: [b.c, gone]}
    - {cast: n, to: int, on_error: skip}
    - {cast: s, to: double, on_error: skip}
    - {cast: kind, to: string}
    - {cast: flag, to: bool, on_error: skip}
    - {default: region, value: eu}
    - {mask: s, keep_first: 1, keep_last: 2}
    - {mask: obj, replacement: x}
    - {hash: email}
    - {hash: k2, key: secret}
    - metadata: {received_at: _i.at, source: _i.src, request_id: _i.rid}
    - {set: total.x, value: 1, on_error: skip}
)";

struct Stages {
  Stages() {
    auto cfg = spate::load_pipeline_string(kPipeline, "fuzz.yaml");
    if (!cfg.ok()) __builtin_trap();
    auto q = spate::ingest::QualityChecks::compile(cfg->ingestion.quality,
                                                  cfg->ingestion.timestamp_field, true);
    auto t = spate::ingest::TransformChain::compile(cfg->ingestion.transforms);
    if (!q.ok() || !t.ok()) __builtin_trap();
    quality = std::move(q).value();
    chain = std::move(t).value();
  }
  spate::ingest::QualityChecks quality;
  spate::ingest::TransformChain chain;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Stages stages;
  static simdjson::dom::parser parser(1 << 20);
  simdjson::dom::element doc;
  if (parser.parse(reinterpret_cast<const char*>(data), size).get(doc)) return 0;
  const int64_t now = 1'796'000'000'000;
  spate::ingest::QualityChecks::Outcome q;
  stages.quality.evaluate(doc, now, &q);
  for (uint32_t i : q.failed) {
    if (stages.quality.reason(i, doc, now).empty()) __builtin_trap();
  }
  spate::ingest::TransformInput in;
  in.received_at_ms = now;
  in.source = "fuzz";
  in.request_id = "r\"1";
  spate::ingest::TransformChain::Outcome out;
  std::string reason;
  if (!stages.chain.apply(doc, in, &out, &reason)) {
    if (reason.empty()) __builtin_trap();
    return 0;
  }
  if (out.changed) {
    std::string text(out.json);
    simdjson::dom::parser check;
    simdjson::dom::element again;
    if (check.parse(text).get(again)) __builtin_trap();
    if (simdjson::minify(again) != simdjson::minify(out.doc)) __builtin_trap();
  }
  return 0;
}
