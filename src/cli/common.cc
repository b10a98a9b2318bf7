#include "cli/common.h"

#include <fmt/format.h>

#include "cli/progress.h"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "server/remote_log.h"
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
  if (!t.log_url.empty()) {
    lc.kind = "remote";
    lc.url = t.log_url;
  } else if (!t.data_dir.empty()) {
    lc.data_dir = t.data_dir + "/log";
    if (lc.kind == "remote") lc.kind = "embedded";  // --data-dir names a local log
  } else if (t.config_path.empty()) {
    return ConfigError(
        "say where the log is: --data-dir DIR, --config PIPELINE.yaml or --log-url URL");
  }
  return lc;
}

Result<std::unique_ptr<Log>> open_configured_log(const LogConfig& lc) {
  if (lc.kind == "remote") {
    RemoteLogConfig rc;
    rc.url = lc.url;
    rc.timeout_ms = lc.remote_timeout_ms;
    rc.connect_wait_ms = lc.remote_connect_wait_ms;
    return open_remote_log(rc);
  }
  if (lc.kind == "kafka") return open_kafka_log(lc);
  return open_embedded_log(lc);
}

Result<std::unique_ptr<Log>> open_log(const LogTarget& t, bool create_topics_from_config) {
  SPATE_ASSIGN_OR_RETURN(LogConfig lc, resolve_log_config(t));
  Progress progress;  // on a terminal: how far recovering a large log has got
  if (progress.enabled() && lc.kind == "embedded") {
    lc.on_open_progress = [&progress](const LogOpenProgress& p) {
      if (!progress.due()) return;
      progress.show(fmt::format("opening the log: topic {} of {}, {} partitions, {} read ({:.1f} s)",
                                p.topics_done, p.topics_total, p.partitions_done,
                                human_bytes(p.bytes_done), static_cast<double>(p.elapsed_ms) / 1000));
    };
  }
  auto opened = open_configured_log(lc);
  progress.done();
  if (!opened.ok() && opened.status().message().find("in use by another spate process") != std::string::npos) {
    return Status(opened.status().code(),
                  opened.status().message() +
                      " — use --log-url http://HOST:PORT (its admin address) to work on the log "
                      "of a running spate run, or stop it first");
  }
  SPATE_ASSIGN_OR_RETURN(auto log, std::move(opened));
  if (create_topics_from_config && !t.config_path.empty()) {
    SPATE_ASSIGN_OR_RETURN(PipelineConfig pc, load_pipeline_file(t.config_path));
    for (const auto& spec : pc.topics) SPATE_RETURN_IF_ERROR(log->ensure_topic(spec));
  }
  return log;
}

void add_log_target(CLI::App* cmd, LogTarget* t) {
  cmd->add_option("-d,--data-dir", t->data_dir, "Data directory (as `data_dir` in a pipeline)");
  cmd->add_option("-c,--config", t->config_path, "Pipeline file whose data_dir to use");
  cmd->add_option("--log-url", t->log_url,
                  "Use the log of a running pipeline: http://HOST:PORT of its admin server");
}

}  // namespace spate::cli
