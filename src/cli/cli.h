// The `spate` command line: parses argv with CLI11 and runs a subcommand.
// Contract: returns the process exit code: 0 ok, 1 runtime error, 2 usage or config error.
#pragma once
namespace spate::cli {
int run_cli(int argc, char** argv);
}
