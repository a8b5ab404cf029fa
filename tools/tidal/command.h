// The `tidal` CLI: one binary, one subcommand per cmd_<name>.cpp file in this folder.
//
// A subcommand file defines a function `int run_x(Args&)` and registers it with
//   TIDAL_COMMAND("x", "one-line summary", run_x);
// Registration is static; tools/tidal/CMakeLists.txt compiles every cmd_*.cpp into the binary.
// Exit codes: 0 success, 1 runtime failure (printed as one "tidal x: error: ..." line), 2 bad usage.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tidal::cli {

// Parsed `--flag value`, `--flag=value` and `--switch` arguments plus positionals.
// Flags not declared by the command are an error (reported by finish()).
class Args {
 public:
  Args(std::string command, std::vector<std::string> argv);

  const std::string& command() const { return command_; }
  // Each accessor marks the flag as known. get() returns nullopt when absent.
  std::optional<std::string> get(const std::string& flag);
  std::string get_or(const std::string& flag, const std::string& fallback);
  // Parses as number; on a malformed value records an error and returns the fallback.
  long long get_int(const std::string& flag, long long fallback);
  double get_double(const std::string& flag, double fallback);
  bool has(const std::string& flag);  // a switch (no value) or a flag given with a value
  // Every value of a flag that may be repeated (`--set a=1 --set b=2`), in order. A flag read
  // only through the accessors above and given more than once is an error (finish()).
  std::vector<std::string> get_all(const std::string& flag);
  const std::vector<std::string>& positionals() const { return positionals_; }

  // Call once all flags were read: returns false (after printing the problem) when an unknown flag,
  // a malformed value, or more than `max_positionals` positional arguments were given. Commands
  // return 2 in that case.
  bool finish(size_t max_positionals = 0);
  // Print "tidal <command>: error: <msg>" to stderr.
  void error(const std::string& msg) const;

 private:
  std::string command_;
  std::map<std::string, std::optional<std::string>> flags_;  // value nullopt: bare switch
  std::map<std::string, bool> used_;
  std::map<std::string, std::vector<std::string>> repeated_;  // every value of a flag given twice or more
  std::map<std::string, bool> multi_;                          // read through get_all()
  std::vector<std::string> positionals_;
  std::vector<std::string> problems_;
};

struct Command {
  std::string name;
  std::string summary;
  std::function<int(Args&)> run;
};

// Registers at static-init time; returns true so it can initialise a static.
bool register_command(Command command);
const std::map<std::string, Command>& commands();

// The process's own argv, kept by main() for commands that hand the whole invocation to another
// binary (see exec_sibling).
void set_invocation(int argc, char** argv);
// Replaces this process with `binary` from the directory of the running executable, passing the
// original arguments (argv[1...]) unchanged. Returns only on failure: prints the reason and returns 1.
int exec_sibling(const std::string& binary);

}  // namespace tidal::cli

#define TIDAL_COMMAND(name, summary, fn) \
  static const bool tidal_registered_##fn = ::tidal::cli::register_command({name, summary, fn})
