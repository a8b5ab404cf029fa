#include <cstdio>

#include "command.h"

namespace {
int run_version(tidal::cli::Args& args) {
  if (!args.finish()) return 2;
  std::printf("tidal 0.1.0\n");
  return 0;
}
}  // namespace

TIDAL_COMMAND("version", "print the version", run_version);
