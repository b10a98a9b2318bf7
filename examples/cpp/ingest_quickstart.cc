// Using Spate's ingestion engine from a C++ program (the reference design's quick start):
// open an embedded log, ingest a batch of events durably, read them back.
//   ./build/examples/ingest_quickstart /tmp/spate-example
#include <cstdio>
#include <string>

#include "spate/ingestion.h"
#include "spate/log.h"

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "./spate-data/example";

  spate::LogConfig log_cfg;
  log_cfg.data_dir = dir + "/log";
  log_cfg.fsync = spate::FsyncPolicy::kAlways;
  auto log = spate::open_embedded_log(log_cfg);
  if (!log.ok()) {
    std::fprintf(stderr, "open log: %s\n", log.status().to_string().c_str());
    return 1;
  }
  (void)(*log)->ensure_topic({"user_events", 2});

  spate::IngestionConfig cfg;
  cfg.key_field = "user_id";
  cfg.timestamp_field = "timestamp";
  cfg.dead_letter_topic = "failed_messages";
  spate::DataIngestionEngine engine(cfg, log->get());
  if (auto s = engine.initialize(); !s.ok()) {
    std::fprintf(stderr, "initialize: %s\n", s.to_string().c_str());
    return 1;
  }
  if (auto s = engine.start(); !s.ok()) return 1;

  spate::IngestRequest req;
  req.topic = "user_events";
  req.body =
      "{\"user_id\":\"u1\",\"action\":\"login\",\"timestamp\":\"2026-11-29T10:00:00Z\"}\n"
      "{\"user_id\":\"u2\",\"action\":\"view\",\"timestamp\":1795946400000}\n"
      "this line is not JSON\n";
  spate::IngestResult r = engine.submit_sync(std::move(req));  // durable when it returns
  std::printf("accepted %zu, rejected %zu\n", r.accepted, r.rejected);
  for (const auto& e : r.errors) std::printf("  event %zu: %s\n", e.index, e.reason.c_str());
  engine.stop();

  size_t n = 0;
  for (uint32_t p = 0; p < 2; ++p) {
    auto f = (*log)->fetch("user_events", p, 0, {});
    for (const auto& rec : f->records()) {
      std::printf("partition %u offset %lld key %.*s: %.*s\n", p, static_cast<long long>(rec.offset),
                  static_cast<int>(rec.key.size()), rec.key.data(), static_cast<int>(rec.value.size()),
                  rec.value.data());
      ++n;
    }
  }
  (void)(*log)->close();
  return (r.accepted == 2 && r.rejected == 1 && n >= 2) ? 0 : 1;
}
