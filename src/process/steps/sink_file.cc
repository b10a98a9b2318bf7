// kind: file — not built yet.
#include "process/steps/sink.h"

namespace spate::process::sink {
Result<std::unique_ptr<EventProcessor>> make_file_sink(StepContext& ctx) {
  return ConfigError(at(*ctx.step) + ".kind: the file sink is not built yet");
}
}  // namespace spate::process::sink
