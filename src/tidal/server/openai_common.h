// Helpers shared by the OpenAI endpoint files (openai_api.cpp, openai_chat.cpp). Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/engine/sampling_params.h"
#include "tidal/engine/engine.h"
#include "tidal/engine/sequence.h"
#include "tidal/http/metrics_registry.h"
#include "tidal/http/http_response.h"
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

std::string new_id(const char* prefix);       // "cmpl-<hex>", unique per process
int64_t unix_now();
// Reads the sampling fields of a completions (chat = false) or chat completions request;
// errors name the field.
Status parse_sampling(const nlohmann::json& body, SamplingParams* params, bool chat);
std::string token_text(const Tokenizer* tok, int32_t id);
http::HttpResponse status_response(const Status& st);

}  // namespace tidal::server::detail
