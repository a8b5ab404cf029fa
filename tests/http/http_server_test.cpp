// HttpServer over loopback: routing, keep-alive, limits, auth, streaming, concurrency, stop.
#include "tidal/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tidal/http/http_client.h"

namespace tidal::http {
namespace {

using namespace std::chrono_literals;

// Sends raw bytes on a fresh connection and returns everything the server sends back until it
// closes (or `timeout`).
std::string raw_exchange(uint16_t port, const std::string& bytes, int timeout_ms = 2000, bool half_close = true) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "connect failed";
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  if (half_close) shutdown(fd, SHUT_WR);  // the server sees EOF instead of waiting for more
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions opts = {}) {
    Router router;
    router.add("GET", "/health", [](HttpRequest&) { return HttpResponse::text(200, "ok"); });
    router.add("POST", "/echo/{id}", [](HttpRequest& r) {
      auto body = r.json();
      if (!body) return HttpResponse::from_status(body.status());
      return HttpResponse::json(200, {{"id", r.param("id")}, {"q", r.query_or("q")}, {"body", *body}});
    });
    router.add("GET", "/remote", [](HttpRequest& r) { return HttpResponse::text(200, r.remote); });
    router.add("GET", "/slow", [this](HttpRequest&) {
      slow_started_.store(true);
      std::this_thread::sleep_for(400ms);
      return HttpResponse::text(200, "slow done");
    });
    router.add("GET", "/events", [](HttpRequest&) {
      return HttpResponse::sse([](StreamWriter& w) {
        for (int i = 0; i < 3; ++i) {
          if (!w.write_event("{\"i\":" + std::to_string(i) + "}", "tick")) return;
        }
        w.write_event("multi\nline");
      });
    });
    router.add("GET", "/async", [](HttpRequest& r) {
      const int n = std::stoi(r.query_or("n", "3"));
      return HttpResponse::async_sse([n](std::shared_ptr<ChunkSink> sink) {
        // A producer on another thread, as the engine thread is for the model server.
        std::thread([sink, n] {
          for (int i = 0; i < n; ++i) sink->write(sse_event("{\"i\":" + std::to_string(i) + "}"));
          sink->end();
        }).detach();
      });
    });
    router.add("GET", "/async_hold", [this](HttpRequest&) {
      return HttpResponse::async_sse([this](std::shared_ptr<ChunkSink> sink) {
        sink->write(sse_event("first"));
        sink->on_close([this] { async_closed_.store(true); });
        std::lock_guard<std::mutex> lock(held_mu_);  // the test thread polls it
        held_sink_ = sink;  // never ended: only the client can close it
      });
    });
    router.add_inline("GET", "/inline", [](HttpRequest&) { return HttpResponse::text(200, "inline"); });
    opts.port = 0;
    server_ = std::make_unique<HttpServer>(std::move(router), opts);
    ASSERT_TRUE(server_->start().is_ok());
    port_ = server_->port();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::atomic<bool> slow_started_{false};
  std::atomic<bool> async_closed_{false};
  std::mutex held_mu_;
  std::shared_ptr<ChunkSink> held_sink_;  // set on a server thread (under held_mu_)
  std::shared_ptr<ChunkSink> held_sink() {
    std::lock_guard<std::mutex> lock(held_mu_);
    return held_sink_;
  }
};

TEST_F(HttpServerTest, AsyncStreamsAndKeepAlive) {
  HttpServerOptions opts;
  opts.worker_threads = 1;
  start(opts);
  HttpClient client("127.0.0.1", port_);
  auto a = client.request("GET", "/async?n=3");
  ASSERT_TRUE(a.has_value()) << a.status().to_string();
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->headers["content-type"], "text/event-stream");
  EXPECT_EQ(a->body, "data: {\"i\":0}\n\ndata: {\"i\":1}\n\ndata: {\"i\":2}\n\n");
  // The same connection serves the next requests (the stream ended cleanly).
  auto r1 = client.request("GET", "/remote");
  auto b = client.request("GET", "/async?n=200");
  auto r2 = client.request("GET", "/remote");
  ASSERT_TRUE(r1 && b && r2);
  EXPECT_EQ(r1->body, r2->body);
  std::string want;
  for (int i = 0; i < 200; ++i) want += "data: {\"i\":" + std::to_string(i) + "}\n\n";
  EXPECT_EQ(b->body, want);
  EXPECT_EQ(client.request("GET", "/inline")->body, "inline");
  // HTTP/1.0: no chunking, the body ends when the server closes. (No half-close: while a stream
  // runs, EOF from the client means it went away.)
  std::string old = raw_exchange(port_, "GET /async?n=2 HTTP/1.0\r\n\r\n", 2000, /*half_close=*/false);
  EXPECT_NE(old.find("Connection: close"), std::string::npos) << old;
  EXPECT_NE(old.find("\r\n\r\ndata: {\"i\":0}\n\ndata: {\"i\":1}\n\n"), std::string::npos) << old;
  EXPECT_EQ(server_->in_flight(), 0);
}

TEST_F(HttpServerTest, AsyncStreamSeesTheClientLeave) {
  start();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string req = "GET /async_hold HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), 0), ssize_t(req.size()));
  char buf[512];
  ASSERT_GT(recv(fd, buf, sizeof(buf), 0), 0);
  // The client has seen the first event, but the handler may not have stored the sink yet.
  std::shared_ptr<ChunkSink> sink;
  for (int i = 0; i < 200 && !(sink = held_sink()); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(sink);
  EXPECT_TRUE(sink->open());
  EXPECT_FALSE(async_closed_.load());
  close(fd);  // no write is pending: the server must notice from the socket alone
  for (int i = 0; i < 300 && !async_closed_.load(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(async_closed_.load());
  EXPECT_FALSE(sink->open());
  EXPECT_FALSE(sink->write("late"));
  for (int i = 0; i < 100 && server_->in_flight() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server_->in_flight(), 0);
  sink.reset();
  std::lock_guard<std::mutex> lock(held_mu_);
  held_sink_.reset();
}

TEST_F(HttpServerTest, JsonRoundTripWithParamsAndQuery) {
  start();
  HttpClient client("127.0.0.1", port_);
  auto r = client.request("POST", "/echo/abc?q=hello%20world", R"({"x":[1,2]})");
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], "application/json");
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["id"], "abc");
  EXPECT_EQ(j["q"], "hello world");
  EXPECT_EQ(j["body"]["x"][1], 2);
}

TEST_F(HttpServerTest, KeepAliveReusesTheConnection) {
  start();
  HttpClient client("127.0.0.1", port_);
  auto a = client.request("GET", "/remote");
  auto b = client.request("GET", "/remote");
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(a->body, b->body);  // same client port: same connection
}

TEST_F(HttpServerTest, ClearErrors) {
  start();
  HttpClient client("127.0.0.1", port_);
  auto bad_json = client.request("POST", "/echo/1", "{not json");
  ASSERT_TRUE(bad_json.has_value());
  EXPECT_EQ(bad_json->status, 400);
  EXPECT_NE(bad_json->body.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(client.request("GET", "/nope")->status, 404);
  EXPECT_EQ(client.request("DELETE", "/health")->status, 405);
  std::string garbage = raw_exchange(port_, "BLAH\r\n\r\n");
  EXPECT_NE(garbage.find("400 Bad Request"), std::string::npos) << garbage;
}

TEST_F(HttpServerTest, BodyLimit) {
  HttpServerOptions opts;
  opts.max_body_bytes = 1024;
  start(opts);
  HttpClient client("127.0.0.1", port_);
  std::string big = "\"" + std::string(4096, 'x') + "\"";
  auto r = client.request("POST", "/echo/1", big);
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("exceeds the limit of 1024 bytes"), std::string::npos);
  // Chunked upload without Content-Length is cut while reading.
  std::string chunked = "POST /echo/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) chunked += "400\r\n" + std::string(1024, 'y') + "\r\n";
  chunked += "0\r\n\r\n";
  EXPECT_NE(raw_exchange(port_, chunked).find("413"), std::string::npos);
  // A small body still works afterwards.
  EXPECT_EQ(client.request("POST", "/echo/1", "{}")->status, 200);
}

TEST_F(HttpServerTest, ExpectContinue) {
  start();
  std::string req =
      "POST /echo/7 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
      "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
  std::string out = raw_exchange(port_, req);
  EXPECT_NE(out.find("HTTP/1.1 100 Continue"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.1 200 OK"), std::string::npos) << out;
}

TEST_F(HttpServerTest, BearerApiKey) {
  HttpServerOptions opts;
  opts.api_key = "s3cret";
  start(opts);
  HttpClient anon("127.0.0.1", port_);
  EXPECT_EQ(anon.request("GET", "/health")->status, 200);  // public path
  auto denied = anon.request("POST", "/echo/1", "{}");
  ASSERT_TRUE(denied.has_value());
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(denied->headers["www-authenticate"], "Bearer");
  HttpClient wrong("127.0.0.1", port_);
  wrong.set_api_key("s3creT");
  EXPECT_EQ(wrong.request("POST", "/echo/1", "{}")->status, 401);
  HttpClient good("127.0.0.1", port_);
  good.set_api_key("s3cret");
  EXPECT_EQ(good.request("POST", "/echo/1", "{}")->status, 200);
}

TEST_F(HttpServerTest, ServerSentEvents) {
  start();
  HttpClient client("127.0.0.1", port_);
  auto r = client.request("GET", "/events");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->headers["content-type"], "text/event-stream");
  EXPECT_EQ(r->headers["transfer-encoding"], "chunked");
  EXPECT_EQ(r->body,
            "event: tick\ndata: {\"i\":0}\n\nevent: tick\ndata: {\"i\":1}\n\n"
            "event: tick\ndata: {\"i\":2}\n\ndata: multi\ndata: line\n\n");
  // The connection stays usable after a stream.
  EXPECT_EQ(client.request("GET", "/health")->status, 200);
}

TEST_F(HttpServerTest, BlockingHandlerDoesNotStallOthers) {
  start();
  auto slow = std::async(std::launch::async, [this] {
    HttpClient c("127.0.0.1", port_);
    return c.request("GET", "/slow");
  });
  while (!slow_started_.load()) std::this_thread::sleep_for(1ms);
  auto t0 = std::chrono::steady_clock::now();
  HttpClient fast("127.0.0.1", port_);
  EXPECT_EQ(fast.request("GET", "/health")->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_EQ(slow.get()->body, "slow done");
}

TEST_F(HttpServerTest, GracefulStopFinishesInFlightRequests) {
  start();
  auto slow = std::async(std::launch::async, [this] {
    HttpClient c("127.0.0.1", port_);
    return c.request("GET", "/slow");
  });
  while (!slow_started_.load()) std::this_thread::sleep_for(1ms);
  HttpClient idle("127.0.0.1", port_);
  ASSERT_EQ(idle.request("GET", "/health")->status, 200);  // an idle keep-alive connection
  server_->stop();
  auto r = slow.get();
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_EQ(server_->in_flight(), 0);
  HttpClient late("127.0.0.1", port_);
  EXPECT_FALSE(late.request("GET", "/health").has_value());
}

// Bounded random input to the request parser: mutated valid requests and raw garbage. The server
// must answer with a 4xx or close, never crash, and keep serving.
TEST_F(HttpServerTest, RandomGarbageNeverBreaksTheServer) {
  HttpServerOptions opts;
  opts.max_body_bytes = 4096;
  opts.idle_timeout = std::chrono::seconds(1);
  start(opts);
  const std::string valid =
      "POST /echo/abc?q=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 9\r\n\r\n{\"a\":[1]}";
  std::mt19937 rng(777);
  for (int i = 0; i < 300; ++i) {
    std::string req = valid;
    int n_mut = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < n_mut; ++k) {
      size_t pos = rng() % req.size();
      switch (rng() % 4) {
        case 0: req[pos] = static_cast<char>(rng() % 256); break;
        case 1: req.erase(pos, 1 + rng() % 4); break;
        case 2: req.insert(pos, std::string(1 + rng() % 3, static_cast<char>(rng() % 256))); break;
        default: req.insert(pos, i % 2 ? "\r\n" : "%"); break;
      }
      if (req.empty()) req = "x";
    }
    std::string out = raw_exchange(port_, req + "\r\n\r\n", 1500);
    if (!out.empty()) {
      EXPECT_EQ(out.rfind("HTTP/1.1 ", 0), 0u) << out.substr(0, 80);
    }
  }
  HttpClient client("127.0.0.1", port_);
  EXPECT_EQ(client.request("GET", "/health")->status, 200);
}

}  // namespace
}  // namespace tidal::http
