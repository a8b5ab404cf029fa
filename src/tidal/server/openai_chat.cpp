// POST /v1/chat/completions.
#include <chrono>
#include <nlohmann/json.hpp>

#include "tidal/server/openai_api.h"
#include "tidal/server/openai_common.h"
#include "tidal/server/tool_call_parser.h"

namespace tidal::server {

using json = nlohmann::json;
using http::HttpRequest;
using http::HttpResponse;
using namespace detail;
using clock_type = std::chrono::steady_clock;

namespace {

json byte_list(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

json chat_logprobs(const Tokenizer* tok, const std::vector<TokenLogprob>& lps, bool sampling) {
  json content = json::array();
  for (const auto& lp : lps) {
    const std::string t = token_text(tok, lp.id);
    json top = json::array();
    for (const auto& [id, v] : lp.top) {
      const std::string tt = token_text(tok, id);
      top.push_back({{"token", tt}, {"logprob", v}, {"bytes", byte_list(tt)}});
    }
    json e = {{"token", t}, {"logprob", lp.logprob}, {"bytes", byte_list(t)}, {"top_logprobs", top}};
    if (sampling) e["sampling_logprob"] = lp.sampling_logprob;
    content.push_back(std::move(e));
  }
  return {{"content", content}};
}

json tool_calls_json(const std::vector<ToolCall>& calls) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    out.push_back({{"index", i}, {"id", new_id("call")}, {"type", "function"},
                   {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}});
  }
  return out;
}

}  // namespace

HttpResponse OpenAiApi::chat_completions(HttpRequest& req) {
  if (auto busy = overloaded()) return *busy;
  const RequestContext ctx = request_context();
  auto parsed = parse_chat_request(req.body, ctx);
  if (auto* err = std::get_if<ApiError>(&parsed)) {
    requests_error_->inc();
    return err->response();
  }
  ChatRequest& r = std::get<ChatRequest>(parsed);
  const Tokenizer* tok = service_.engine().tokenizer();
  if (!chat_template_) {
    return HttpResponse::error(501, "the model has no chat template (" + chat_template_status_.message() + ")");
  }
  ChatTemplateInputs in;
  in.messages = std::move(r.messages);
  in.add_generation_prompt = r.add_generation_prompt;
  in.tools = std::move(r.tools);
  const bool have_tools = in.tools.has_value();
  in.extra = std::move(r.template_kwargs);
  // Tool schemas reach the template with their keys in the order the client sent (ordered JSON).
  auto rendered = chat_template_->render(in);
  if (!rendered) {
    requests_error_->inc();
    return HttpResponse::error(400, "chat template: " + rendered.status().message(), {}, "messages");
  }
  std::vector<int32_t> prompt = tok->encode(*rendered, /*add_special_tokens=*/false);
  if (auto err = check_prompt(prompt, ctx, "messages")) {
    requests_error_->inc();
    return err->response();
  }
  SamplingParams& params = r.params;
  // OpenAI's default for chat: no limit but the context.
  if (!r.max_tokens_given) params.max_tokens = int32_t(ctx.max_model_len - int64_t(prompt.size()));
  const bool want_lp = r.want_logprobs, stream = r.stream, include_usage = r.include_usage,
             return_ids = r.return_token_ids;

  const auto t0 = clock_type::now();
  prompt_tokens_->inc(prompt.size());
  auto sub = service_.submit(prompt, params);
  if (!sub) {
    requests_error_->inc();
    return api_error_from_status(sub.status(), "messages").response();
  }
  auto rs = *sub;
  const int32_t n = params.n;
  const std::string id = new_id("chatcmpl");
  const int64_t created = unix_now();
  const std::string model = options_.served_model_name;
  const uint64_t version = rs->weight_version();

  if (!stream) {
    std::vector<std::string> text(static_cast<size_t>(n));
    std::vector<std::vector<int32_t>> ids(static_cast<size_t>(n));
    std::vector<std::vector<TokenLogprob>> lps(static_cast<size_t>(n));
    std::vector<std::string> finish(static_cast<size_t>(n));
    std::vector<RequestOutput> outs;
    LatencyRecorder latency(ttft_, itl_, t0);
    while (rs->next(&outs, std::chrono::milliseconds(100))) {
      for (auto& o : outs) {
        latency.on_output(o);
        text[size_t(o.index)] += o.text;
        ids[size_t(o.index)].insert(ids[size_t(o.index)].end(), o.token_ids.begin(), o.token_ids.end());
        lps[size_t(o.index)].insert(lps[size_t(o.index)].end(), o.logprobs.begin(), o.logprobs.end());
        if (o.finished()) finish[size_t(o.index)] = finish_reason_name(o.finish);
      }
      outs.clear();
    }
    json choices = json::array();
    int64_t completion_tokens = 0;
    for (int32_t i = 0; i < n; ++i) {
      completion_tokens += int64_t(ids[size_t(i)].size());
      generation_tokens_->inc(ids[size_t(i)].size());
      if (finish[size_t(i)] == "abort") requests_aborted_->inc(); else requests_ok_->inc();
      ReasoningSplit rsplit = split_reasoning(text[size_t(i)]);
      json message = {{"role", "assistant"}};
      std::string fr = finish[size_t(i)];
      ParsedOutput parsed = have_tools ? parse_tool_calls(rsplit.content) : ParsedOutput{rsplit.content, {}};
      if (!parsed.tool_calls.empty()) {
        message["content"] = parsed.content.empty() ? json(nullptr) : json(parsed.content);
        message["tool_calls"] = tool_calls_json(parsed.tool_calls);
        if (fr == "stop") fr = "tool_calls";
      } else {
        message["content"] = rsplit.content;
      }
      if (rsplit.found) message["reasoning_content"] = rsplit.reasoning;
      json choice = {{"index", i}, {"message", message},
                     {"logprobs", want_lp ? chat_logprobs(tok, lps[size_t(i)], true) : json(nullptr)},
                     {"finish_reason", fr}};
      if (return_ids) {
        choice["token_ids"] = ids[size_t(i)];
        choice["prompt_token_ids"] = prompt;
      }
      choices.push_back(std::move(choice));
    }
    e2e_->observe(std::chrono::duration<double>(clock_type::now() - t0).count());
    const int64_t prompt_tokens = int64_t(prompt.size()) * n;
    return HttpResponse::json(200, {{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", model},
                                    {"choices", choices}, {"weight_version", version},
                                    {"usage", usage_json(prompt_tokens, completion_tokens)}});
  }

  // Streaming: event-driven (StreamPump); a client that goes away aborts the request.
  struct State {
    int64_t completion_tokens = 0;
    std::vector<ToolCallStreamFilter> filters;
    std::unique_ptr<LatencyRecorder> latency;
  };
  auto state = std::make_shared<State>();
  state->filters.resize(static_cast<size_t>(n));
  state->latency = std::make_unique<LatencyRecorder>(ttft_, itl_, t0);
  auto chunk = [id, created, model, version](int32_t index, json delta, json finish, json logprobs) {
    json c = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
              {"weight_version", version},
              {"choices", json::array({{{"index", index}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)},
                                        {"finish_reason", std::move(finish)}}})}};
    return http::sse_event(c.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  StreamPump::Handlers h;
  h.start = [n, chunk] {
    std::string out;
    for (int32_t i = 0; i < n; ++i) out += chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
    return out;
  };
  h.on_output = [this, state, chunk, have_tools, return_ids, want_lp, tok](RequestOutput& o) -> std::string {
    state->latency->on_output(o);
    state->completion_tokens += int64_t(o.token_ids.size());
    generation_tokens_->inc(o.token_ids.size());
    ToolCallStreamFilter& filter = state->filters[size_t(o.index)];
    std::string content = have_tools ? filter.push(o.text) : o.text;
    json delta = json::object();
    if (!content.empty()) delta["content"] = content;
    if (return_ids) delta["token_ids"] = o.token_ids;
    json lp = want_lp && !o.logprobs.empty() ? chat_logprobs(tok, o.logprobs, true) : json(nullptr);
    json fin = nullptr;
    if (o.finished()) {
      std::string fr = finish_reason_name(o.finish);
      if (have_tools) {
        ParsedOutput parsed = parse_tool_calls(filter.held());
        if (!parsed.tool_calls.empty()) {
          delta["tool_calls"] = tool_calls_json(parsed.tool_calls);
          if (fr == "stop") fr = "tool_calls";
        }
        if (!parsed.content.empty()) delta["content"] = delta.value("content", std::string()) + parsed.content;
      }
      fin = fr;
      if (o.finish == FinishReason::kAbort) requests_aborted_->inc(); else requests_ok_->inc();
    }
    if (delta.empty() && fin.is_null() && lp.is_null()) return {};
    return chunk(o.index, std::move(delta), std::move(fin), std::move(lp));
  };
  const int64_t prompt_len = int64_t(prompt.size());
  h.finish = [this, state, include_usage, id, created, model, n, prompt_len, t0] {
    std::string out;
    if (include_usage) {
      json u = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model}, {"choices", json::array()},
                {"usage", usage_json(prompt_len * n, state->completion_tokens)}};
      out += http::sse_event(u.dump());
    }
    out += http::sse_event("[DONE]");
    e2e_->observe(std::chrono::duration<double>(clock_type::now() - t0).count());
    return out;
  };
  h.aborted = [this] { requests_aborted_->inc(); };
  return HttpResponse::async_sse([this, rs, h = std::move(h)](std::shared_ptr<http::ChunkSink> sink) mutable {
    std::make_shared<StreamPump>(service_, std::vector<std::shared_ptr<RequestStream>>{rs}, std::move(sink), std::move(h))
        ->start();
  });
}

}  // namespace tidal::server
