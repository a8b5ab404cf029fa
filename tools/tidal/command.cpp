#include "command.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace tidal::cli {

namespace {
std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}
}  // namespace

bool register_command(Command command) {
  std::string name = command.name;
  registry().emplace(std::move(name), std::move(command));
  return true;
}

const std::map<std::string, Command>& commands() { return registry(); }

namespace {
std::vector<char*> g_argv;
}  // namespace

void set_invocation(int argc, char** argv) { g_argv.assign(argv, argv + argc); }

int exec_sibling(const std::string& binary) {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec || g_argv.empty()) {
    std::fprintf(stderr, "tidal: cannot locate %s: /proc/self/exe: %s\n", binary.c_str(),
                 ec ? ec.message().c_str() : "no arguments recorded");
    return 1;
  }
  std::string path = (self.parent_path() / binary).string();
  std::vector<char*> argv = g_argv;
  argv[0] = path.data();
  argv.push_back(nullptr);
  execv(path.c_str(), argv.data());
  int err = errno;
  std::fprintf(stderr, "tidal: cannot run %s: %s%s\n", path.c_str(), std::strerror(err),
               err == ENOENT ? " (it is built with `tidal` when libtorch is installed: "
                               "apt-get install libtorch-dev libopenblas0-pthread)"
                             : "");
  return 1;
}

Args::Args(std::string command, std::vector<std::string> argv) : command_(std::move(command)) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string body = a.substr(2);
      auto eq = body.find('=');
      std::string name = body;
      std::optional<std::string> value;
      if (eq != std::string::npos) {
        name = body.substr(0, eq);
        value = body.substr(eq + 1);
      } else if (i + 1 < argv.size() && !(argv[i + 1].rfind("--", 0) == 0 && argv[i + 1].size() > 2)) {
        value = argv[++i];
      }
      if (auto it = flags_.find(name); it != flags_.end()) {
        auto& all = repeated_[name];
        if (all.empty()) all.push_back(it->second.value_or(""));
        all.push_back(value.value_or(""));
      }
      flags_[name] = value;
    } else {
      positionals_.push_back(a);
    }
  }
}

std::optional<std::string> Args::get(const std::string& flag) {
  used_[flag] = true;
  auto it = flags_.find(flag);
  if (it == flags_.end()) return std::nullopt;
  if (!it->second) {
    problems_.push_back("--" + flag + " needs a value");
    return std::nullopt;
  }
  return it->second;
}

std::string Args::get_or(const std::string& flag, const std::string& fallback) {
  auto v = get(flag);
  return v ? *v : fallback;
}

long long Args::get_int(const std::string& flag, long long fallback) {
  auto v = get(flag);
  if (!v) return fallback;
  char* end = nullptr;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0') {
    problems_.push_back("--" + flag + " expects an integer, got '" + *v + "'");
    return fallback;
  }
  return x;
}

double Args::get_double(const std::string& flag, double fallback) {
  auto v = get(flag);
  if (!v) return fallback;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0') {
    problems_.push_back("--" + flag + " expects a number, got '" + *v + "'");
    return fallback;
  }
  return x;
}

bool Args::has(const std::string& flag) {
  used_[flag] = true;
  return flags_.count(flag) > 0;
}

std::vector<std::string> Args::get_all(const std::string& flag) {
  used_[flag] = true;
  multi_[flag] = true;
  if (auto it = repeated_.find(flag); it != repeated_.end()) return it->second;
  auto it = flags_.find(flag);
  if (it == flags_.end()) return {};
  return {it->second.value_or("")};
}

bool Args::finish(size_t max_positionals) {
  for (const auto& [flag, value] : flags_) {
    if (!used_.count(flag)) problems_.push_back("unknown flag --" + flag);
    else if (repeated_.count(flag) && !multi_.count(flag))
      problems_.push_back("--" + flag + " given " + std::to_string(repeated_.at(flag).size()) + " times (give it once)");
  }
  if (positionals_.size() > max_positionals) {
    problems_.push_back("unexpected argument '" + positionals_[max_positionals] + "'" +
                        (positionals_[max_positionals].rfind("-", 0) == 0 ? " (flags are spelled --name)" : ""));
  }
  for (const auto& p : problems_) error(p);
  return problems_.empty();
}

void Args::error(const std::string& msg) const {
  std::fprintf(stderr, "tidal %s: error: %s\n", command_.c_str(), msg.c_str());
}

}  // namespace tidal::cli
