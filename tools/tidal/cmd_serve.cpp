// tidal serve --model DIR [--host 127.0.0.1] [--port 8000] [--served-model-name NAME] [--api-key KEY]
#include <csignal>
#include <cstdio>
#include <thread>

#include "cli_util.h"
#include "command.h"
#include "tidal/http/http_server.h"
#include "tidal/kernels/kernel_table.h"
#include "tidal/server/openai_api.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal serve --model DIR [flags]
OpenAI-compatible HTTP server (see docs/server.md).
  --host H                 bind address (default 127.0.0.1)
  --port P                 port (default 8000; 0 picks a free one)
  --served-model-name N    the model id clients use (default: the folder's name)
  --api-key KEY            require "Authorization: Bearer KEY" (except /health)
  --http-workers N         handler threads (default 256): request parsing, and non-streaming
                           requests until they finish; streams hold no thread
  --http-io-threads N      event-loop threads: sockets, SSE formatting and writes (default 1)
  --shutdown-grace-s S     on SIGTERM/SIGINT, let in-flight requests finish for S seconds (default 30)
  --max-waiting N          answer 429 (Retry-After: 1) while N sequences are waiting (default 1024)
)";

std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal = sig; }

int run_serve(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s%s", kHelp, tidal::cli::kEngineFlagsHelp);
    return 0;
  }
  tidal::EngineConfig ec;
  if (!tidal::cli::read_engine_flags(args, &ec)) return 2;
  tidal::http::HttpServerOptions ho;
  ho.host = args.get_or("host", "127.0.0.1");
  ho.port = uint16_t(args.get_int("port", 8000));
  ho.api_key = args.get_or("api-key", "");
  ho.worker_threads = int(args.get_int("http-workers", 256));
  ho.io_threads = int(args.get_int("http-io-threads", 1));
  ho.public_paths = {"/health"};
  const long long grace = args.get_int("shutdown-grace-s", 30);
  const long long max_waiting = args.get_int("max-waiting", 1024);
  std::string name = args.get_or("served-model-name", "");
  if (!args.finish()) return 2;
  if (ec.model_dir.empty()) {
    args.error("--model is required (see --help)");
    return 2;
  }
  if (name.empty()) {
    std::string d = ec.model_dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    name = d.substr(d.find_last_of('/') == std::string::npos ? 0 : d.find_last_of('/') + 1);
  }
  // Each connection is a file descriptor: thousands of streams need more than the usual 1024.
  const uint64_t max_files = tidal::http::raise_open_files_limit();
  std::fprintf(stderr, "[tidal serve] loading %s ... (open-files limit %llu)\n", ec.model_dir.c_str(),
               (unsigned long long)max_files);
  auto engine = tidal::Engine::create(ec);
  if (!engine) return tidal::cli::fail(args, engine.status());
  const auto st0 = (*engine)->stats();
  tidal::server::EngineService service(std::move(engine).value());
  tidal::server::OpenAiApi api(service, {name, ec.model_dir, max_waiting});
  tidal::http::Router router;
  api.register_routes(router);
  tidal::http::HttpServer server(std::move(router), ho);
  tidal::Status st = server.start();
  if (!st.is_ok()) return tidal::cli::fail(args, st);
  std::fprintf(stderr, "[tidal serve] model '%s' (%s), %lld KV blocks of %d tokens, kernels %s\n", name.c_str(),
               service.engine().model_config().architecture.c_str(), (long long)st0.kv_blocks_total, ec.block_size,
               tidal::kernels().name);
  std::fprintf(stderr, "[tidal serve] listening on http://%s:%u\n", ho.host.c_str(), unsigned(server.port()));
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::fprintf(stderr, "[tidal serve] signal %d: draining in-flight requests (up to %llds)\n", g_signal.load(), grace);
  server.stop(std::chrono::milliseconds(grace * 1000));
  service.stop();
  std::fprintf(stderr, "[tidal serve] stopped\n");
  return 0;
}

}  // namespace

TIDAL_COMMAND("serve", "OpenAI-compatible HTTP server", run_serve);
