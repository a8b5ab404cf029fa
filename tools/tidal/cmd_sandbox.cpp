// tidal sandbox serve: the agent sandbox service (docs/sandbox-api.md).
// tidal sandbox bench: create/exec latency against bubblewrap on the same machine (bench/).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <errno.h>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "tidal/http/http_client.h"
#include "tidal/http/http_server.h"
#include "tidal/sandbox/sandbox_api.h"
#include "tidal/sandbox/sandbox_manager.h"

namespace {

using namespace tidal;

std::atomic<int> g_signal{0};

// Overwrites `secret` wherever it appears in this process's original argv memory, so that neither
// host `ps` nor /proc/<pid>/cmdline (which sandbox helper processes, forked from the daemon,
// inherit) shows it. The argv strings are contiguous, starting at program_invocation_name.
void scrub_from_cmdline(const std::string& secret) {
  if (secret.empty()) return;
  FILE* f = std::fopen("/proc/self/cmdline", "re");
  if (!f) return;
  size_t len = 0;
  while (std::fgetc(f) != EOF) ++len;
  std::fclose(f);
  char* begin = program_invocation_name;
  std::string_view args(begin, len);
  for (size_t pos = args.find(secret); pos != std::string_view::npos; pos = args.find(secret, pos + 1)) {
    std::memset(begin + pos, 'x', secret.size());
  }
}
void on_signal(int sig) { g_signal.store(sig); }

int run_serve(cli::Args& args) {
  if (args.has("help")) {
    std::printf(
        "usage: tidal sandbox serve [--host 127.0.0.1] [--port 8080] [--root DIR] [--max-sandboxes N]\n"
        "                           [--api-key KEY] [--workers N] [--max-body-mb N]\n"
        "                           [--warm-pool N] [--warm-pool NAME=N ...]\n"
        "                           [--max-execs N] [--max-queued N] [--queue-timeout-s S]\n"
        "                           [--template NAME=DIR ...]\n"
        "Serves the sandbox API (docs/sandbox-api.md). Needs root (namespaces, mounts, cgroups).\n"
        "--template NAME=DIR (repeatable) adds a root filesystem template: a rootfs directory, e.g. a\n"
        "Debian built by scripts/make-sandbox-template.sh DIR; sandboxes ask for it with\n"
        "{\"template\": \"NAME\"}. The default template \"host\" binds the host's /usr read-only.\n"
        "--warm-pool N keeps N idle sandboxes (network \"none\") ready per template (default 4), so a\n"
        "create is a hand-out; --warm-pool NAME=N sets one template's pool.\n");
    return 0;
  }
  sandbox::ManagerOptions mopts;
  http::HttpServerOptions hopts;
  hopts.host = args.get_or("host", "127.0.0.1");
  hopts.port = static_cast<uint16_t>(args.get_int("port", 8080));
  mopts.root = args.get_or("root", "/var/lib/tidal-sandbox");
  mopts.max_sandboxes = static_cast<int>(args.get_int("max-sandboxes", 256));
  // --warm-pool N: every template's pool; --warm-pool NAME=N (repeatable): one template's.
  mopts.warm_pool = 4;
  for (const auto& w : args.get_all("warm-pool")) {
    size_t eq = w.find('=');
    std::string count = eq == std::string::npos ? w : w.substr(eq + 1);
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(count.c_str(), &end, 10);
    const int max = sandbox::ManagerOptions::kMaxWarmPool;
    if (count.empty() || *end || errno || n < 0 || n > max || eq == 0) {
      args.error("--warm-pool must be N or NAME=N with N in [0, " + std::to_string(max) + "], got '" + w + "'");
      return 2;
    }
    if (eq == std::string::npos) mopts.warm_pool = static_cast<int>(n);
    else mopts.warm_pool_per_template[w.substr(0, eq)] = static_cast<int>(n);
  }
  hopts.api_key = args.get_or("api-key", "");
  // A request waiting in an admission queue holds a worker: keep more workers than max-execs.
  hopts.worker_threads = static_cast<int>(args.get_int("workers", 128));
  mopts.max_execs = static_cast<int>(args.get_int("max-execs", 32));
  mopts.max_queued = static_cast<int>(args.get_int("max-queued", 1024));
  mopts.queue_timeout_ms = static_cast<int64_t>(args.get_double("queue-timeout-s", 30) * 1000.0);
  hopts.max_body_bytes = static_cast<size_t>(args.get_int("max-body-mb", 64)) << 20;
  for (const auto& t : args.get_all("template")) {
    size_t eq = t.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == t.size()) {
      args.error("--template must be NAME=DIR, got '" + t + "'");
      return 2;
    }
    std::string name = t.substr(0, eq);
    if (mopts.templates.count(name)) {
      args.error("--template " + name + " given twice");
      return 2;
    }
    mopts.templates[name] = t.substr(eq + 1);
  }
  if (!args.finish()) return 2;
  scrub_from_cmdline(hopts.api_key);
  if (geteuid() != 0) {
    args.error("must run as root (namespaces, overlay mounts and cgroups need it)");
    return 1;
  }
  // Signals: handled by polling a flag (the HTTP threads must not run handlers on signal stacks).
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, nullptr);
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  auto manager = sandbox::SandboxManager::open(mopts);
  if (!manager) {
    args.error(manager.status().to_string());
    return 1;
  }
  http::Router router;
  sandbox::SandboxApi::add_routes(router, **manager);
  http::HttpServer server(std::move(router), hopts);
  Status s = server.start();
  if (!s.is_ok()) {
    args.error(s.to_string());
    return 1;
  }
  std::string templates;
  for (const auto& t : (*manager)->templates()) {
    templates += (templates.empty() ? "" : ", ") + t->name();
    if (t->name() != "host") templates += "=" + t->source() + (t->idmapped() ? " (idmapped)" : " (" + t->note() + ")");
  }
  std::fprintf(stderr, "tidal sandbox: listening on http://%s:%u (root %s, max %d sandboxes, limits: %s, templates: %s)%s\n",
               hopts.host.c_str(), server.port(), (*manager)->options().root.c_str(), mopts.max_sandboxes,
               (*manager)->cgroup_description().c_str(), templates.c_str(),
               hopts.api_key.empty() ? "" : ", API key required");
  while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "tidal sandbox: signal %d, stopping\n", g_signal.load());
  server.stop(std::chrono::seconds(10));
  manager->reset();  // destroys every sandbox
  return 0;
}

// ---------------------------------------------------------------------------------------------
// bench

struct Stats {
  double p50 = 0, p99 = 0, mean = 0;
};

Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  s.p50 = at(0.5);
  s.p99 = at(0.99);
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  return s;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// fork+exec of argv, waiting for it; returns milliseconds (or -1).
double spawn_ms(const std::vector<std::string>& argv) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
  return ms_since(t0);
}

void report(const char* what, const Stats& s) {
  std::printf("  %-46s p50 %8.2f ms   p99 %8.2f ms   mean %8.2f ms\n", what, s.p50, s.p99, s.mean);
}

int run_bench(cli::Args& args) {
  int n = static_cast<int>(args.get_int("n", 50));
  std::string root = args.get_or("root", "/tmp/tidal-sandbox-bench");
  int max_clients = static_cast<int>(args.get_int("clients", 16));
  int fork_mb = static_cast<int>(args.get_int("fork-mb", 100));
  int density = static_cast<int>(args.get_int("density", 0));
  if (!args.finish()) return 2;
  if (geteuid() != 0) {
    args.error("must run as root");
    return 1;
  }
  sandbox::ManagerOptions mopts;
  mopts.root = root;
  mopts.max_sandboxes = std::max(n, density) + 16;
  auto manager = sandbox::SandboxManager::open(mopts);
  if (!manager) {
    args.error(manager.status().to_string());
    return 1;
  }
  http::Router router;
  sandbox::SandboxApi::add_routes(router, **manager);
  http::HttpServerOptions hopts;
  hopts.port = 0;
  hopts.worker_threads = 64;  // as `serve` (a running exec holds a worker)
  http::HttpServer server(std::move(router), hopts);
  if (!server.start().is_ok()) return 1;
  http::HttpClient client("127.0.0.1", server.port());

  std::printf("tidal sandbox bench: n=%d, limits: %s\n", n, (*manager)->cgroup_description().c_str());
  std::vector<double> host_true, unshare_true, bwrap_true, create_ms, exec_ms, exec_direct_ms, delete_ms;
  // Baselines, interleaved with ours so that machine noise hits both alike.
  const std::vector<std::string> kBwrap = {"bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
                                           "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                                           "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
                                           "--tmpfs", "/tmp", "/bin/true"};
  const std::vector<std::string> kUnshare = {"unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount",
                                             "--net", "--ipc", "--uts", "--cgroup", "/bin/true"};
  auto rss_kb = [] {
    FILE* f = std::fopen("/proc/self/status", "re");
    char line[256];
    long kb = 0;
    while (f && std::fgets(line, sizeof(line), f)) {
      if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::atol(line + 6);
    }
    if (f) std::fclose(f);
    return kb;
  };
  long rss_before = rss_kb();
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    host_true.push_back(spawn_ms({"/bin/sh", "-c", "true"}));
    unshare_true.push_back(spawn_ms(kUnshare));
    bwrap_true.push_back(spawn_ms(kBwrap));
    auto t0 = std::chrono::steady_clock::now();
    auto r = client.request("POST", "/v1/sandboxes", R"({"network":"none"})");
    create_ms.push_back(ms_since(t0));
    if (!r || r->status != 201) {
      std::fprintf(stderr, "create failed: %s\n", r ? r->body.c_str() : r.status().to_string().c_str());
      return 1;
    }
    ids.push_back(nlohmann::json::parse(r->body)["id"]);
  }
  long rss_live = rss_kb();
  int64_t cgroup_bytes = 0;
  for (const auto& sb : (*manager)->list()) cgroup_bytes += sb->info().memory_bytes;
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = client.request("POST", "/v1/sandboxes/" + ids[static_cast<size_t>(i)] + "/exec", R"({"cmd":["true"]})");
    exec_ms.push_back(ms_since(t0));
    if (!r || r->status != 200 || nlohmann::json::parse(r->body)["exit_code"] != 0) {
      std::fprintf(stderr, "exec failed: %s\n", r ? r->body.c_str() : r.status().to_string().c_str());
      return 1;
    }
    sandbox::ExecRequest req;
    req.argv = {"true"};
    t0 = std::chrono::steady_clock::now();
    (void)(*manager)->exec(ids[static_cast<size_t>(i)], req);
    exec_direct_ms.push_back(ms_since(t0));
  }
  // Throughput: `--clients` threads (default 16), each with its own keep-alive connection, exec `true` in the live
  // sandboxes round-robin for a fixed time.
  const int clients = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(1, max_clients)), ids.size()));
  std::atomic<int64_t> done{0}, failed{0};
  auto tp0 = std::chrono::steady_clock::now();
  {
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        http::HttpClient cl("127.0.0.1", server.port());
        size_t k = static_cast<size_t>(c);
        while (ms_since(tp0) < 3000) {
          auto r = cl.request("POST", "/v1/sandboxes/" + ids[k % ids.size()] + "/exec", R"({"cmd":["true"]})");
          (r && r->status == 200 ? done : failed).fetch_add(1);
          k += static_cast<size_t>(clients);
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  double throughput = static_cast<double>(done.load()) / (ms_since(tp0) / 1000.0);
  for (const auto& id : ids) {
    auto t0 = std::chrono::steady_clock::now();
    (void)client.request("DELETE", "/v1/sandboxes/" + id);
    delete_ms.push_back(ms_since(t0));
  }
  // Fork of a sandbox with a written layer of `fork_mb` MiB: each round writes a small file (so the
  // fork freezes a new layer) and forks; then forks of the unchanged sandbox (nothing to freeze).
  auto bench_fork = [&](http::HttpClient& c, std::vector<double>* after_write, std::vector<double>* unchanged) -> bool {
    std::string spec = "{\"memory_mb\":" + std::to_string(fork_mb * 2 + 256) + ",\"disk_mb\":" + std::to_string(fork_mb * 2 + 64) + "}";
    auto r = c.request("POST", "/v1/sandboxes", spec);
    if (!r || r->status != 201) return false;
    std::string parent = nlohmann::json::parse(r->body)["id"];
    std::string fill = "{\"shell\":\"head -c " + std::to_string(static_cast<int64_t>(fork_mb) << 20) +
                       " /dev/urandom > /workspace/big\",\"timeout_s\":120}";
    r = c.request("POST", "/v1/sandboxes/" + parent + "/exec", fill);
    if (!r || r->status != 200) return false;
    std::vector<std::string> kids;
    for (int i = 0; i < 10; ++i) {
      (void)c.request("PUT", "/v1/sandboxes/" + parent + "/files?path=/workspace/step" + std::to_string(i), "x");
      auto t0 = std::chrono::steady_clock::now();
      r = c.request("POST", "/v1/sandboxes/" + parent + "/fork");
      after_write->push_back(ms_since(t0));
      if (!r || r->status != 201) return false;
      kids.push_back(nlohmann::json::parse(r->body)["id"]);
      t0 = std::chrono::steady_clock::now();
      r = c.request("POST", "/v1/sandboxes/" + parent + "/fork");
      unchanged->push_back(ms_since(t0));
      if (!r || r->status != 201) return false;
      kids.push_back(nlohmann::json::parse(r->body)["id"]);
      while (kids.size() > 4) {  // keep a few alive, like a search tree's open branches
        (void)c.request("DELETE", "/v1/sandboxes/" + kids.front());
        kids.erase(kids.begin());
      }
    }
    for (const auto& k : kids) (void)c.request("DELETE", "/v1/sandboxes/" + k);
    (void)c.request("DELETE", "/v1/sandboxes/" + parent);
    return true;
  };
  std::vector<double> fork_cold, fork_cold_same, fork_warm, fork_warm_same;
  if (fork_mb > 0 && !bench_fork(client, &fork_cold, &fork_cold_same)) {
    std::fprintf(stderr, "fork benchmark failed\n");
    return 1;
  }
  // Density: `density` idle sandboxes at once; the daemon's RSS growth per sandbox.
  long density_rss_kb = 0;
  double density_create_s = 0;
  int64_t density_cgroup_bytes = 0;
  if (density > 0) {
    long rss0 = rss_kb();
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> many;
    for (int i = 0; i < density; ++i) {
      auto r = client.request("POST", "/v1/sandboxes", R"({"network":"none","memory_mb":64})");
      if (!r || r->status != 201) {
        std::fprintf(stderr, "density: create %d failed: %s\n", i, r ? r->body.c_str() : r.status().to_string().c_str());
        return 1;
      }
      many.push_back(nlohmann::json::parse(r->body)["id"]);
    }
    density_create_s = ms_since(t0) / 1000.0;
    density_rss_kb = rss_kb() - rss0;
    for (const auto& sb : (*manager)->list()) density_cgroup_bytes += sb->info().memory_bytes;
    // Still alive and usable: one exec in the first, the middle and the last.
    for (size_t k : {size_t{0}, many.size() / 2, many.size() - 1}) {
      auto r = client.request("POST", "/v1/sandboxes/" + many[k] + "/exec", R"({"cmd":["true"]})");
      if (!r || r->status != 200) return 1;
    }
    for (const auto& id : many) (void)client.request("DELETE", "/v1/sandboxes/" + id);
  }

  // Warm pool: a second service whose pool is refilled between (untimed) creates, so each timed
  // create is a hand-out.
  std::vector<double> warm_ms;
  {
    sandbox::ManagerOptions wopts = mopts;
    wopts.root = root + "-warm";
    wopts.warm_pool = 4;
    auto warm_manager = sandbox::SandboxManager::open(wopts);
    if (!warm_manager) {
      args.error(warm_manager.status().to_string());
      return 1;
    }
    http::Router wrouter;
    sandbox::SandboxApi::add_routes(wrouter, **warm_manager);
    http::HttpServer wserver(std::move(wrouter), hopts);
    if (!wserver.start().is_ok()) return 1;
    http::HttpClient wclient("127.0.0.1", wserver.port());
    for (int i = 0; i < n; ++i) {
      for (int spin = 0; spin < 2000 && (*warm_manager)->n_warm() < 4; ++spin) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      auto t0 = std::chrono::steady_clock::now();
      auto r = wclient.request("POST", "/v1/sandboxes", R"({"network":"none","memory_mb":256})");
      warm_ms.push_back(ms_since(t0));
      if (!r || r->status != 201) return 1;
      (void)wclient.request("DELETE", "/v1/sandboxes/" + nlohmann::json::parse(r->body)["id"].get<std::string>());
    }
    for (int spin = 0; spin < 2000 && (*warm_manager)->n_warm() < 4; ++spin) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (fork_mb > 0 && !bench_fork(wclient, &fork_warm, &fork_warm_same)) {
      std::fprintf(stderr, "fork benchmark (warm pool) failed\n");
      return 1;
    }
    wserver.stop();
  }
  Stats sh = stats(host_true), us = stats(unshare_true), bw = stats(bwrap_true), cr = stats(create_ms),
        ex = stats(exec_ms), exd = stats(exec_direct_ms), del = stats(delete_ms), wa = stats(warm_ms);
  std::printf("baselines (fork+exec from this process, waited):\n");
  report("sh -c true on the host", sh);
  report("unshare (user,pid,mount,net,ipc,uts,cgroup) true", us);
  report("bwrap --unshare-all (ro /usr, proc, dev) true", bw);
  std::printf("tidal sandbox (HTTP over loopback, keep-alive):\n");
  report("POST /v1/sandboxes (cold create, no pool)", cr);
  report("POST /v1/sandboxes (warm pool hand-out)", wa);
  report("POST /v1/sandboxes/{id}/exec  true", ex);
  report("exec true, in-process (no HTTP)", exd);
  report("DELETE /v1/sandboxes/{id}", del);
  if (fork_mb > 0) {
    char what[128];
    std::snprintf(what, sizeof(what), "fork, %d MiB layer + new write, cold child", fork_mb);
    report(what, stats(fork_cold));
    std::snprintf(what, sizeof(what), "fork, %d MiB layer + new write, warm child", fork_mb);
    report(what, stats(fork_warm));
    report("fork again, nothing new written, cold child", stats(fork_cold_same));
    report("fork again, nothing new written, warm child", stats(fork_warm_same));
  }
  std::printf("ratios (p50): cold create / bwrap run = %.2f, cold create / unshare = %.2f, "
              "exec(HTTP) / bwrap run = %.2f, exec(HTTP) / sh -c true = %.2f\n",
              cr.p50 / bw.p50, cr.p50 / us.p50, ex.p50 / bw.p50, ex.p50 / sh.p50);
  std::printf("throughput: %.0f exec `true`/s with %d concurrent clients over %d sandboxes (%lld failed)\n",
              throughput, clients, n, static_cast<long long>(failed.load()));
  std::printf("memory with %d idle sandboxes: daemon RSS +%.1f KiB per sandbox; sandbox cgroups %.1f KiB each "
              "(init + filesystem pages charged to the sandbox)\n",
              n, static_cast<double>(rss_live - rss_before) / n, static_cast<double>(cgroup_bytes) / 1024.0 / n);
  if (density > 0) {
    std::printf("density: %d idle sandboxes created in %.1f s (%.1f ms each); daemon RSS +%.1f KiB per sandbox; "
                "sandbox cgroups %.1f KiB each\n",
                density, density_create_s, density_create_s * 1000.0 / density,
                static_cast<double>(density_rss_kb) / density, static_cast<double>(density_cgroup_bytes) / 1024.0 / density);
  }
  server.stop();
  return 0;
}

}  // namespace

TIDAL_COMMAND("sandbox serve", "serve isolated sandboxes over HTTP (docs/sandbox-api.md)", run_serve);
TIDAL_COMMAND("sandbox bench", "measure sandbox create/exec latency against bubblewrap", run_bench);
