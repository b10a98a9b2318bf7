#include "cli/cli.h"

int main(int argc, char** argv) { return spate::cli::run_cli(argc, argv); }
