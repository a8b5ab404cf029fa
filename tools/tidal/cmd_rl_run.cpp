// tidal rl CONFIG.toml | tidal rl --resume DIR: the RL job (docs/rl.md).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_util.h"
#include "command.h"
#include "rl_commands.h"
#include "tidal/rl/rl_config.h"
#include "tidal/rl/rl_loop.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal rl CONFIG.toml [--set 'table.key=value;...'] [--stop-after N]
       tidal rl --resume RUN_DIR
Runs an RL job: a model (initialised by Tidal or a folder), SFT warm-up on the task's
demonstrations, then GRPO with event-driven rollouts (bounded staleness, partial rollouts) on the
in-process engine or `tidal serve` instances, with environments in sandboxes when the task needs
them. Progress goes to stderr; run.dir gets metrics.jsonl, ledger.jsonl, curve.svg, checkpoints
and result.json. The last line on stdout is the summary as one JSON object.
  --set          TOML assignments over the file, separated by ';' (e.g. 'grpo.steps=20;run.dir="/tmp/r"');
                 may be repeated (applied in order)
  --resume DIR   continue a stopped run from its last checkpoint (DIR/config.toml, DIR/overrides.txt)
  --stop-after N stop after N GRPO steps of this invocation (as if killed; --resume continues)
See examples/count-letters.toml and docs/rl.md for every key.
)";

std::string read_text(const std::string& path, bool* ok) {
  std::ifstream in(path);
  *ok = bool(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

int run_rl(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const auto resume = args.get("resume");
  // --set may be repeated; its assignments apply in order.
  std::vector<std::string> set_overrides;
  for (const auto& v : args.get_all("set"))
    for (auto& o : split(v, ';')) set_overrides.push_back(std::move(o));
  const long long stop_after = args.get_int("stop-after", 0);
  if (!args.finish(1)) return 2;
  if ((resume.has_value()) == (args.positionals().size() == 1)) {
    args.error("give either CONFIG.toml or --resume RUN_DIR (see --help)");
    return 2;
  }
  tidal::rl::RlRunOptions opts;
  opts.stop_after_steps = stop_after;
  std::string path;
  std::vector<std::string> overrides = set_overrides;
  if (resume) {
    path = *resume + "/config.toml";
    bool ok = false;
    const std::string saved = read_text(*resume + "/overrides.txt", &ok);
    if (!ok) {
      args.error("--resume " + *resume + ": not a run directory (no overrides.txt / config.toml)");
      return 1;
    }
    auto prior = split(saved, '\n');
    prior.insert(prior.end(), overrides.begin(), overrides.end());
    overrides = std::move(prior);
    overrides.push_back("run.dir=\"" + *resume + "\"");
    opts.resume = true;
  } else {
    path = args.positionals()[0];
  }
  bool ok = false;
  opts.config_text = read_text(path, &ok);
  if (!ok) {
    args.error("cannot read " + path);
    return 1;
  }
  auto config = tidal::rl::parse_rl_config(opts.config_text, path, overrides);
  if (!config) return tidal::cli::fail(args, config.status());
  opts.overrides = set_overrides;
  const bool tty = ::isatty(2);
  opts.progress = [tty](const std::string& line, bool transient) {
    if (tty) std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), transient ? "" : "\n");
    else std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  };
  auto result = tidal::rl::run_rl(*config, opts);
  if (!result) return tidal::cli::fail(args, result.status());
  std::printf("%s\n", result->dump().c_str());
  return 0;
}

}  // namespace

TIDAL_COMMAND(tidal::cli::rl_commands::kRun.name, tidal::cli::rl_commands::kRun.summary, run_rl);
