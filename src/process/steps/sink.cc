// sink step: not built yet.
#include "process/steps/steps.h"

namespace spate::process {
void register_sink_step(ProcessorRegistry&) {}
}  // namespace spate::process
