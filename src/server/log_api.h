// LogApi: serves a process's Log to other processes over its admin HTTP server, so that several
// `spate run` processes — ingestion in one, processor replicas i of n in others, started by hand
// or by the orchestrator — share one embedded log, which only one process may own (it holds
// the log directory's lock). The other side is RemoteLog (remote_log.h, `log: {kind: remote}`).
//
// Endpoints (bodies in the binary format of log_wire.h; errors as HTTP status + `spate-errc`
// header + {"error": ...}):
//   GET  /log/v1/topics                         u32-count-prefixed list of names (str each)
//   GET  /log/v1/topic?topic=T                  TopicInfo
//   POST /log/v1/topics?ensure=0|1              create (409 if it exists) or ensure a TopicSpec
//   POST /log/v1/append?topic=T&partition=P     records → text: first offset
//   GET  /log/v1/fetch?topic&partition&offset&max_records&max_bytes&wait_ms&isolation=committed
//   GET  /log/v1/offset_for_timestamp?topic&partition&ts    → text offset
//   POST /log/v1/commit?group=G&topic=T         offsets
//   GET  /log/v1/committed?group&topic&partition → text offset, or 204 if never committed
//   POST /log/v1/txn?id=TXID                    → text session id (creating it fences older
//                                                 producers with that id, as Log::transactional_producer)
//   POST /log/v1/txn/S/begin | /commit | /abort
//   POST /log/v1/txn/S/append?topic&partition   records → text first offset
//   POST /log/v1/txn/S/offsets?group&topic      offsets
//   DELETE /log/v1/txn/S                        drop the session (aborts an open transaction)
//   An unknown session id answers 410 Gone (the owner restarted or the session timed out).
//
// Contract:
//  - Every call maps onto the same Log method of the owner and keeps its semantics: appends are
//    durable under the owner's fsync policy before the answer; a transaction's records stay
//    invisible to read_committed readers until its commit answered 200.
//  - Requests run on LogApi's own threads (`threads`), never on the HTTP I/O threads, so a
//    fetch waiting for data (wait_ms, capped at max_wait_ms) or an append waiting for fsync does
//    not hold the ingestion path.
//  - A transaction session not used for `txn_timeout_ms` is dropped and its open transaction
//    aborted, so a client that died does not keep the partitions' last stable offset back.
//  - install() before the server starts; stop() (also the destructor) answers requests still
//    queued, then 503 to new ones, joins the threads and drops the sessions (aborting open
//    transactions). Stop the HTTP server after the LogApi; the Log must outlive both.
//    Thread-safe.
#pragma once

#include <cstdint>
#include <memory>

#include "server/http_server.h"
#include "spate/log.h"

namespace spate {

struct LogApiConfig {
  int threads = 16;                 // concurrent requests served (waiting fetches included)
  int64_t txn_timeout_ms = 60'000;  // idle transaction sessions are aborted and dropped
  int64_t max_wait_ms = 30'000;     // cap on a fetch's wait_ms
};

class LogApi {
 public:
  LogApi(Log* log, LogApiConfig config = {});
  ~LogApi();
  LogApi(const LogApi&) = delete;
  LogApi& operator=(const LogApi&) = delete;

  void install(HttpServer& server);
  void stop();
  /// Open transaction sessions (for tests and /status).
  size_t sessions() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spate
