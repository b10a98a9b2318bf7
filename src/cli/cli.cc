#include "cli/cli.h"

#include <cstdio>

#include "spate/version.h"

namespace spate::cli {
int run_cli(int, char**) {
  std::printf("spate %s\n", SPATE_VERSION);
  return 0;
}
}  // namespace spate::cli
