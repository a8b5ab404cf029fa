// Load: 1,000 concurrent streaming connections to a tiny model through a server with only a few
// worker threads (streams are event-driven and hold no thread). Every stream must finish with the
// right token count, and /health must answer while they are all open. Label `load` (release suite,
// not the sanitizer pass): about a second in a release build.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "tidal/http/http_client.h"
#include "tidal/http/http_server.h"
#include "tidal/model/model_init.h"
#include "tidal/server/openai_api.h"

namespace tidal::server {
namespace {

using json = nlohmann::json;

struct Conn {
  int fd = -1;
  std::string in;
  bool done = false;
};

TEST(ServerLoadTest, ThousandConcurrentStreamsFinishWithTheRightTokenCounts) {
  constexpr int kStreams = 1000;
  constexpr int kTokens = 6;
  if (http::raise_open_files_limit() < 2 * kStreams + 100) GTEST_SKIP() << "open-files limit too low for this test";
  const auto dir = std::filesystem::temp_directory_path() / "tidal_server_load_test_model";
  RandomModelSpec spec;
  spec.family = "qwen3";
  spec.n_layers = 1;
  spec.hidden = 32;
  spec.intermediate = 64;
  spec.n_heads = 2;
  spec.n_kv_heads = 1;
  spec.vocab = 300;
  spec.max_position = 128;
  ASSERT_TRUE(write_random_model(spec, dir.string(), true).is_ok());
  EngineConfig ec;
  ec.model_dir = dir.string();
  ec.n_threads = 1;
  ec.kv_cache_bytes = 32ull << 20;
  ec.max_num_seqs = 256;
  ec.max_num_batched_tokens = 2048;
  auto engine = Engine::create(ec);
  ASSERT_TRUE(engine) << engine.status().to_string();
  EngineService service(std::move(engine).value());
  OpenAiApi api(service, ApiOptions{"m", dir.string(), /*max_waiting=*/4096});
  http::Router router;
  api.register_routes(router);
  http::HttpServerOptions ho;
  ho.port = 0;
  ho.worker_threads = 8;  // far fewer than the streams: a stream must not hold a worker
  http::HttpServer server(std::move(router), ho);
  ASSERT_TRUE(server.start().is_ok());

  // Freeze the engine so that every request is in flight at once before any finishes.
  ASSERT_TRUE(service.pause(EngineService::PauseMode::kKeep).is_ok());
  std::vector<Conn> conns(kStreams);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < kStreams; ++i) {
    Conn& c = conns[size_t(i)];
    c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(c.fd, 0);
    ASSERT_EQ(::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << "connection " << i;
    const std::string body = json({{"prompt", {1 + i % 250, 2, 3}}, {"max_tokens", kTokens}, {"ignore_eos", true},
                                   {"stream", true}, {"stream_options", {{"include_usage", true}}},
                                   {"return_token_ids", true}, {"seed", i}})
                                 .dump();
    const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(::send(c.fd, req.data(), req.size(), 0), ssize_t(req.size()));
    ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
  }
  // All 1,000 requests are read and in flight; the server still answers /health.
  for (int i = 0; i < 1000 && server.in_flight() < kStreams; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server.in_flight(), kStreams);
  http::HttpClient probe("127.0.0.1", server.port());
  auto health = probe.request("GET", "/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  service.resume();

  std::atomic<bool> reading{true};
  std::atomic<int> health_ok{0}, health_bad{0};
  std::thread prober([&] {
    http::HttpClient c("127.0.0.1", server.port());
    do {
      auto h = c.request("GET", "/health");
      (h && h->status == 200 ? health_ok : health_bad).fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (reading.load());
  });
  int open = kStreams;
  std::vector<pollfd> pfds;
  std::vector<size_t> idx;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (open > 0 && std::chrono::steady_clock::now() < deadline) {
    pfds.clear();
    idx.clear();
    for (size_t i = 0; i < conns.size(); ++i) {
      if (conns[i].done) continue;
      pfds.push_back({conns[i].fd, POLLIN, 0});
      idx.push_back(i);
    }
    if (::poll(pfds.data(), pfds.size(), 1000) <= 0) continue;
    for (size_t k = 0; k < pfds.size(); ++k) {
      if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Conn& c = conns[idx[k]];
      ssize_t n;
      while ((n = ::recv(c.fd, buf, sizeof(buf), 0)) > 0) c.in.append(buf, size_t(n));
      // The stream is complete after [DONE] and the last chunk ("0\r\n\r\n").
      if (n == 0 || (c.in.find("data: [DONE]") != std::string::npos && c.in.size() >= 5 &&
                        c.in.compare(c.in.size() - 5, 5, "0\r\n\r\n") == 0)) {
        c.done = true;
        --open;
      }
    }
  }
  reading = false;
  prober.join();
  EXPECT_EQ(open, 0) << "streams still open at the deadline";
  int good = 0, reported = 0;
  for (size_t i = 0; i < conns.size(); ++i) {
    Conn& c = conns[i];
    ::close(c.fd);
    int tokens = 0, usage = -1;
    bool done = false;
    size_t pos = 0;
    while ((pos = c.in.find("data: ", pos)) != std::string::npos) {
      const size_t end = c.in.find('\n', pos);
      const std::string data = c.in.substr(pos + 6, end - pos - 6);
      pos = end;
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      json ch = json::parse(data, nullptr, false);
      if (ch.is_discarded()) continue;
      if (ch.contains("usage")) usage = ch["usage"]["completion_tokens"].get<int>();
      else tokens += int(ch["choices"][0]["token_ids"].size());
    }
    if (c.in.rfind("HTTP/1.1 200", 0) == 0 && done && tokens == kTokens && usage == kTokens) ++good;
    else if (reported++ < 3) ADD_FAILURE() << "stream " << i << ": " << c.in.substr(0, 400);
  }
  EXPECT_EQ(good, kStreams);
  EXPECT_GT(health_ok.load(), 0);
  EXPECT_EQ(health_bad.load(), 0);
  // Everything was released: no request in flight, no KV block in use.
  for (int i = 0; i < 200 && (server.in_flight() > 0 || service.stats().engine.kv_blocks_used > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server.in_flight(), 0);
  EXPECT_EQ(service.stats().engine.kv_blocks_used, 0);
  EXPECT_EQ(service.stats().engine.generated_tokens, int64_t(kStreams) * kTokens);
  server.stop();
  service.stop();
}

}  // namespace
}  // namespace tidal::server
