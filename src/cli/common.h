// Helpers shared by the `spate` subcommands that open the log directly (topics, produce,
// consume, dlq): where the log is (--data-dir / --config), exit codes, error printing.
// Contract: open_log() opens the embedded log of the pipeline's data_dir (refused with a clear
// message while `spate run` owns it); exit codes are 0 ok, 1 runtime error, 2 usage/config.
#pragma once

#include <memory>
#include <string>

#include "spate/log.h"
#include "spate/status.h"

namespace CLI {
class App;
}

namespace spate::cli {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

void print_error(const std::string& msg);
int exit_code_for(const Status& s);

// Where the log commands find their data: --data-dir, else the pipeline file's data_dir.
struct LogTarget {
  std::string config_path;
  std::string data_dir;
  std::string log_url;  // --log-url: a running pipeline's log (its admin server)
};

/// The log a LogConfig names: the embedded log in data_dir, or (kind remote) the log API of
/// the process at url.
Result<std::unique_ptr<Log>> open_configured_log(const LogConfig& lc);

Result<LogConfig> resolve_log_config(const LogTarget& t);
Result<std::unique_ptr<Log>> open_log(const LogTarget& t, bool create_topics_from_config);
void add_log_target(CLI::App* cmd, LogTarget* t);

}  // namespace spate::cli
