// Parsing and validation of OpenAI completion and chat-completion request bodies, apart from the
// HTTP handlers (so the fuzzer and tests can drive it without a server or an engine).
//
//   RequestContext ctx{"my-model", tokenizer, vocab_size, max_model_len};
//   ApiResult<CompletionRequest> r = parse_completion_request(body_text, ctx);
//   if (auto* e = std::get_if<ApiError>(&r)) return e->response();   // 4xx, OpenAI error object
//
// Every failure is an ApiError whose `param` names the offending field the way OpenAI does
// ("temperature", "messages[1].content", "prompt[0][3]", "tools[0].function.name"), and whose
// message says what was expected and what came. The checks cover JSON types, integer ranges, the
// sampling ranges of SamplingParams::validate, token ids against the vocabulary, and prompt length
// against the context, so a request that parses is one the engine accepts (except for KV-cache
// capacity, which only the engine knows). Unknown fields are ignored, as OpenAI-compatible servers
// commonly do (e.g. llama.cpp's "cache_prompt").
//
// Thread-safety: the functions are pure; the tokenizer is only read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/engine/sampling_params.h"
#include "tidal/http/http_response.h"
#include "tidal/tokenizer/tokenizer.h"

namespace tidal::server {

// One OpenAI-style error: {"error": {"message", "type", "param", "code"}} with HTTP `status`.
struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the field at fault; empty -> null
  std::string type;   // empty -> derived from the status (400 invalid_request_error, ...)
  http::HttpResponse response() const { return http::HttpResponse::error(status, message, type, param); }
};

template <class T>
using ApiResult = std::variant<T, ApiError>;

// Bound on prompts x n in one completions request (each becomes an engine sequence).
inline constexpr int64_t kMaxSequencesPerRequest = 4096;

struct RequestContext {
  std::string served_model_name;         // "model" must equal it when present (else 404)
  const Tokenizer* tokenizer = nullptr;  // null: text prompts and chat are refused
  int64_t vocab_size = 0;
  int64_t max_model_len = 0;  // prompt tokens must be < this
};

struct CompletionRequest {
  std::vector<std::vector<int32_t>> prompts;  // one per prompt of a batch
  std::vector<std::string> prompt_texts;      // the text of each (decoded for token-id prompts)
  SamplingParams params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;
  bool return_token_ids = false;
  bool want_logprobs = false;  // a "logprobs" object per choice
};

struct ChatRequest {
  nlohmann::ordered_json messages;  // validated; text content parts joined into one string
  std::optional<nlohmann::ordered_json> tools;  // set when tools are given and tool_choice != "none"
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
  bool add_generation_prompt = true;
  SamplingParams params;
  bool max_tokens_given = false;  // else the handler allows the rest of the context
  bool stream = false;
  bool include_usage = false;
  bool want_logprobs = false;
  bool return_token_ids = false;
};

ApiResult<CompletionRequest> parse_completion_request(std::string_view body, const RequestContext& ctx);
ApiResult<ChatRequest> parse_chat_request(std::string_view body, const RequestContext& ctx);

// Checks a tokenized prompt (token ids in the vocabulary, non-empty, shorter than the context);
// the error names `param` ("messages" for a rendered chat, "prompt" ...).
std::optional<ApiError> check_prompt(const std::vector<int32_t>& prompt, const RequestContext& ctx,
                                     const std::string& param);

// Maps an engine/service Status (e.g. from EngineService::submit) to an ApiError: the sampling
// parameter the engine names becomes `param`; prompt problems get `prompt_param`; a prompt that
// cannot fit the KV cache is a 400; a shutting-down server a 503.
ApiError api_error_from_status(const Status& st, const std::string& prompt_param);

}  // namespace tidal::server
