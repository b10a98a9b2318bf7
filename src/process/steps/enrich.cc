// enrich step: not built yet (registered so the type name is reserved).
#include "process/steps/steps.h"

namespace spate::process {
void register_enrich_step(ProcessorRegistry&) {}
}  // namespace spate::process
