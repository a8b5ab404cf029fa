// libFuzzer target: OpenAI request parsing and validation (server/openai_request.h) must turn any
// bytes into a parsed request or an ApiError, never crash or hang. The same input is parsed both
// as a /v1/completions body and as a /v1/chat/completions body, against a synthetic 600-token
// vocabulary and a 64-token context. Invariants checked on success: prompts are non-empty, their
// ids are in the vocabulary and shorter than the context; the sampling parameters pass
// SamplingParams::validate; a parsed chat renders with the ChatML template or fails with a Status.
// On failure: the status is 4xx/5xx and the error response is a JSON object.
// Seeds: fuzz/corpus/openai_request.
// Run: build/fuzz/fuzz/fuzz_openai_request -max_total_time=60 -timeout=5 fuzz/corpus/openai_request
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tidal/server/openai_request.h"
#include "tidal/tokenizer/chat_template.h"
#include "tidal/tokenizer/synthetic.h"

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_openai_request: %s\n", what);
  std::abort();
}

struct Fixture {
  tidal::Tokenizer tok;
  tidal::ChatTemplate tmpl;
  tidal::server::RequestContext ctx;
};

const Fixture& fixture() {
  static const Fixture* f = [] {
    auto tok = tidal::Tokenizer::from_json_text(tidal::make_synthetic_tokenizer_json(600));
    if (!tok) die("synthetic tokenizer does not load");
    auto cfg = nlohmann::json::parse(tidal::make_synthetic_tokenizer_config_json());
    auto tmpl = tidal::ChatTemplate::parse(cfg["chat_template"].get<std::string>());
    if (!tmpl) die("synthetic chat template does not parse");
    auto* fx = new Fixture{std::move(tok).value(), std::move(tmpl).value(), {}};
    fx->ctx = {"m", &fx->tok, 600, 64};
    return fx;
  }();
  return *f;
}

void check_error(const tidal::server::ApiError& e) {
  if (e.status < 400 || e.status > 599) die("error status outside 4xx/5xx");
  if (e.message.empty()) die("error without a message");
  auto body = nlohmann::json::parse(e.response().body, nullptr, false);
  if (!body.is_object() || !body["error"].is_object()) die("error response is not an error object");
}

void check_prompt(const std::vector<int32_t>& p, const tidal::server::RequestContext& ctx) {
  if (p.empty() || int64_t(p.size()) >= ctx.max_model_len) die("prompt length not validated");
  for (int32_t id : p) {
    if (id < 0 || id >= ctx.vocab_size) die("prompt id not validated");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixture& fx = fixture();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto c = tidal::server::parse_completion_request(body, fx.ctx);
  if (auto* e = std::get_if<tidal::server::ApiError>(&c)) {
    check_error(*e);
  } else {
    const auto& r = std::get<tidal::server::CompletionRequest>(c);
    if (r.prompts.empty() || r.prompts.size() != r.prompt_texts.size()) die("completion prompts inconsistent");
    for (const auto& p : r.prompts) check_prompt(p, fx.ctx);
    if (!r.params.validate(fx.ctx.vocab_size).is_ok()) die("completion params not validated");
  }
  auto ch = tidal::server::parse_chat_request(body, fx.ctx);
  if (auto* e = std::get_if<tidal::server::ApiError>(&ch)) {
    check_error(*e);
  } else {
    const auto& r = std::get<tidal::server::ChatRequest>(ch);
    if (!r.messages.is_array() || r.messages.empty()) die("chat messages not validated");
    if (!r.params.validate(fx.ctx.vocab_size).is_ok()) die("chat params not validated");
    tidal::ChatTemplateInputs in;
    in.messages = r.messages;
    in.tools = r.tools;
    in.extra = r.template_kwargs;
    in.add_generation_prompt = r.add_generation_prompt;
    auto text = fx.tmpl.render(in);
    if (text) {
      auto ids = fx.tok.encode(*text, false);
      if (auto err = tidal::server::check_prompt(ids, fx.ctx, "messages")) check_error(*err);
    }
  }
  return 0;
}
