// The OpenAI-compatible server over loopback: results equal the engine's, streaming equals
// non-streaming, errors are clear 4xx, a disconnecting client's request is aborted and its KV
// blocks freed, weight updates bump the version and change the outputs, pause/resume.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
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

std::string make_model(const std::string& name, uint64_t seed) {
  const auto d = std::filesystem::temp_directory_path() / ("tidal_server_test_" + name);
  RandomModelSpec s;
  s.family = "qwen3";
  s.n_layers = 2;
  s.hidden = 64;
  s.intermediate = 128;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.vocab = 600;
  s.max_position = 512;
  s.seed = seed;
  EXPECT_TRUE(write_random_model(s, d.string(), true).is_ok());
  return d.string();
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_model("a", 1);
    EngineConfig ec;
    ec.model_dir = dir_;
    ec.n_threads = 2;
    ec.kv_cache_bytes = 16ull << 20;
    ec.block_size = 8;
    auto e = Engine::create(ec);
    ASSERT_TRUE(e) << e.status().to_string();
    service_ = std::make_unique<EngineService>(std::move(e).value());
    api_ = std::make_unique<OpenAiApi>(*service_, ApiOptions{"test-model", dir_});
    http::Router router;
    api_->register_routes(router);
    http::HttpServerOptions ho;
    ho.port = 0;
    ho.worker_threads = 16;
    ho.api_key = "sekret";
    server_ = std::make_unique<http::HttpServer>(std::move(router), ho);
    ASSERT_TRUE(server_->start().is_ok());
    client_ = std::make_unique<http::HttpClient>("127.0.0.1", server_->port());
    client_->set_api_key("sekret");
  }
  void TearDown() override {
    server_->stop();
    service_->stop();
  }
  json post(const std::string& path, const json& body, int expect = 200) {
    auto r = client_->request("POST", path, body.dump(), {{"Content-Type", "application/json"}});
    EXPECT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(r->status, expect) << r->body;
    if (r->headers.count("content-type") && r->headers.at("content-type").find("event-stream") != std::string::npos) {
      return json(r->body);
    }
    return json::parse(r->body, nullptr, false);
  }
  int64_t metric(const std::string& name) {
    auto r = client_->request("GET", "/metrics");
    const std::string& b = r->body;
    size_t at = b.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return int64_t(std::stod(b.substr(at + name.size() + 2)));
  }

  int connect_raw() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }
  // Sends `request` on a fresh connection and returns everything read until the server closes.
  std::string raw_exchange(const std::string& request) {
    int fd = connect_raw();
    EXPECT_EQ(::send(fd, request.data(), request.size(), 0), ssize_t(request.size()));
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, size_t(n));
    ::close(fd);
    return out;
  }

  std::string dir_;
  std::unique_ptr<EngineService> service_;
  std::unique_ptr<OpenAiApi> api_;
  std::unique_ptr<http::HttpServer> server_;
  std::unique_ptr<http::HttpClient> client_;
};

TEST_F(ServerTest, CompletionMatchesTheEngineAndStreamingMatchesWhole) {
  json req = {{"model", "test-model"}, {"prompt", {5, 6, 7, 8}}, {"max_tokens", 9}, {"temperature", 0.8},
              {"seed", 11}, {"logprobs", 2}, {"return_token_ids", true}, {"ignore_eos", true}};
  json r = post("/v1/completions", req);
  ASSERT_TRUE(r.is_object());
  const auto& c = r["choices"][0];
  ASSERT_EQ(c["token_ids"].size(), 9u);
  EXPECT_EQ(c["prompt_token_ids"], json({5, 6, 7, 8}));
  EXPECT_EQ(r["usage"]["completion_tokens"], 9);
  EXPECT_EQ(r["weight_version"], 0);
  // The same request straight on an engine gives the same tokens and logprobs.
  EngineConfig ec;
  ec.model_dir = dir_;
  ec.kv_cache_bytes = 16ull << 20;
  auto e = std::move(Engine::create(ec)).value();
  SamplingParams p;
  p.max_tokens = 9;
  p.temperature = 0.8;
  p.seed = 11;
  p.ignore_eos = true;
  e->add_request({5, 6, 7, 8}, p).value();
  std::vector<int32_t> ids;
  std::vector<float> lps;
  while (e->has_unfinished()) {
    for (auto& o : e->step()) {
      ids.insert(ids.end(), o.token_ids.begin(), o.token_ids.end());
      for (auto& lp : o.logprobs) lps.push_back(lp.logprob);
    }
  }
  EXPECT_EQ(c["token_ids"].get<std::vector<int32_t>>(), ids);
  for (size_t i = 0; i < lps.size(); ++i) EXPECT_FLOAT_EQ(c["logprobs"]["token_logprobs"][i].get<float>(), lps[i]);
  // Streaming: the deltas join to the same text, then a usage chunk and [DONE].
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  std::string sse = post("/v1/completions", req).get<std::string>();
  std::string joined;
  std::vector<int32_t> sids;
  bool usage = false, done = false;
  size_t pos = 0;
  while ((pos = sse.find("data: ", pos)) != std::string::npos) {
    const size_t end = sse.find('\n', pos);
    const std::string data = sse.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") { done = true; continue; }
    json ch = json::parse(data);
    if (ch.contains("usage")) { usage = true; EXPECT_EQ(ch["usage"]["completion_tokens"], 9); continue; }
    joined += ch["choices"][0]["text"].get<std::string>();
    for (auto& t : ch["choices"][0]["token_ids"]) sids.push_back(t.get<int32_t>());
  }
  EXPECT_TRUE(usage);
  EXPECT_TRUE(done);
  EXPECT_EQ(joined, c["text"].get<std::string>());
  EXPECT_EQ(sids, ids);
}

TEST_F(ServerTest, ChatBatchAndParallelSamples) {
  json r = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hello"}}}}, {"max_tokens", 5},
                                         {"n", 3}, {"temperature", 1.0}, {"seed", 3}, {"logprobs", true}, {"top_logprobs", 2}});
  ASSERT_EQ(r["choices"].size(), 3u);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 2u);
  json b = post("/v1/completions", {{"prompt", {"one", "two"}}, {"max_tokens", 3}, {"n", 2}});
  EXPECT_EQ(b["choices"].size(), 4u);
  json echo = post("/v1/completions", {{"prompt", {4, 5, 6, 7}}, {"max_tokens", 2}, {"echo", true}, {"logprobs", 1}});
  const json& elp = echo["choices"][0]["logprobs"];
  ASSERT_EQ(elp["token_logprobs"].size(), 6u);  // 4 prompt + 2 generated
  EXPECT_TRUE(elp["token_logprobs"][0].is_null());
  EXPECT_LT(elp["token_logprobs"][1].get<double>(), 0.0);
  json t = post("/tokenize", {{"prompt", "round trip ✓"}});
  json d = post("/detokenize", {{"tokens", t["tokens"]}});
  EXPECT_EQ(d["prompt"], "round trip ✓");
}

TEST_F(ServerTest, ErrorsAreClearAndNameTheField) {
  json e = post("/v1/completions", {{"prompt", "x"}, {"temperature", -1}}, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("temperature"), std::string::npos);
  EXPECT_EQ(e["error"]["param"], "temperature");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["code"], 400);
  e = post("/v1/completions", {{"prompt", "x"}, {"top_p", "high"}}, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("'top_p' must be a number"), std::string::npos);
  EXPECT_EQ(post("/v1/completions", {{"model", "other"}, {"prompt", "x"}}, 404)["error"]["param"], "model");
  EXPECT_EQ(post("/v1/completions", {{"max_tokens", 3}}, 400)["error"]["param"], "prompt");
  EXPECT_EQ(post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 0}}, 400)["error"]["param"], "max_tokens");
  EXPECT_EQ(post("/v1/completions", {{"prompt", "x"}, {"stream", "yes"}}, 400)["error"]["param"], "stream");
  std::vector<int32_t> too_long(600, 1);
  e = post("/v1/completions", {{"prompt", too_long}}, 400);
  EXPECT_NE(e["error"]["message"].get<std::string>().find("context"), std::string::npos);
  EXPECT_EQ(e["error"]["param"], "prompt");
  post("/v1/chat/completions", {{"messages", json::array()}}, 400);
  e = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}, {{"role", "user"}, {"content", 3}}}}}, 400);
  EXPECT_EQ(e["error"]["param"], "messages[1].content");
  e = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_completion_tokens", -1}}, 400);
  EXPECT_EQ(e["error"]["param"], "max_completion_tokens");
  e = post("/detokenize", {{"tokens", {1, 2, 9999}}}, 400);
  EXPECT_EQ(e["error"]["param"], "tokens[2]");
  auto bad = client_->request("POST", "/v1/completions", "{not json", {});
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(json::parse(bad->body)["error"]["param"].is_null());
  http::HttpClient anon("127.0.0.1", server_->port());
  auto unauth = anon.request("GET", "/v1/models");
  EXPECT_EQ(unauth->status, 401);
  EXPECT_EQ(json::parse(unauth->body)["error"]["type"], "authentication_error");
  EXPECT_EQ(anon.request("GET", "/health")->status, 200);
  // A body over the limit (announced by Content-Length): 413 with the same error shape.
  const std::string head = raw_exchange(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\nContent-Length: 99999999\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 413", 0), 0u) << head;
  EXPECT_NE(head.find("\"code\":413"), std::string::npos) << head;
}

TEST_F(ServerTest, OverloadAnswers429WithRetryAfter) {
  OpenAiApi strict(*service_, ApiOptions{"test-model", dir_, /*max_waiting=*/0});
  http::Router router;
  strict.register_routes(router);
  http::HttpServerOptions ho;
  ho.port = 0;
  http::HttpServer s(std::move(router), ho);
  ASSERT_TRUE(s.start().is_ok());
  http::HttpClient c("127.0.0.1", s.port());
  auto r = c.request("POST", "/v1/completions", json({{"prompt", {1, 2}}, {"max_tokens", 2}}).dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->headers["retry-after"], "1");
  s.stop();
}

TEST_F(ServerTest, DisconnectAbortsAndFreesBlocks) {
  // A raw socket: send a streaming request, read the first bytes, then close. On a fast machine the
  // whole generation can end before the close is noticed; then the attempt is repeated.
  const std::string body = json({{"prompt", {1, 2, 3}}, {"max_tokens", 400}, {"stream", true}, {"ignore_eos", true}}).dump();
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
                          "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  bool aborted = false;
  for (int attempt = 0; attempt < 5 && !aborted; ++attempt) {
    const int64_t base = service_->stats().engine.generated_tokens;
    int fd = connect_raw();
    ASSERT_EQ(::send(fd, req.data(), req.size(), 0), ssize_t(req.size()));
    char buf[512];
    ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);
    ::close(fd);
    // Within a short time the request is aborted and every KV block is free again.
    bool freed = false;
    for (int i = 0; i < 200 && !freed; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      auto st = service_->stats();
      freed = st.engine.kv_blocks_used == 0 && st.engine.n_running == 0 && server_->in_flight() == 0;
    }
    ASSERT_TRUE(freed);
    aborted = service_->stats().engine.generated_tokens - base < 400;
  }
  EXPECT_TRUE(aborted) << "every attempt finished before the disconnect was noticed";
  // The metrics say the same: one aborted request, no KV in use, nothing running.
  EXPECT_EQ(metric("tidal_requests_total{outcome=\"aborted\"}"), 1);
  EXPECT_EQ(metric("tidal_kv_cache_usage_ratio"), 0);
  EXPECT_EQ(metric("tidal_requests_running"), 0);
}

TEST_F(ServerTest, DisconnectIsNoticedWithoutAWrite) {
  // Start a long stream, then freeze the engine so that nothing more is written. Closing the
  // socket must still abort the request (the server watches the socket while streaming) and free
  // its KV blocks, even while the engine stays frozen.
  int fd = connect_raw();
  const std::string body = json({{"prompt", {1, 2, 3}}, {"max_tokens", 400}, {"stream", true}, {"ignore_eos", true}}).dump();
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), ssize_t(req.size()));
  // Read until the first token event: the request has been scheduled and holds KV blocks.
  std::string got;
  char buf[256];
  while (got.find("data: ") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, size_t(n));
  }
  ASSERT_TRUE(service_->pause(EngineService::PauseMode::kKeep).is_ok());
  ASSERT_GT(service_->stats().engine.kv_blocks_used, 0);
  ::close(fd);
  for (int i = 0; i < 300 && (server_->in_flight() > 0 || service_->stats().engine.kv_blocks_used > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_->in_flight(), 0);
  EXPECT_EQ(service_->stats().engine.kv_blocks_used, 0);
  EXPECT_EQ(service_->stats().engine.n_running + service_->stats().engine.n_waiting, 0);
  EXPECT_TRUE(service_->paused());
  service_->resume();
}

TEST_F(ServerTest, HealthMetricsAndResumeAnswerWhileEveryWorkerIsBlocked) {
  // Paused: requests wait in submit() and hold their worker threads (16 here). Health, metrics and
  // resume run on the I/O thread, so the server stays observable and can be resumed.
  ASSERT_TRUE(service_->pause(EngineService::PauseMode::kKeep).is_ok());
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 24; ++i) {
    clients.emplace_back([&, i] {
      http::HttpClient c("127.0.0.1", server_->port());
      c.set_api_key("sekret");
      auto r = c.request("POST", "/v1/completions", json({{"prompt", {1 + i, 2}}, {"max_tokens", 2}}).dump());
      if (r && r->status == 200) ok.fetch_add(1);
    });
  }
  for (int i = 0; i < 500 && server_->in_flight() < 24; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server_->in_flight(), 24);
  EXPECT_EQ(client_->request("GET", "/health")->status, 200);
  EXPECT_EQ(client_->request("GET", "/metrics")->status, 200);
  EXPECT_EQ(metric("tidal_paused"), 1);
  post("/admin/resume", json::object());
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 24);
}

TEST_F(ServerTest, StopDrainsInFlightStreams) {
  // SIGTERM in `tidal serve` calls HttpServer::stop(grace): no new connections, in-flight streams
  // run to the end. Freeze the engine so the stream is certainly in flight when stop begins.
  ASSERT_TRUE(service_->pause(EngineService::PauseMode::kKeep).is_ok());
  std::string sse;
  std::thread reader([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    c.set_api_key("sekret");
    auto r = c.request("POST", "/v1/completions",
                       json({{"prompt", {4, 5}}, {"max_tokens", 20}, {"ignore_eos", true}, {"stream", true},
                             {"stream_options", {{"include_usage", true}}}})
                           .dump());
    ASSERT_TRUE(r) << r.status().to_string();
    sse = r->body;
  });
  for (int i = 0; i < 500 && server_->in_flight() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(server_->in_flight(), 1);
  std::thread stopper([&] { server_->stop(std::chrono::seconds(30)); });
  // Stopping: the listener is closed, so a new connection is refused.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    http::HttpClient c("127.0.0.1", server_->port());
    refused = !c.request("GET", "/health");
  }
  EXPECT_TRUE(refused);
  service_->resume();
  reader.join();
  stopper.join();
  EXPECT_NE(sse.find("\"completion_tokens\":20"), std::string::npos) << sse;
  EXPECT_NE(sse.find("data: [DONE]"), std::string::npos);
}

TEST_F(ServerTest, UpdateWeightsBumpsVersionAndChangesOutputs) {
  json req = {{"prompt", {9, 8, 7}}, {"max_tokens", 6}, {"temperature", 0}, {"return_token_ids", true}, {"ignore_eos", true}};
  json before = post("/v1/completions", req);
  post("/admin/update_weights", {{"path", "/nonexistent/x.safetensors"}}, 404);
  EXPECT_EQ(post("/v1/completions", req)["weight_version"], 0);
  const std::string other = make_model("b", 2);
  json up = post("/admin/update_weights", {{"path", other + "/model.safetensors"}});
  EXPECT_EQ(up["weight_version"], 1);
  json after = post("/v1/completions", req);
  EXPECT_EQ(after["weight_version"], 1);
  EXPECT_NE(after["choices"][0]["token_ids"], before["choices"][0]["token_ids"]);
  // A trainer names the version (its step); a bad one changes nothing.
  post("/admin/update_weights", {{"path", other + "/model.safetensors"}, {"weight_version", -3}}, 400);
  EXPECT_EQ(post("/admin/update_weights", {{"path", other + "/model.safetensors"}, {"weight_version", 42}})["weight_version"], 42);
  EXPECT_EQ(post("/v1/completions", req)["weight_version"], 42);
  // Pause (keep): a request waits; resume lets it finish.
  post("/admin/pause", {{"mode", "keep"}});
  const int64_t paused_at = service_->stats().engine.generated_tokens;
  std::thread t([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    c.set_api_key("sekret");
    auto r = c.request("POST", "/v1/completions", req.dump());
    EXPECT_EQ(r->status, 200);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(service_->stats().engine.generated_tokens, paused_at);  // nothing ran while paused
  EXPECT_TRUE(service_->paused());
  post("/admin/resume", json::object());
  t.join();
  EXPECT_GT(metric("tidal_generation_tokens_total"), 0);
}

TEST_F(ServerTest, UpdateWeightsContinueSwapsBetweenStepsAndTagsEachToken) {
  // Partial rollouts: in_flight "continue" swaps the weights between two engine steps; a
  // generation in flight goes on with the new weights and token_weight_versions says which
  // version produced each token. Freeze the engine mid-generation so the split point is known.
  const std::string other = make_model("c", 3);
  // Long enough (the model's context is 512) that the split point lands inside the generation
  // even when this thread is descheduled for a while: the tiny model decodes a token in well
  // under a millisecond on a quiet machine.
  constexpr int64_t kTokens = 400;
  const json req = {{"prompt", {3, 4, 5}}, {"max_tokens", kTokens}, {"ignore_eos", true}, {"temperature", 0},
                    {"return_token_ids", true}, {"return_logprobs", true}, {"detokenize", false}};
  json res;
  std::thread t;
  int64_t before = 0;
  // The pause must land mid-generation; if the generation ended first (a fast machine, or this
  // thread descheduled), the attempt is collected and repeated.
  for (int attempt = 0; attempt < 10; ++attempt) {
    const int64_t base = service_->stats().engine.generated_tokens;
    t = std::thread([&] {
      http::HttpClient c("127.0.0.1", server_->port());
      c.set_api_key("sekret");
      auto r = c.request("POST", "/v1/completions", req.dump());
      ASSERT_TRUE(r && r->status == 200);
      res = json::parse(r->body);
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (service_->stats().engine.generated_tokens < base + 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    const bool paused = service_->pause(EngineService::PauseMode::kKeep).is_ok();
    before = service_->stats().engine.generated_tokens - base;
    if (paused && before >= 2 && before < kTokens) break;
    service_->resume();  // join before trying again (or failing): no thread left running
    t.join();
    ASSERT_LT(attempt, 9) << "could not pause mid-generation (paused " << paused << ", " << before << " tokens)";
  }
  post("/admin/update_weights", {{"path", other + "/model.safetensors"}, {"in_flight", "bogus"}}, 400);
  json up = post("/admin/update_weights", {{"path", other + "/model.safetensors"}, {"weight_version", 5}, {"in_flight", "continue"}});
  EXPECT_EQ(up["weight_version"], 5);
  EXPECT_EQ(up["in_flight"], "continue");
  EXPECT_TRUE(service_->paused());  // "continue" leaves the pause state alone
  service_->resume();
  t.join();
  const json& c = res["choices"][0];
  ASSERT_EQ(c["token_ids"].size(), size_t(kTokens));
  ASSERT_EQ(c["token_weight_versions"].size(), size_t(kTokens));
  ASSERT_EQ(c["logprobs"]["token_logprobs"].size(), size_t(kTokens));
  EXPECT_EQ(c["text"], "");  // detokenize: false
  EXPECT_EQ(res["weight_version"], 0);  // the version it started with
  for (int64_t i = 0; i < kTokens; ++i) EXPECT_EQ(c["token_weight_versions"][i], i < before ? 0 : 5) << i;
  EXPECT_EQ(post("/v1/completions", req)["choices"][0]["token_weight_versions"][0], 5);
}

}  // namespace
}  // namespace tidal::server
