// `spate run PIPELINE.yaml`: starts the components of a pipeline (log, admin HTTP server,
// ingestion, processors) and runs until SIGINT/SIGTERM, then stops them in reverse order,
// draining in-flight appends and fsyncing the log. With --role/--replica/--log-url one pipeline
// file runs as several processes: one owns the embedded log (and serves it on /log/v1/), the
// others use it remotely, e.g. processor replicas 0/2 and 1/2.
// Contract: returns the exit code (0 clean stop, 1 runtime error, 2 config error).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace spate::cli {

struct RunOptions {
  std::string config_path;
  std::string data_dir;          // overrides data_dir when non-empty
  std::optional<int> port;       // overrides server.port
  std::string host;              // overrides server.host when non-empty (0.0.0.0 in a pod)
  // What this process runs: "all" (default) or a comma list of log, ingestion, processors.
  // The log is always opened (owned, or remote with --log-url); "log" alone runs nothing else.
  std::string role = "all";
  std::vector<std::string> processors;  // only these processors (default: every one)
  std::string replica;                  // "I/N": run the processors as replica I of N
  std::string log_url;                  // use the log of the process at this URL (kind remote)
  std::vector<std::string> analytics;   // only these analytics jobs (default: every one)
  std::optional<int> metrics_port;      // overrides server.metrics_port
  bool reuse_port = false;              // SO_REUSEPORT on the main port (ingestion replicas)
  std::string log_format;               // overrides logging.format (text | json) when non-empty
  bool no_status_line = false;          // no live status line even on a terminal
};

int run_pipeline(const RunOptions& opts);

}  // namespace spate::cli
