// Request parsing and validation: every bad field is a 4xx ApiError whose `param` names it the
// way OpenAI does, and good requests parse into the engine's SamplingParams.
#include <gtest/gtest.h>

#include "tidal/server/openai_request.h"
#include "tidal/tokenizer/synthetic.h"

namespace tidal::server {
namespace {

using json = nlohmann::json;

class OpenAiRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = Tokenizer::from_json_text(make_synthetic_tokenizer_json(600));
    ASSERT_TRUE(t) << t.status().to_string();
    tok_.emplace(std::move(t).value());
    ctx_ = {"m", &*tok_, 600, 64};
  }
  // The error of a completions request (fails the test when it parses).
  ApiError completion_error(const json& body) {
    auto r = parse_completion_request(body.dump(), ctx_);
    EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body.dump();
    return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
  }
  ApiError chat_error(const json& body) {
    auto r = parse_chat_request(body.dump(), ctx_);
    EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body.dump();
    return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
  }
  std::optional<Tokenizer> tok_;
  RequestContext ctx_;
};

TEST_F(OpenAiRequestTest, CompletionFieldsParse) {
  auto r = parse_completion_request(
      json({{"model", "m"}, {"prompt", {{1, 2, 3}, {4, 5}}}, {"max_tokens", 7}, {"temperature", 0.5}, {"top_p", 0.9},
            {"top_k", 5}, {"n", 2}, {"seed", 42}, {"stop", "x"}, {"stop_token_ids", {7}}, {"logprobs", 3},
            {"stream", true}, {"stream_options", {{"include_usage", true}}}, {"return_token_ids", true},
            {"cache_prompt", false}})
          .dump(),
      ctx_);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r)) << std::get<ApiError>(r).message;
  const auto& c = std::get<CompletionRequest>(r);
  ASSERT_EQ(c.prompts.size(), 2u);
  EXPECT_EQ(c.prompts[1], (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(c.params.max_tokens, 7);
  EXPECT_EQ(c.params.n, 2);
  EXPECT_EQ(c.params.seed, 42u);
  EXPECT_EQ(c.params.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(c.params.logprobs, 3);
  EXPECT_TRUE(c.stream && c.include_usage && c.return_token_ids && c.want_logprobs);
  auto text = parse_completion_request(R"({"prompt": "hello"})", ctx_);
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(text));
  EXPECT_EQ(std::get<CompletionRequest>(text).prompts[0], tok_->encode("hello"));
}

TEST_F(OpenAiRequestTest, CompletionErrorsNameTheField) {
  struct Case {
    json body;
    std::string param;
    int status = 400;
  };
  const std::vector<Case> cases = {
      {{{"prompt", "x"}, {"temperature", -1}}, "temperature"},
      {{{"prompt", "x"}, {"temperature", "hot"}}, "temperature"},
      {{{"prompt", "x"}, {"top_p", 0}}, "top_p"},
      {{{"prompt", "x"}, {"max_tokens", 0}}, "max_tokens"},
      {{{"prompt", "x"}, {"max_tokens", 1.5}}, "max_tokens"},
      {{{"prompt", "x"}, {"max_tokens", 1e12}}, "max_tokens"},
      {{{"prompt", "x"}, {"max_completion_tokens", -3}}, "max_completion_tokens"},
      {{{"prompt", "x"}, {"n", 0}}, "n"},
      {{{"prompt", "x"}, {"top_k", -2}}, "top_k"},
      {{{"prompt", "x"}, {"min_p", 2}}, "min_p"},
      {{{"prompt", "x"}, {"presence_penalty", 3}}, "presence_penalty"},
      {{{"prompt", "x"}, {"repetition_penalty", 0}}, "repetition_penalty"},
      {{{"prompt", "x"}, {"logprobs", 21}}, "logprobs"},
      {{{"prompt", "x"}, {"seed", "abc"}}, "seed"},
      {{{"prompt", "x"}, {"stop", {"a", 3}}}, "stop[1]"},
      {{{"prompt", "x"}, {"stop", ""}}, "stop"},
      {{{"prompt", "x"}, {"stop_token_ids", {1, 600}}}, "stop_token_ids[1]"},
      {{{"prompt", "x"}, {"stream", "yes"}}, "stream"},
      {{{"prompt", "x"}, {"stream_options", {{"include_usage", 1}}}}, "stream_options.include_usage"},
      {{{"prompt", "x"}, {"echo", 1}}, "echo"},
      {{{"prompt", "x"}, {"echo", true}, {"logprobs", 1}, {"stream", true}}, "echo"},
      {{{"max_tokens", 3}}, "prompt"},
      {{{"prompt", json::array()}}, "prompt"},
      {{{"prompt", 7}}, "prompt"},
      {{{"prompt", {1, 2, 600}}}, "prompt[2]"},
      {{{"prompt", {1, -1}}}, "prompt[1]"},
      {{{"prompt", {"ok", {1, 700}}}}, "prompt[1][1]"},
      {{{"prompt", {"ok", true}}}, "prompt[1]"},
      {{{"prompt", std::vector<int>(64, 1)}}, "prompt"},  // context is 64: no room to generate
      {{{"prompt", {"ok", ""}}}, "prompt[1]"},
      {{{"prompt", std::vector<std::string>(2049, "a")}, {"n", 2}}, "n"},
      {{{"model", "other"}, {"prompt", "x"}}, "model", 404},
      {{{"model", 3}, {"prompt", "x"}}, "model"},
  };
  for (const auto& c : cases) {
    ApiError e = completion_error(c.body);
    EXPECT_EQ(e.param, c.param) << c.body.dump() << " -> " << e.message;
    EXPECT_EQ(e.status, c.status) << c.body.dump();
    EXPECT_NE(e.message.find(c.param.substr(0, c.param.find('['))), std::string::npos) << e.message;
  }
  EXPECT_EQ(std::get<ApiError>(parse_completion_request("{not json", ctx_)).param, "");
  EXPECT_EQ(std::get<ApiError>(parse_completion_request("[1]", ctx_)).status, 400);
  // A body nested 100,000 levels deep would overflow the stack when copied: refused up front.
  const std::string deep = R"({"prompt": "hi", "x": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  for (const ApiError& e : {std::get<ApiError>(parse_completion_request(deep, ctx_)),
                            std::get<ApiError>(parse_chat_request(deep, ctx_))}) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(e.message.find("nested deeper than 128 levels"), std::string::npos) << e.message;
  }
}

TEST_F(OpenAiRequestTest, ChatParsesAndFlattensTextParts) {
  json body = {{"messages", {{{"role", "system"}, {"content", "be brief"}},
                             {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}},
                             {{"role", "assistant"}, {"content", nullptr},
                              {"tool_calls", {{{"id", "c1"}, {"type", "function"},
                                               {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}},
                             {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "42"}}}},
               {"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}}}},
               {"logprobs", true}, {"top_logprobs", 2}, {"max_completion_tokens", 9}};
  auto r = parse_chat_request(body.dump(), ctx_);
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r)) << std::get<ApiError>(r).message;
  const auto& c = std::get<ChatRequest>(r);
  EXPECT_EQ(c.messages[1]["content"], "a\nb");
  EXPECT_TRUE(c.tools.has_value());
  EXPECT_EQ(c.params.logprobs, 2);
  EXPECT_EQ(c.params.max_tokens, 9);
  EXPECT_TRUE(c.max_tokens_given);
  body["tool_choice"] = "none";
  EXPECT_FALSE(std::get<ChatRequest>(parse_chat_request(body.dump(), ctx_)).tools.has_value());
}

TEST_F(OpenAiRequestTest, ChatErrorsNameTheField) {
  const json user = {{"role", "user"}, {"content", "hi"}};
  struct Case {
    json body;
    std::string param;
  };
  const std::vector<Case> cases = {
      {{{"max_tokens", 3}}, "messages"},
      {{{"messages", json::array()}}, "messages"},
      {{{"messages", "hi"}}, "messages"},
      {{{"messages", {user, 5}}}, "messages[1]"},
      {{{"messages", {user, {{"content", "x"}}}}}, "messages[1].role"},
      {{{"messages", {user, {{"role", "robot"}, {"content", "x"}}}}}, "messages[1].role"},
      {{{"messages", {user, {{"role", "user"}, {"content", 5}}}}}, "messages[1].content"},
      {{{"messages", {user, {{"role", "user"}}}}}, "messages[1].content"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}, "messages[0].content[0].type"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "text"}}}}}}}}, "messages[0].content[0].text"},
      {{{"messages", {{{"role", "assistant"}, {"tool_calls", {{{"function", {{"name", 3}}}}}}}}}},
       "messages[0].tool_calls[0].function.name"},
      {{{"messages", {user}}, {"tools", {{{"type", "function"}, {"function", {{"description", "d"}}}}}}},
       "tools[0].function.name"},
      {{{"messages", {user}}, {"tools", {{{"type", "retrieval"}}}}}, "tools[0].type"},
      {{{"messages", {user}}, {"tools", "f"}}, "tools"},
      {{{"messages", {user}}, {"tool_choice", "sometimes"}}, "tool_choice"},
      {{{"messages", {user}}, {"temperature", -0.5}}, "temperature"},
      {{{"messages", {user}}, {"max_tokens", 0}}, "max_tokens"},
      {{{"messages", {user}}, {"logprobs", 1}}, "logprobs"},
      {{{"messages", {user}}, {"top_logprobs", 2}}, "top_logprobs"},
      {{{"messages", {user}}, {"logprobs", true}, {"top_logprobs", 30}}, "top_logprobs"},
      {{{"messages", {user}}, {"chat_template_kwargs", "x"}}, "chat_template_kwargs"},
  };
  for (const auto& c : cases) {
    ApiError e = chat_error(c.body);
    EXPECT_EQ(e.param, c.param) << c.body.dump() << " -> " << e.message;
    EXPECT_EQ(e.status, 400);
  }
}

TEST_F(OpenAiRequestTest, ErrorResponseIsOpenAiShaped) {
  ApiError e = completion_error({{"prompt", "x"}, {"temperature", -1}});
  http::HttpResponse r = e.response();
  EXPECT_EQ(r.status, 400);
  json j = json::parse(r.body);
  EXPECT_EQ(j["error"]["param"], "temperature");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["code"], 400);
  EXPECT_TRUE(j["error"]["message"].is_string());
  j = json::parse(completion_error({{"prompt", "x"}, {"model", "zz"}}).response().body);
  EXPECT_EQ(j["error"]["type"], "not_found_error");
  j = json::parse(http::HttpResponse::error(413, "too big").body);
  EXPECT_TRUE(j["error"]["param"].is_null());
  // Engine statuses map to the field they name.
  EXPECT_EQ(api_error_from_status(invalid_argument("sampling parameter 'top_p' must be in (0, 1], got 2"), "prompt").param,
            "top_p");
  EXPECT_EQ(api_error_from_status(resource_exhausted("request: prompt of 9 tokens does not fit the KV cache"), "prompt").status,
            400);
  EXPECT_EQ(api_error_from_status(resource_exhausted("server is shutting down"), "prompt").status, 503);
}

}  // namespace
}  // namespace tidal::server
