// Helpers shared by the OpenAI endpoint files (openai_api.cpp, openai_chat.cpp). Internal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/engine/sampling_params.h"
#include "tidal/engine/sequence.h"
#include "tidal/http/http_response.h"
#include "tidal/tokenizer/tokenizer.h"

namespace tidal::server::detail {

std::string new_id(const char* prefix);       // "cmpl-<hex>", unique per process
int64_t unix_now();
// Reads the sampling fields of a completions (chat = false) or chat completions request;
// errors name the field.
Status parse_sampling(const nlohmann::json& body, SamplingParams* params, bool chat);
std::string token_text(const Tokenizer* tok, int32_t id);
http::HttpResponse status_response(const Status& st);

}  // namespace tidal::server::detail
