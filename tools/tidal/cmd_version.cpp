#include <cstdio>

#include "command.h"
#include "tidal/core/cpu_features.h"
#include "tidal/kernels/kernel_table.h"

namespace {
int run_version(tidal::cli::Args& args) {
  if (!args.finish()) return 2;
  std::printf("tidal 0.1.0\n");
  std::printf("kernels: %s; cpu: %s\n", tidal::kernels().name, tidal::cpu_features_summary().c_str());
  return 0;
}
}  // namespace

TIDAL_COMMAND("version", "print the version and the CPU kernels in use", run_version);
