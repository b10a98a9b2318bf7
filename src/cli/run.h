// `spate run PIPELINE.yaml`: starts the components of a pipeline (today: embedded log + admin
// HTTP server) and runs until SIGINT/SIGTERM, then stops them in reverse order, draining
// in-flight appends and fsyncing the log.
// Contract: returns the exit code (0 clean stop, 1 runtime error, 2 config error).
#pragma once

#include <optional>
#include <string>

namespace spate::cli {

struct RunOptions {
  std::string config_path;
  std::string data_dir;          // overrides data_dir when non-empty
  std::optional<int> port;       // overrides server.port
};

int run_pipeline(const RunOptions& opts);

}  // namespace spate::cli
