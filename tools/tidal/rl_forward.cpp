// `tidal rl ...` runs in tidal-rl, a sibling binary built from cmd_rl_*.cpp with the trainer.
//
// Why a second binary: the trainer links libtorch, whose load alone leaves ~75 MB of relocated,
// private pages in the process. Every fork() copies their page tables, so a sandbox daemon carrying
// libtorch paid ~10 ms per fork+exec instead of ~1 ms (and every sandbox init inherited the
// mappings), and every other command paid libtorch's start-up. `tidal` lists the rl commands and
// replaces itself with tidal-rl (same arguments) when one is run.
#include "command.h"
#include "rl_commands.h"

namespace {
int forward_to_rl(tidal::cli::Args&) { return tidal::cli::exec_sibling("tidal-rl"); }

const bool registered = [] {
  for (const auto& e : tidal::cli::rl_commands::kAll) {
    tidal::cli::register_command({e.name, e.summary, forward_to_rl});
  }
  return true;
}();
}  // namespace
