#include "cli/k8s.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/common.h"
#include "orchestrate/k8s_render.h"
#include "spate/orchestrator.h"

namespace spate::cli {

int k8s_render(const K8sRenderOptions& opts) {
  auto d = load_deployment_file(opts.path);
  if (!d.ok()) {
    std::fprintf(stderr, "%s\n", d.status().message().c_str());
    return kExitUsage;
  }
  DeploymentConfig cfg = std::move(d).value();
  if (!opts.k8s_namespace.empty()) cfg.k8s_namespace = opts.k8s_namespace;
  if (!opts.image.empty()) cfg.image = opts.image;

  // The pipeline file as written (its ${VAR}s are resolved in the pods, from their env).
  std::string text;
  std::FILE* f = std::fopen(cfg.pipeline_path.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "cannot read %s: %s\n", cfg.pipeline_path.c_str(), std::strerror(errno));
    return kExitUsage;
  }
  char buf[8192];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);

  // The deployment file as written, for the in-cluster orchestrator (ConfigMap deployment.yaml).
  std::string deployment_text;
  if (std::FILE* df = std::fopen(opts.path.c_str(), "rb"); df != nullptr) {
    while ((n = std::fread(buf, 1, sizeof buf, df)) > 0) deployment_text.append(buf, n);
    std::fclose(df);
  }
  auto out = orchestrate::render_k8s_manifests(cfg, text, deployment_text);
  if (!out.ok()) {
    std::fprintf(stderr, "%s\n", out.status().message().c_str());
    return kExitUsage;
  }
  for (const std::string& w : orchestrate::k8s_render_warnings(cfg)) {
    std::fprintf(stderr, "spate: warning: %s\n", w.c_str());
  }
  if (std::fwrite(out->data(), 1, out->size(), stdout) != out->size() || std::fflush(stdout) != 0) {
    std::fprintf(stderr, "spate: cannot write the manifests: %s\n", std::strerror(errno));
    return kExitRuntime;
  }
  return kExitOk;
}

}  // namespace spate::cli
