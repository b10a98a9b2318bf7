// The processor step registry and the engine around it: mask, typed step options, worker
// threads, per-event retries, circuit breakers that pause the consumer, flush failures.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "spate/config.h"
#include "spate/metrics.h"
#include "spate/processor.h"
#include "spate/processor_api.h"
#include "fault_fs.h"
#include "process_fixture.h"
#include "test_util.h"

namespace spate {
namespace {

using Fixture = testing::ProcessorFixture;
using testing::processor_of;
using testing::wait_until;

std::string fmt_json(uint32_t p, int i) {
  return "{\"p\":" + std::to_string(p) + ",\"i\":" + std::to_string(i) + "}";
}

// Start `p`, wait for its first committed batch, stop it.
::testing::AssertionResult run_one_batch(KafkaStreamProcessor& p) {
  if (Status s = p.initialize(); !s.ok()) return ::testing::AssertionFailure() << s.to_string();
  if (Status s = p.start(); !s.ok()) return ::testing::AssertionFailure() << s.to_string();
  const bool done = wait_until([&] { return p.stats().batches >= 1; });
  p.stop();
  return done ? ::testing::AssertionSuccess() : ::testing::AssertionFailure() << "no batch committed";
}

TEST(ProcessorStepsTest, MaskRedactsPartiallyMasksAndHashes) {
  Fixture f;
  f.topic("in");
  f.topic("out");
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: pii
    inputs: [in]
    output: out
    poll_timeout: 5ms
    steps:
      - {type: mask, fields: [ssn, user.email]}
      - {type: mask, with: partial, fields: card, keep_last: 4, char: "#"}
      - {type: mask, with: hash, fields: [name], key: k}
)");
  f.produce("in", 0, {R"({"ssn":"123-45-6789","user":{"email":"a@b.c"},"card":"4111111111111111","name":"ann"})"});
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(run_one_batch(p));
  auto out = f.read("out");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].value.find(R"("ssn":"[REDACTED]")"), std::string::npos) << out[0].value;
  EXPECT_NE(out[0].value.find(R"("email":"[REDACTED]")"), std::string::npos);
  EXPECT_NE(out[0].value.find(R"("card":"############1111")"), std::string::npos);
  EXPECT_EQ(out[0].value.find("ann"), std::string::npos);  // hashed (HMAC hex)
  EXPECT_EQ(out[0].value.find("6789"), std::string::npos);
}

TEST(ProcessorStepsTest, TypedStepOptionsAreCheckedWithPositions) {
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: p
    inputs: [a]
    output: b
    steps:
      - {type: mask, feilds: [x]}
      - {type: mask, fields: [x], with: blur}
      - {type: sortt}
)");
  Status s = validate_processor(cfg);
  ASSERT_FALSE(s.ok());
  const std::string& m = s.message();
  EXPECT_NE(m.find("p.yaml:7:9: processors[0].steps[0].fields: missing required key"), std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:7:30: processors[0].steps[0].feilds: unknown key (did you mean fields?)"),
            std::string::npos) << m;
  EXPECT_NE(m.find("processors[0].steps[1].with: expected one of redact, partial, hash, got \"blur\""),
            std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:9:9: processors[0].steps[2]: unknown step type \"sortt\" (known: "),
            std::string::npos) << m;
}

TEST(ProcessorStepsTest, WorkersShareThePartitionsAndEachEventIsProcessedOnce) {
  Fixture f;
  f.topic("in", 4);
  f.topic("out", 2);
  std::set<std::string> sent;
  for (uint32_t p = 0; p < 4; ++p) {
    std::vector<std::string> values;
    for (int i = 0; i < 250; ++i) {
      values.push_back(fmt_json(p, i));
      sent.insert(values.back());
    }
    f.produce("in", p, values);
  }
  ProcessorConfig cfg = processor_of(R"(
processors:
  - {name: w, inputs: [in], output: out, workers: 2, batch_size: 50, poll_timeout: 5ms}
)");
  ASSERT_EQ(cfg.workers, 2u);
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(wait_until([&] { return p.stats().consumed >= 1000; }));
  p.stop();
  auto out = f.read("out");
  std::multiset<std::string> got;
  for (const auto& r : out) got.insert(r.value);
  EXPECT_EQ(got.size(), 1000u);
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), sent);
}

// Failing deliveries while the disk is full: exactly-once, every transaction fails (the worker
// abandons the batch being committed and the one processed meanwhile, and polls both again);
// at-least-once, appends fail until their retries run out, and the batches are polled again.
// Once space is back, the output (read_committed) holds every input event — exactly once with
// transactions, at least once without.
void run_with_disk_full_for_a_while(bool exactly_once) {
  testing::TempDir dir;
  testing::FaultFs fs;
  LogConfig lc;
  lc.data_dir = dir.sub("log");
  lc.fs = &fs;
  Fixture f;
  f.log = std::move(open_embedded_log(lc)).value();
  f.topic("in", 2);
  f.topic("out", 2);
  std::set<std::string> sent;
  for (uint32_t p = 0; p < 2; ++p) {
    for (int chunk = 0; chunk < 10; ++chunk) {
      std::vector<std::string> values;
      for (int i = 0; i < 100; ++i) {
        values.push_back(fmt_json(p, chunk * 100 + i));
        sent.insert(values.back());
      }
      f.produce("in", p, values);
    }
  }
  ProcessorConfig cfg = processor_of(std::string(R"(
processors:
  - {name: x, inputs: [in], output: out, workers: 2, batch_size: 20, max_retries: 2,
     poll_timeout: 5ms, retry_backoff: 1ms, steps: [{map: [{set: seen, value: true}]}],
     exactly_once: )") + (exactly_once ? "true" : "false") + "}\n");
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(wait_until([&] { return p.stats().batches >= 3; }));
  const uint64_t retries = p.stats().retries;
  fs.space_left = 0;  // every append (data, markers, offsets and commit records) now fails
  ASSERT_TRUE(wait_until([&] {
    return exactly_once ? p.stats().aborts >= 4 : p.stats().retries >= retries + 4;
  }));
  fs.space_left = -1;
  ASSERT_TRUE(wait_until([&] {
    return p.total_lag() == 0 &&
           std::set<std::string>(sent).size() <= f.read("out").size();
  }));
  p.stop();
  std::multiset<std::string> got;
  for (const auto& r : f.read("out")) {
    std::string v = r.value;
    const auto at = v.find(",\"seen\":true");
    ASSERT_NE(at, std::string::npos) << v;
    v.erase(at, 12);
    got.insert(v);
  }
  if (exactly_once) {
    EXPECT_EQ(got.size(), sent.size());  // no duplicate
  }
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), sent);  // nothing lost
}

TEST(ProcessorStepsTest, ExactlyOnceSurvivesFailedTransactionsWithoutLossOrDuplicates) {
  run_with_disk_full_for_a_while(true);
}

TEST(ProcessorStepsTest, AtLeastOnceSurvivesFailedAppendsWithoutLoss) {
  run_with_disk_full_for_a_while(false);
}

// A test step calling a fake downstream that can be switched off; the processor must pause
// (breaker open), dead-letter nothing, and drain everything once the downstream is back.
struct FakeDownstream {
  std::atomic<bool> up{true};
  std::atomic<int> calls{0};
  std::atomic<int> fail_offset{-1};  // this input offset fails transiently, always
  std::atomic<int> flush_fail_once{0};
  std::atomic<int> flush_reject_offset{-1};
};
FakeDownstream g_down;

class FlakyStep final : public EventProcessor {
 public:
  explicit FlakyStep(bool with_downstream) : with_downstream_(with_downstream) {}
  StepOutcome process(ProcessorEvent& ev, StepError* err) override {
    g_down.calls.fetch_add(1);
    if (!g_down.up.load() || ev.offset() == g_down.fail_offset.load()) {
      err->transient = true;
      err->kind = "down";
      err->message = "downstream unavailable";
      return StepOutcome::kError;
    }
    if (ev.offset() == g_down.flush_reject_offset.load()) pending_reject_ = ev.index();
    return StepOutcome::kPass;
  }
  Status flush(std::vector<FlushFailure>* failed) override {
    if (g_down.flush_fail_once.exchange(0) == 1) return Unavailable("flush: connection reset");
    if (pending_reject_ != SIZE_MAX) {
      failed->push_back({pending_reject_, StepError{false, "constraint", "row rejected"}});
      pending_reject_ = SIZE_MAX;
    }
    return Status::Ok();
  }
  void discard() override { pending_reject_ = SIZE_MAX; }
  std::string downstream() const override { return with_downstream_ ? "fake://down" : ""; }

 private:
  bool with_downstream_;
  size_t pending_reject_ = SIZE_MAX;
};

void register_flaky() {
  static bool once = [] {
    (void)ProcessorRegistry::global().add("flaky_test", "test", [](StepContext& ctx) -> Result<std::unique_ptr<EventProcessor>> {
      bool ds = true;
      ctx.options->get_bool("downstream", &ds);
      SPATE_RETURN_IF_ERROR(ctx.options->finish());
      return std::unique_ptr<EventProcessor>(new FlakyStep(ds));
    });
    return true;
  }();
  (void)once;
}

TEST(ProcessorStepsTest, AnOpenBreakerPausesTheConsumerAndTheBacklogDrainsAfterwards) {
  register_flaky();
  g_down.up = false;
  g_down.fail_offset = -1;
  Fixture f;
  f.topic("in");
  f.topic("out");
  f.topic("dlq");
  std::vector<std::string> values;
  for (int i = 0; i < 100; ++i) values.push_back("{\"i\":" + std::to_string(i) + "}");
  f.produce("in", 0, values);
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: b
    inputs: [in]
    output: out
    dead_letter_topic: dlq
    batch_size: 10
    poll_timeout: 5ms
    max_retries: 100
    retry_backoff: 1ms
    circuit_breaker: {consecutive_failures: 3, open_for: 50ms}
    steps:
      - {type: flaky_test}
)");
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(p.initialize().ok());
  ASSERT_TRUE(p.start().ok());
  ASSERT_TRUE(wait_until([&] { return p.stats().pauses >= 3; }));
  ASSERT_EQ(p.downstreams().size(), 1u);
  EXPECT_EQ(p.downstreams()[0].downstream, "fake://down");
  EXPECT_NE(p.downstreams()[0].state, "closed");
  EXPECT_EQ(p.stats().dead_lettered, 0u);  // an outage is not the events' fault
  EXPECT_EQ(p.stats().batches, 0u);
  // While open, the downstream is not hammered: calls are bounded by probes, not retries.
  const int calls_open = g_down.calls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LE(g_down.calls.load() - calls_open, 10);
  std::string m = metrics.render_prometheus();
  EXPECT_NE(m.find("stream_circuit_breaker_transitions_total{downstream=\"fake://down\",processor=\"b\"}"),
            std::string::npos) << m;
  g_down.up = true;
  ASSERT_TRUE(wait_until([&] { return f.read("out").size() == 100; }));
  p.stop();
  EXPECT_EQ(f.read("out").size(), 100u);
  EXPECT_EQ(f.read("dlq").size(), 0u);
  EXPECT_EQ(p.downstreams()[0].state, "closed");
}

TEST(ProcessorStepsTest, ATransientErrorThatOutlastsItsRetriesIsDeadLetteredWithAttempts) {
  register_flaky();
  g_down.up = true;
  g_down.fail_offset = 2;
  Fixture f;
  f.topic("in");
  f.topic("out");
  f.topic("dlq");
  f.produce("in", 0, {"{\"i\":0}", "{\"i\":1}", "{\"i\":2}", "{\"i\":3}"});
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: t
    inputs: [in]
    output: out
    dead_letter_topic: dlq
    poll_timeout: 5ms
    max_retries: 2
    retry_backoff: 1ms
    steps:
      - {type: flaky_test, downstream: false}
)");
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(run_one_batch(p));
  g_down.fail_offset = -1;
  EXPECT_EQ(f.read("out").size(), 3u);
  auto dlq = f.read("dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value, "{\"i\":2}");
  EXPECT_EQ(dlq[0].headers["error.class"], "transient");
  EXPECT_EQ(dlq[0].headers["attempts"], "3");
  EXPECT_EQ(dlq[0].headers["error.message"], "downstream unavailable");
  EXPECT_LE(std::stoll(dlq[0].headers["first_failure_at"]), std::stoll(dlq[0].headers["failed_at"]));
  EXPECT_EQ(p.stats().retries, 2u);
}

TEST(ProcessorStepsTest, FlushFailuresRetryTheBatchOrDeadLetterTheRejectedEvent) {
  register_flaky();
  g_down.up = true;
  g_down.fail_offset = -1;
  g_down.flush_fail_once = 1;
  g_down.flush_reject_offset = 1;
  Fixture f;
  f.topic("in");
  f.topic("out");
  f.topic("dlq");
  f.produce("in", 0, {"{\"i\":0}", "{\"i\":1}", "{\"i\":2}"});
  ProcessorConfig cfg = processor_of(R"(
processors:
  - name: fl
    inputs: [in]
    output: out
    dead_letter_topic: dlq
    poll_timeout: 5ms
    retry_backoff: 1ms
    steps:
      - {type: flaky_test, downstream: false}
)");
  MetricsRegistry metrics;
  KafkaStreamProcessor p(cfg, f.log.get(), &metrics);
  ASSERT_TRUE(run_one_batch(p));
  g_down.flush_reject_offset = -1;
  EXPECT_EQ(p.stats().retries, 1u);  // the failed flush was retried
  auto dlq = f.read("dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value, "{\"i\":1}");
  EXPECT_EQ(dlq[0].headers["error.kind"], "constraint");
  // The rejected event is dead-lettered instead of output; the others reach the output once.
  auto out = f.read("out");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].value, "{\"i\":0}");
  EXPECT_EQ(out[1].value, "{\"i\":2}");
}

TEST(ProcessorStepsTest, ReferenceDesignKeyNamesAreAccepted) {
  ProcessorConfig cfg = processor_of(R"(
processors:
  - {name: r, inputs: [a], output: b, processing_timeout_seconds: 7, max_poll_interval_ms: 9000,
     session_timeout_ms: 12000, buffer_size: 1MiB, workers: 3, exactly_once: true,
     circuit_breaker: {failure_rate: 0.25, consecutive_failures: 2, open_for: 5s}}
)");
  EXPECT_EQ(cfg.processing_timeout_ms, 7000);
  EXPECT_EQ(cfg.max_poll_interval_ms, 9000);
  EXPECT_EQ(cfg.session_timeout_ms, 12000);
  EXPECT_EQ(cfg.buffer_size, 1u << 20);
  EXPECT_EQ(cfg.workers, 3u);
  EXPECT_TRUE(cfg.exactly_once);
  EXPECT_DOUBLE_EQ(cfg.breaker.failure_rate, 0.25);
  EXPECT_EQ(cfg.breaker.consecutive_failures, 2);
  EXPECT_EQ(cfg.breaker.open_ms, 5000);
}

}  // namespace
}  // namespace spate
