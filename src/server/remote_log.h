// RemoteLog: the Log interface over HTTP to the process that owns the log (`log: {kind: remote,
// url: http://HOST:PORT}` or `spate run --log-url`), served there by LogApi (log_api.h).
// This is how several processes share one embedded log: ingestion in the owner, processor
// replicas (`--replica i/n`) elsewhere. It is not a distributed log: the owner is a single
// point of failure, and when it is down every call fails with kUnavailable until it is back.
//
// Contract (on top of log.h's):
//  - Each call is one HTTP request on a pooled keep-alive connection, bounded by `timeout_ms`
//    (+ wait_ms for fetches). Calls are not retried after a request was sent, except by
//    HttpClient's single retry when a reused connection turns out closed before any answer —
//    so a failed append under at-least-once may or may not have landed, as with Kafka.
//  - Transactions: transactional_producer() opens a session on the owner (fencing older
//    producers with the same id). If the owner restarted or dropped the session (idle), a call
//    inside a transaction fails with kUnavailable and abort() succeeds (nothing is open any
//    more); begin() then opens a new session — fencing whatever holds the id now — and fails
//    with kUnavailable once: another producer with the id may have committed meanwhile, so the
//    caller re-reads its committed offsets and then begins again (the stream processor does).
//    A failed commit() leaves the outcome unknown until the owner answers again: ask
//    committed_offset().
//  - stats() counts what this process appended through the RemoteLog; enforce_retention() is
//    the owner's business (no-op here). close() makes later calls fail with kUnavailable.
//  - Thread-safe (one connection per concurrent call).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "spate/log.h"
#include "spate/status.h"

namespace spate {

struct RemoteLogConfig {
  std::string url;                   // http(s)://host:port of the owner's admin server
  int64_t timeout_ms = 10'000;       // per call (fetches add their wait_ms)
  int64_t connect_wait_ms = 30'000;  // open_remote_log() waits this long for the owner to answer
};

/// Open a RemoteLog; waits up to connect_wait_ms for the owner's log API to answer. Errors:
/// kConfig (bad URL), kUnavailable (no answer in time), kUnimplemented (something answers at
/// the URL but serves no log API).
Result<std::unique_ptr<Log>> open_remote_log(const RemoteLogConfig& config);

}  // namespace spate
