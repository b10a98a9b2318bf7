// The built-in source types. Adding a source: write sources/<type>.cc with a
// `SourceType <type>_source_type()` and list it here.
#include <mutex>

#include "ingest/source.h"

namespace spate::ingest {

#define SPATE_SOURCE(fn) SourceType fn();
#include "ingest/sources/list.inc"
#undef SPATE_SOURCE

void register_builtin_sources() {
  static std::once_flag once;
  std::call_once(once, [] {
#define SPATE_SOURCE(fn) register_source_type(fn());
#include "ingest/sources/list.inc"
#undef SPATE_SOURCE
  });
}

}  // namespace spate::ingest
