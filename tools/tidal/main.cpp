// tidal <subcommand> [flags]: the one CLI. Subcommands live in cmd_*.cpp (see command.h).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "command.h"

namespace {
void usage() {
  std::printf("usage: tidal <command> [flags]\n\ncommands:\n");
  for (const auto& [name, cmd] : tidal::cli::commands()) {
    std::printf("  %-16s %s\n", name.c_str(), cmd.summary.c_str());
  }
  std::printf("\n`tidal <command> --help` describes a command's flags.\n");
}
}  // namespace

int main(int argc, char** argv) {
  tidal::cli::set_invocation(argc, argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  // Two-word commands ("model init", "sandbox serve") are registered as "model init".
  const auto& cmds = tidal::cli::commands();
  int consumed = 1;
  std::string name = argv[1];
  if (argc >= 3 && cmds.count(name + " " + argv[2])) {
    name = name + " " + argv[2];
    consumed = 2;
  }
  auto it = cmds.find(name);
  if (it == cmds.end()) {
    std::fprintf(stderr, "tidal: unknown command '%s' (run `tidal --help`)\n", name.c_str());
    return 2;
  }
  std::vector<std::string> rest(argv + 1 + consumed, argv + argc);
  tidal::cli::Args args(name, std::move(rest));
  return it->second.run(args);
}
