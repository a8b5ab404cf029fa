// POST /v1/chat/completions.
#include <chrono>
#include <nlohmann/json.hpp>

#include "tidal/server/openai_api.h"
#include "tidal/server/openai_common.h"
#include "tidal/server/tool_call_parser.h"

namespace tidal::server {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
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
  // Ordered JSON: tool schemas reach the template with their keys in the order the client sent.
  ojson body = ojson::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return HttpResponse::error(400, "the request body is not a JSON object");
  const json flat = json::parse(req.body, nullptr, false);
  if (auto m = body.find("model"); m != body.end() && m->is_string() && m->get<std::string>() != options_.served_model_name) {
    return HttpResponse::error(404, "model '" + m->get<std::string>() + "' does not exist; this server serves '" +
                                        options_.served_model_name + "'", "model_not_found");
  }
  const Tokenizer* tok = service_.engine().tokenizer();
  if (!tok) return HttpResponse::error(501, "the model folder has no tokenizer.json");
  if (!chat_template_) {
    return HttpResponse::error(501, "the model has no chat template (" + chat_template_status_.message() + ")");
  }
  auto msgs = body.find("messages");
  if (msgs == body.end() || !msgs->is_array() || msgs->empty()) {
    return HttpResponse::error(400, "'messages' must be a non-empty list of {\"role\", \"content\"} objects");
  }
  for (const auto& m : *msgs) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return HttpResponse::error(400, "each message needs a string 'role'");
    }
  }
  ChatTemplateInputs in;
  in.messages = *msgs;
  in.add_generation_prompt = true;
  if (auto a = body.find("add_generation_prompt"); a != body.end() && a->is_boolean()) in.add_generation_prompt = a->get<bool>();
  bool have_tools = false;
  std::string tool_choice = "auto";
  if (auto tc = body.find("tool_choice"); tc != body.end() && tc->is_string()) tool_choice = tc->get<std::string>();
  if (auto t = body.find("tools"); t != body.end() && !t->is_null()) {
    if (!t->is_array()) return HttpResponse::error(400, "'tools' must be a list of tool schemas");
    if (tool_choice != "none" && !t->empty()) {
      in.tools = *t;
      have_tools = true;
    }
  }
  if (auto kw = body.find("chat_template_kwargs"); kw != body.end() && !kw->is_null()) {
    if (!kw->is_object()) return HttpResponse::error(400, "'chat_template_kwargs' must be an object");
    for (auto it = kw->begin(); it != kw->end(); ++it) in.extra[it.key()] = it.value();
  }
  auto rendered = chat_template_->render(in);
  if (!rendered) return HttpResponse::error(400, "chat template: " + rendered.status().message());
  std::vector<int32_t> prompt = tok->encode(*rendered, /*add_special_tokens=*/false);

  SamplingParams params;
  Status st = parse_sampling(flat, &params, /*chat=*/true);
  if (!st.is_ok()) return status_response(st);
  const bool want_lp = flat.value("logprobs", false);
  const bool stream = flat.value("stream", false);
  bool include_usage = false;
  if (auto so = flat.find("stream_options"); so != flat.end() && so->is_object()) include_usage = so->value("include_usage", false);
  const bool return_ids = flat.value("return_token_ids", false);

  const auto t0 = clock_type::now();
  prompt_tokens_->inc(prompt.size());
  auto sub = service_.submit(prompt, params);
  if (!sub) {
    requests_error_->inc();
    return status_response(sub.status());
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

  return HttpResponse::sse([this, rs, n, id, created, model, version, include_usage, want_lp, return_ids, have_tools,
                            prompt, tok, t0](http::StreamWriter& w) {
    auto chunk = [&](int32_t index, json delta, json finish, json logprobs) {
      json c = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
                {"weight_version", version},
                {"choices", json::array({{{"index", index}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)},
                                          {"finish_reason", std::move(finish)}}})}};
      return w.write_event(c.dump(-1, ' ', false, json::error_handler_t::replace));
    };
    bool gone = false;
    for (int32_t i = 0; i < n && !gone; ++i) gone = !chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
    std::vector<ToolCallStreamFilter> filters(static_cast<size_t>(n));
    int64_t completion_tokens = 0;
    std::vector<RequestOutput> outs;
    LatencyRecorder latency(ttft_, itl_, t0);
    while (!gone && rs->next(&outs, std::chrono::milliseconds(100))) {
      for (auto& o : outs) {
        latency.on_output(o);
        completion_tokens += int64_t(o.token_ids.size());
        generation_tokens_->inc(o.token_ids.size());
        std::string content = have_tools ? filters[size_t(o.index)].push(o.text) : o.text;
        json delta = json::object();
        if (!content.empty()) delta["content"] = content;
        if (return_ids) delta["token_ids"] = o.token_ids;
        json lp = want_lp && !o.logprobs.empty() ? chat_logprobs(tok, o.logprobs, true) : json(nullptr);
        json fin = nullptr;
        if (o.finished()) {
          std::string fr = finish_reason_name(o.finish);
          if (have_tools) {
            ParsedOutput parsed = parse_tool_calls(filters[size_t(o.index)].held());
            if (!parsed.tool_calls.empty()) {
              delta["tool_calls"] = tool_calls_json(parsed.tool_calls);
              if (fr == "stop") fr = "tool_calls";
            }
            if (!parsed.content.empty()) delta["content"] = delta.value("content", std::string()) + parsed.content;
          }
          fin = fr;
          if (o.finish == FinishReason::kAbort) requests_aborted_->inc(); else requests_ok_->inc();
        }
        if (delta.empty() && fin.is_null() && lp.is_null()) continue;
        if (!chunk(o.index, std::move(delta), std::move(fin), std::move(lp))) {
          gone = true;
          break;
        }
      }
      outs.clear();
    }
    if (gone) {
      service_.abort(rs->id());
      return;
    }
    if (include_usage) {
      const int64_t prompt_tokens = int64_t(prompt.size()) * n;
      json u = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model}, {"choices", json::array()},
                {"usage", usage_json(prompt_tokens, completion_tokens)}};
      w.write_event(u.dump());
    }
    w.write_event("[DONE]");
    e2e_->observe(std::chrono::duration<double>(clock_type::now() - t0).count());
  });
}

}  // namespace tidal::server
