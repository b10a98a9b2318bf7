#include "cli/orchestrate.h"

#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdio>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "spate/orchestrator.h"

namespace spate::cli {

int orchestrate(const OrchestrateOptions& opts) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto d = load_deployment_file(opts.path, opts.pipeline);
  if (!d.ok()) {
    std::fprintf(stderr, "%s\n", d.status().message().c_str());
    return 2;
  }
  DeploymentConfig cfg = std::move(d).value();
  if (opts.port) {
    if (*opts.port < 0 || *opts.port > 65535) {
      std::fprintf(stderr, "spate: --port must be 0..65535\n");
      return 2;
    }
    cfg.port = *opts.port;
  }
  if (!opts.state_dir.empty()) cfg.state_dir = opts.state_dir;
  if (!opts.backend.empty()) cfg.backend = opts.backend;
  if (!opts.host.empty()) cfg.host = opts.host;
  if (!opts.k8s_namespace.empty()) cfg.k8s_namespace = opts.k8s_namespace;
  if (!opts.image.empty()) cfg.image = opts.image;
  if (opts.check) {
    std::printf("%s: ok (deployment %s, pipeline %s, %zu components:", cfg.source_path.c_str(),
                cfg.name.c_str(), cfg.pipeline_path.c_str(), cfg.components.size());
    for (const ComponentConfig& c : cfg.components) {
      std::printf(" %s[%s×%d]", c.name.c_str(), component_type_name(c.type), c.replicas);
    }
    std::printf(")\n");
    return 0;
  }
  auto logger = spdlog::stderr_color_mt("spate");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(cfg.pipeline.logging.level));
  spdlog::set_pattern(cfg.pipeline.logging.format == "json"
                          ? R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n","msg":"%v"})"
                          : "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  const bool k8s = cfg.backend == "kubernetes";
  StreamingOrchestrator orch(std::move(cfg));
  if (Status s = orch.start(); !s.ok()) {
    spdlog::error("cannot start the orchestrator: {}", s.to_string());
    return s.code() == Errc::kConfig ? 2 : 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("orchestrator: {} received; {}", sig == SIGINT ? "SIGINT" : "SIGTERM",
               k8s                  ? "the Kubernetes workloads keep running"
               : opts.leave_running ? "leaving the replicas running"
                                    : "stopping the deployment");
  orch.stop(!opts.leave_running);
  return 0;
}

}  // namespace spate::cli
