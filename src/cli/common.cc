#include "cli/common.h"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "spate/config.h"

namespace spate::cli {

void print_error(const std::string& msg) {
  std::fprintf(stderr, "spate: %s\n", msg.c_str());
}

int exit_code_for(const Status& s) {
  return s.code() == Errc::kConfig || s.code() == Errc::kInvalidArgument ? kExitUsage
                                                                         : kExitRuntime;
}


Result<LogConfig> resolve_log_config(const LogTarget& t) {
  LogConfig lc;
  if (!t.config_path.empty()) {
    SPATE_ASSIGN_OR_RETURN(PipelineConfig pc, load_pipeline_file(t.config_path));
    lc = pc.log;
  }
  if (!t.data_dir.empty()) {
    lc.data_dir = t.data_dir + "/log";
  } else if (t.config_path.empty()) {
    return ConfigError("say where the log is: --data-dir DIR or --config PIPELINE.yaml");
  }
  return lc;
}

Result<std::unique_ptr<Log>> open_log(const LogTarget& t, bool create_topics_from_config) {
  SPATE_ASSIGN_OR_RETURN(LogConfig lc, resolve_log_config(t));
  SPATE_ASSIGN_OR_RETURN(auto log, open_embedded_log(lc));
  if (create_topics_from_config && !t.config_path.empty()) {
    SPATE_ASSIGN_OR_RETURN(PipelineConfig pc, load_pipeline_file(t.config_path));
    for (const auto& spec : pc.topics) SPATE_RETURN_IF_ERROR(log->ensure_topic(spec));
  }
  return log;
}

void add_log_target(CLI::App* cmd, LogTarget* t) {
  cmd->add_option("-d,--data-dir", t->data_dir, "Data directory (as `data_dir` in a pipeline)");
  cmd->add_option("-c,--config", t->config_path, "Pipeline file whose data_dir to use");
}

}  // namespace spate::cli
