// The HTTP ingestion source: `POST /ingest/{topic}` and `POST /ingest` (default topic) on an
// HttpServer, answered asynchronously once the events are durable (see DataIngestionEngine).
//
// Responses: 202 {"accepted":N,"rejected":M,"errors":[{"index":i,"reason":"..."}]};
// 400 unusable body (or all_or_nothing with a bad event), 404 unknown topic, 413 body too large,
// 415 unsupported Content-Type or Content-Encoding, 429 + Retry-After when the queue is full,
// 503 + Retry-After when stopping or the log fails. Error bodies are {"error":"..."} (plus the
// per-event errors where there are any).
#pragma once

#include "server/http_server.h"
#include "spate/ingestion.h"

namespace spate::ingest {

/// Register the ingestion routes. `engine` must outlive the server's running period.
void install_http_source(HttpServer& server, DataIngestionEngine& engine);

/// The JSON body for a result (exposed for tests).
std::string result_json(const IngestResult& r);
/// The HTTP status for a result.
int result_http_status(const IngestResult& r);

}  // namespace spate::ingest
