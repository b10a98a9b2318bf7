// Test hook of the embedded log's transaction code: named points where a test may stop the
// process (e.g. SIGKILL itself in a forked child) to check recovery from a crash there.
//
// Contract: `crash_point` is nullptr in production (one predictable branch per point, on the
// transactional path only). Set it before the log is used; it is called on the producer's thread.
// Points: "commit:data_synced", "commit:recorded" (the coordinator's commit record is durable),
// "commit:marker" (after each COMMIT marker), "abort:marker" (after each ABORT marker).
#pragma once

namespace spate::txn_testing {

extern void (*crash_point)(const char* where);

inline void hit(const char* where) {
  if (crash_point != nullptr) crash_point(where);
}

}  // namespace spate::txn_testing
