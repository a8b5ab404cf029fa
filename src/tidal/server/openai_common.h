// Helpers shared by the OpenAI endpoint files (openai_api.cpp, openai_chat.cpp). Internal.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/engine/sampling_params.h"
#include "tidal/engine/engine.h"
#include "tidal/engine/sequence.h"
#include "tidal/http/metrics_registry.h"
#include "tidal/http/http_response.h"
#include "tidal/server/engine_service.h"
#include "tidal/tokenizer/tokenizer.h"

namespace tidal::server::detail {

// Records time-to-first-token and inter-token latency of one request's outputs.
class LatencyRecorder {
 public:
  LatencyRecorder(http::Histogram* ttft, http::Histogram* itl, std::chrono::steady_clock::time_point start)
      : ttft_(ttft), itl_(itl), start_(start) {}
  void on_output(const RequestOutput& o);

 private:
  http::Histogram *ttft_, *itl_;
  std::chrono::steady_clock::time_point start_, last_;
  bool first_ = true;
};

// {"prompt_tokens", "completion_tokens", "total_tokens"}
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// Drives one streaming response from engine outputs without holding a thread. The engine thread
// wakes it through RequestStream listeners; run() executes on the connection's I/O strand (via
// ChunkSink::post), drains the request streams, formats events with the handlers and queues them
// on the sink. A client that disconnects aborts every request of the response (ChunkSink::on_close),
// so their KV blocks are freed before the next engine step.
class StreamPump : public std::enable_shared_from_this<StreamPump> {
 public:
  struct Handlers {
    std::function<std::string()> start;                    // events before any output
    std::function<std::string(RequestOutput&)> on_output;  // events for one output
    std::function<std::string()> finish;                   // after the last output
    std::function<void()> aborted;  // once per request aborted because the stream was cut
  };
  StreamPump(EngineService& service, std::vector<std::shared_ptr<RequestStream>> streams,
             std::shared_ptr<http::ChunkSink> sink, Handlers handlers)
      : service_(service), streams_(std::move(streams)), sink_(std::move(sink)), h_(std::move(handlers)) {}
  // Call once, right after construction (needs shared_from_this).
  void start();

 private:
  void notify();
  void run();
  void abort_all();

  EngineService& service_;
  std::vector<std::shared_ptr<RequestStream>> streams_;
  std::shared_ptr<http::ChunkSink> sink_;
  Handlers h_;
  std::atomic<bool> scheduled_{false};
  bool started_ = false, done_ = false;  // strand only
  std::vector<RequestOutput> outs_;
};

std::string new_id(const char* prefix);       // "cmpl-<hex>", unique per process
int64_t unix_now();
std::string token_text(const Tokenizer* tok, int32_t id);
http::HttpResponse status_response(const Status& st);

}  // namespace tidal::server::detail
