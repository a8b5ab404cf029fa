// OpenAiApi: the OpenAI-compatible HTTP endpoints over an EngineService.
//
//   POST /v1/chat/completions   messages rendered with the model's chat template; tools,
//                               tool_choice, chat_template_kwargs (enable_thinking); Qwen3
//                               <tool_call> output parsed into tool_calls; streaming
//   POST /v1/completions        text or token-id prompts (one or a batch), n, streaming (SSE),
//                               logprobs, echo, stop, seed, penalties; RL extensions below
//   GET  /v1/models
//   POST /tokenize, /detokenize
//   GET  /health, /metrics      (Prometheus text)
//   POST /admin/pause, /admin/resume, /admin/flush_cache, /admin/update_weights
//
// RL extensions (request fields): "return_token_ids": true adds "prompt_token_ids" and
// "token_ids" to each choice (no re-tokenization between turns); a prompt may be a list of
// token ids; with return_token_ids each choice also has "token_weight_versions" (per token: a
// generation may span an in_flight "continue" weight update); "detokenize": false skips text.
// Every response carries "weight_version", the model version the request started with.
// Log-probabilities are natural-log, full-vocabulary, of the raw model distribution
// (temperature 1, no penalties); "sampling_logprobs" (extension) gives the distribution sampled from.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "tidal/http/metrics_registry.h"
#include "tidal/http/router.h"
#include "tidal/server/engine_service.h"
#include "tidal/server/openai_request.h"
#include "tidal/tokenizer/chat_template.h"

namespace tidal::server {

struct ApiOptions {
  std::string served_model_name = "tidal";
  std::string model_dir;
  int64_t max_waiting = 1024;  // sequences waiting in the engine above which requests get 429
};

class OpenAiApi {
 public:
  OpenAiApi(EngineService& service, ApiOptions options);
  void register_routes(http::Router& router);
  http::MetricsRegistry& metrics() { return metrics_; }

 private:
  http::HttpResponse completions(http::HttpRequest& req);
  http::HttpResponse chat_completions(http::HttpRequest& req);  // openai_chat.cpp
  http::HttpResponse models(http::HttpRequest& req);
  http::HttpResponse tokenize(http::HttpRequest& req);
  http::HttpResponse detokenize(http::HttpRequest& req);
  http::HttpResponse admin_pause(http::HttpRequest& req);
  http::HttpResponse admin_update_weights(http::HttpRequest& req);
  RequestContext request_context() const;
  // 429 with Retry-After when the engine's waiting queue is over the bound; nullopt otherwise.
  std::optional<http::HttpResponse> overloaded();

  EngineService& service_;
  ApiOptions options_;
  std::optional<ChatTemplate> chat_template_;  // from the model folder, when it has one
  Status chat_template_status_;
  http::MetricsRegistry metrics_;
  http::Counter *prompt_tokens_, *generation_tokens_, *requests_ok_, *requests_aborted_, *requests_error_;
  http::Histogram *ttft_, *itl_, *e2e_;
};

}  // namespace tidal::server
