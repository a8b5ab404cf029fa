#include "tidal/server/openai_request.h"

#include <cmath>
#include <limits>

#include "tidal/core/json_nesting.h"

namespace tidal::server {

namespace {

using ojson = nlohmann::ordered_json;
using Err = std::optional<ApiError>;

#define TIDAL_API_TRY(expr)             \
  do {                                  \
    if (Err api_err_ = (expr)) return *api_err_; \
  } while (0)

ApiError bad(std::string param, std::string message) { return {400, std::move(message), std::move(param), {}}; }

// "a string \"abc\"", "a number 3.5": what the client sent, short.
std::string describe(const ojson& v) {
  std::string s = v.dump(-1, ' ', false, ojson::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return std::string(v.type_name()) + " " + s;
}

ApiError type_error(const std::string& param, const std::string& expected, const ojson& got) {
  return bad(param, "'" + param + "' must be " + expected + ", got " + describe(got));
}

std::string num_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", x);
  return buf;
}

// The value of `key` when present and not null.
const ojson* field(const ojson& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// Integers: JSON integers, or numbers with no fractional part; within [lo, hi].
Err read_int(const ojson& v, const std::string& param, int64_t lo, int64_t hi, int64_t* out) {
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    x = u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max() : int64_t(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) && std::floor(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 9e18) {
    x = int64_t(v.get<double>());
  } else {
    return type_error(param, "an integer", v);
  }
  if (x < lo || x > hi) {
    const std::string range = hi == std::numeric_limits<int64_t>::max()
                                  ? ">= " + std::to_string(lo)
                                  : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return bad(param, "'" + param + "' must be " + range + ", got " + std::to_string(x));
  }
  *out = x;
  return std::nullopt;
}

template <class T>
Err opt_int(const ojson& obj, const char* key, int64_t lo, int64_t hi, T* out, bool* given = nullptr) {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  int64_t x = 0;
  TIDAL_API_TRY(read_int(*v, key, lo, hi, &x));
  *out = T(x);
  if (given) *given = true;
  return std::nullopt;
}

// Numbers in [lo, hi] (`lo_open`: lo itself excluded).
Err opt_num(const ojson& obj, const char* key, double lo, double hi, bool lo_open, double* out) {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) return type_error(key, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || (lo_open ? !(x > lo) : !(x >= lo)) || !(x <= hi)) {
    std::string msg = "'";
    msg += key;
    msg += "' must be ";
    if (hi == std::numeric_limits<double>::infinity()) {
      msg += lo_open ? "> " : ">= ";
      msg += num_text(lo);
    } else {
      msg += lo_open ? "in (" : "in [";
      msg += num_text(lo);
      msg += ", ";
      msg += num_text(hi);
      msg += "]";
    }
    msg += ", got ";
    msg += num_text(x);
    return bad(key, std::move(msg));
  }
  *out = x;
  return std::nullopt;
}

Err opt_bool(const ojson& obj, const char* key, bool* out, const std::string& prefix = "") {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return type_error(prefix + key, "a boolean", *v);
  *out = v->get<bool>();
  return std::nullopt;
}

Err opt_string(const ojson& obj, const char* key, std::string* out, const std::string& prefix = "") {
  const ojson* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) return type_error(prefix + key, "a string", *v);
  *out = v->get<std::string>();
  return std::nullopt;
}

Err check_model(const ojson& body, const RequestContext& ctx) {
  const ojson* m = field(body, "model");
  if (!m) return std::nullopt;
  if (!m->is_string()) return type_error("model", "a string", *m);
  if (m->get<std::string>() != ctx.served_model_name) {
    return ApiError{404, "model '" + m->get<std::string>() + "' does not exist; this server serves '" +
                             ctx.served_model_name + "'", "model", {}};
  }
  return std::nullopt;
}

Err parse_body(std::string_view text, ojson* body) {
  if (json_nesting_exceeds(text)) {
    return bad("", "the request body has JSON arrays/objects nested deeper than " + std::to_string(kMaxJsonNesting) +
                       " levels");
  }
  *body = ojson::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) return bad("", "the request body is not valid JSON");
  if (!body->is_object()) return bad("", "the request body must be a JSON object, got " + describe(*body));
  return std::nullopt;
}

Err parse_stream_flags(const ojson& body, bool* stream, bool* include_usage) {
  TIDAL_API_TRY(opt_bool(body, "stream", stream));
  if (const ojson* so = field(body, "stream_options")) {
    if (!so->is_object()) return type_error("stream_options", "an object", *so);
    TIDAL_API_TRY(opt_bool(*so, "include_usage", include_usage, "stream_options."));
  }
  return std::nullopt;
}

// The sampling fields shared by completions and chat completions (logprobs differ; see callers).
Err parse_sampling(const ojson& j, const RequestContext& ctx, SamplingParams* p, bool* max_tokens_given) {
  constexpr int64_t kI32 = std::numeric_limits<int32_t>::max();
  TIDAL_API_TRY(opt_int(j, "max_tokens", 1, kI32, &p->max_tokens, max_tokens_given));
  TIDAL_API_TRY(opt_int(j, "max_completion_tokens", 1, kI32, &p->max_tokens, max_tokens_given));
  constexpr double kInf = std::numeric_limits<double>::infinity();
  TIDAL_API_TRY(opt_num(j, "temperature", 0, kInf, false, &p->temperature));
  TIDAL_API_TRY(opt_num(j, "top_p", 0, 1, true, &p->top_p));
  TIDAL_API_TRY(opt_int(j, "top_k", -1, kI32, &p->top_k));
  TIDAL_API_TRY(opt_num(j, "min_p", 0, 1, false, &p->min_p));
  TIDAL_API_TRY(opt_int(j, "n", 1, 128, &p->n));
  TIDAL_API_TRY(opt_num(j, "presence_penalty", -2, 2, false, &p->presence_penalty));
  TIDAL_API_TRY(opt_num(j, "frequency_penalty", -2, 2, false, &p->frequency_penalty));
  TIDAL_API_TRY(opt_num(j, "repetition_penalty", 0, kInf, true, &p->repetition_penalty));
  if (const ojson* v = field(j, "seed")) {
    if (v->is_number_unsigned()) {
      p->seed = v->get<uint64_t>();
    } else {
      int64_t s = 0;
      TIDAL_API_TRY(read_int(*v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), &s));
      p->seed = uint64_t(s);
    }
  }
  TIDAL_API_TRY(opt_bool(j, "ignore_eos", &p->ignore_eos));
  if (const ojson* v = field(j, "stop")) {
    if (v->is_string()) {
      if (v->get<std::string>().empty()) return bad("stop", "'stop' must not be an empty string");
      p->stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (size_t i = 0; i < v->size(); ++i) {
        const std::string param = "stop[" + std::to_string(i) + "]";
        if (!(*v)[i].is_string()) return type_error(param, "a string", (*v)[i]);
        if ((*v)[i].get<std::string>().empty()) return bad(param, "'" + param + "' must not be an empty string");
        p->stop.push_back((*v)[i].get<std::string>());
      }
    } else {
      return type_error("stop", "a string or a list of strings", *v);
    }
    if (!p->stop.empty() && !ctx.tokenizer) {
      return bad("stop", "stop strings need a tokenizer.json in the model folder (use 'stop_token_ids')");
    }
  }
  if (const ojson* v = field(j, "stop_token_ids")) {
    if (!v->is_array()) return type_error("stop_token_ids", "a list of token ids", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      int64_t id = 0;
      TIDAL_API_TRY(read_int((*v)[i], "stop_token_ids[" + std::to_string(i) + "]", 0, ctx.vocab_size - 1, &id));
      p->stop_token_ids.push_back(int32_t(id));
    }
  }
  return std::nullopt;
}

// A token-id list: ids in the vocabulary. `param` names the list ("prompt", "prompt[2]").
Err read_token_ids(const ojson& arr, const RequestContext& ctx, const std::string& param, std::vector<int32_t>* out) {
  out->reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    int64_t id = 0;
    TIDAL_API_TRY(read_int(arr[i], param + "[" + std::to_string(i) + "]", 0, ctx.vocab_size - 1, &id));
    out->push_back(int32_t(id));
  }
  return std::nullopt;
}

Err parse_prompts(const ojson& body, const RequestContext& ctx, CompletionRequest* r) {
  const ojson* pv = field(body, "prompt");
  if (!pv) return bad("prompt", "'prompt' is required (a string, a list of token ids, or a list of those)");
  const char* kShape = "a string, a list of token ids, or a list of strings or token-id lists";
  auto add_text = [&](const std::string& s, const std::string& param) -> Err {
    if (!ctx.tokenizer) return bad(param, "the model folder has no tokenizer.json: send '" + param + "' as token ids");
    r->prompts.push_back(ctx.tokenizer->encode(s));
    r->prompt_texts.push_back(s);
    return std::nullopt;
  };
  auto add_ids = [&](const ojson& arr, const std::string& param) -> Err {
    std::vector<int32_t> ids;
    TIDAL_API_TRY(read_token_ids(arr, ctx, param, &ids));
    r->prompt_texts.push_back(ctx.tokenizer ? ctx.tokenizer->decode(ids) : std::string());
    r->prompts.push_back(std::move(ids));
    return std::nullopt;
  };
  if (pv->is_string()) {
    TIDAL_API_TRY(add_text(pv->get<std::string>(), "prompt"));
  } else if (pv->is_array() && pv->empty()) {
    return bad("prompt", "'prompt' must not be an empty list");
  } else if (pv->is_array() && (*pv)[0].is_number()) {
    TIDAL_API_TRY(add_ids(*pv, "prompt"));
  } else if (pv->is_array()) {
    for (size_t i = 0; i < pv->size(); ++i) {
      const std::string param = "prompt[" + std::to_string(i) + "]";
      const ojson& p = (*pv)[i];
      if (p.is_string()) TIDAL_API_TRY(add_text(p.get<std::string>(), param));
      else if (p.is_array()) TIDAL_API_TRY(add_ids(p, param));
      else return type_error(param, "a string or a list of token ids", p);
    }
  } else {
    return type_error("prompt", kShape, *pv);
  }
  for (size_t i = 0; i < r->prompts.size(); ++i) {
    const std::string param = pv->is_array() && !(*pv)[0].is_number() ? "prompt[" + std::to_string(i) + "]" : "prompt";
    if (auto e = check_prompt(r->prompts[i], ctx, param)) return e;
  }
  return std::nullopt;
}

const char* kRoles[] = {"system", "developer", "user", "assistant", "tool", "function"};

// Text content: a string, or a list of {"type": "text", "text": ...} parts (joined with "\n", as
// other servers do). Other part types (images, audio) are refused: Tidal serves text models.
Err normalize_content(ojson& msg, const std::string& param, bool null_ok) {
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) {
    if (null_ok) return std::nullopt;
    return bad(param, "'" + param + "' is required (a string or a list of text parts)");
  }
  if (it->is_string()) return std::nullopt;
  if (!it->is_array()) return type_error(param, "a string or a list of text parts", *it);
  std::string joined;
  for (size_t k = 0; k < it->size(); ++k) {
    const std::string pp = param + "[" + std::to_string(k) + "]";
    const ojson& part = (*it)[k];
    if (!part.is_object()) return type_error(pp, "an object {\"type\": \"text\", \"text\": ...}", part);
    std::string type;
    TIDAL_API_TRY(opt_string(part, "type", &type, pp + "."));
    if (type != "text") {
      return bad(pp + ".type", "'" + pp + ".type' must be \"text\" (this server serves a text-only model), got \"" +
                                   type + "\"");
    }
    const ojson* text = field(part, "text");
    if (!text || !text->is_string()) {
      return text ? type_error(pp + ".text", "a string", *text) : bad(pp + ".text", "'" + pp + ".text' is required");
    }
    if (k) joined += '\n';
    joined += text->get<std::string>();
  }
  *it = joined;
  return std::nullopt;
}

Err check_function(const ojson& fn, const std::string& param, bool arguments) {
  if (!fn.is_object()) return type_error(param, "an object", fn);
  const ojson* name = field(fn, "name");
  if (!name) return bad(param + ".name", "'" + param + ".name' is required");
  if (!name->is_string() || name->get<std::string>().empty()) return type_error(param + ".name", "a non-empty string", *name);
  if (arguments) {
    const ojson* a = field(fn, "arguments");
    if (a && !a->is_string() && !a->is_object()) return type_error(param + ".arguments", "a JSON string", *a);
  } else {
    std::string desc;
    TIDAL_API_TRY(opt_string(fn, "description", &desc, param + "."));
    const ojson* ps = field(fn, "parameters");
    if (ps && !ps->is_object()) return type_error(param + ".parameters", "a JSON Schema object", *ps);
  }
  return std::nullopt;
}

Err parse_messages(ojson& msgs) {
  if (!msgs.is_array() || msgs.empty()) {
    return msgs.is_array() ? bad("messages", "'messages' must not be empty")
                           : type_error("messages", "a non-empty list of {\"role\", \"content\"} objects", msgs);
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    const std::string mp = "messages[" + std::to_string(i) + "]";
    ojson& m = msgs[i];
    if (!m.is_object()) return type_error(mp, "an object with 'role' and 'content'", m);
    const ojson* role = field(m, "role");
    if (!role) return bad(mp + ".role", "'" + mp + ".role' is required");
    if (!role->is_string()) return type_error(mp + ".role", "a string", *role);
    const std::string r = role->get<std::string>();
    bool known = false;
    for (const char* k : kRoles) known |= r == k;
    if (!known) {
      return bad(mp + ".role", "'" + mp + ".role' must be one of system, developer, user, assistant, tool; got \"" + r + "\"");
    }
    const bool has_tool_calls = field(m, "tool_calls") != nullptr;
    TIDAL_API_TRY(normalize_content(m, mp + ".content", r == "assistant"));
    std::string s;
    TIDAL_API_TRY(opt_string(m, "name", &s, mp + "."));
    TIDAL_API_TRY(opt_string(m, "tool_call_id", &s, mp + "."));
    if (has_tool_calls) {
      const ojson& tc = m["tool_calls"];
      const std::string tp = mp + ".tool_calls";
      if (r != "assistant") return bad(tp, "'" + tp + "' is only allowed on assistant messages");
      if (!tc.is_array()) return type_error(tp, "a list", tc);
      for (size_t k = 0; k < tc.size(); ++k) {
        const std::string kp = tp + "[" + std::to_string(k) + "]";
        if (!tc[k].is_object()) return type_error(kp, "an object", tc[k]);
        const ojson* fn = field(tc[k], "function");
        if (!fn) return bad(kp + ".function", "'" + kp + ".function' is required");
        TIDAL_API_TRY(check_function(*fn, kp + ".function", /*arguments=*/true));
      }
    }
  }
  return std::nullopt;
}

Err parse_tools(const ojson& body, ChatRequest* r) {
  std::string choice = "auto";
  if (const ojson* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      choice = tc->get<std::string>();
      if (choice != "none" && choice != "auto" && choice != "required") {
        return bad("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                                  "\"function\": {\"name\": ...}}; got \"" + choice + "\"");
      }
    } else if (tc->is_object()) {
      const ojson* fn = field(*tc, "function");
      if (!fn) return bad("tool_choice.function", "'tool_choice.function' is required");
      TIDAL_API_TRY(check_function(*fn, "tool_choice.function", /*arguments=*/false));
    } else {
      return type_error("tool_choice", "a string or an object", *tc);
    }
  }
  const ojson* tools = field(body, "tools");
  if (!tools) return std::nullopt;
  if (!tools->is_array()) return type_error("tools", "a list of tool schemas", *tools);
  for (size_t i = 0; i < tools->size(); ++i) {
    const std::string tp = "tools[" + std::to_string(i) + "]";
    const ojson& t = (*tools)[i];
    if (!t.is_object()) return type_error(tp, "an object {\"type\": \"function\", \"function\": {...}}", t);
    std::string type = "function";
    TIDAL_API_TRY(opt_string(t, "type", &type, tp + "."));
    if (type != "function") return bad(tp + ".type", "'" + tp + ".type' must be \"function\", got \"" + type + "\"");
    const ojson* fn = field(t, "function");
    if (!fn) return bad(tp + ".function", "'" + tp + ".function' is required");
    TIDAL_API_TRY(check_function(*fn, tp + ".function", /*arguments=*/false));
  }
  if (choice != "none" && !tools->empty()) r->tools = *tools;
  return std::nullopt;
}

// Engine names a sampling parameter as "sampling parameter 'x' must be ...".
std::string quoted_name(const std::string& message, const std::string& after) {
  const size_t at = message.find(after);
  if (at == std::string::npos) return "";
  const size_t b = at + after.size();
  const size_t e = message.find('\'', b);
  return e == std::string::npos ? "" : message.substr(b, e - b);
}

}  // namespace

std::optional<ApiError> check_prompt(const std::vector<int32_t>& prompt, const RequestContext& ctx,
                                     const std::string& param) {
  if (prompt.empty()) return bad(param, "'" + param + "' is empty (it must hold at least one token)");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= ctx.vocab_size) {
      return bad(param, "'" + param + "' token " + std::to_string(i) + " (id " + std::to_string(prompt[i]) +
                            ") is outside the vocabulary [0, " + std::to_string(ctx.vocab_size) + ")");
    }
  }
  if (int64_t(prompt.size()) >= ctx.max_model_len) {
    return bad(param, "'" + param + "' has " + std::to_string(prompt.size()) + " tokens; this model's context is " +
                          std::to_string(ctx.max_model_len) + " tokens (prompt + at least one generated token)");
  }
  return std::nullopt;
}

ApiError api_error_from_status(const Status& st, const std::string& prompt_param) {
  const std::string& m = st.message();
  switch (st.code()) {
    case StatusCode::kInvalidArgument: {
      std::string param = quoted_name(m, "sampling parameter '");
      if (param.empty() && m.rfind("request: ", 0) == 0) param = m.find("stop strings") != std::string::npos ? "stop" : prompt_param;
      return {400, m, param, {}};
    }
    case StatusCode::kResourceExhausted:
      if (m.find("KV cache") != std::string::npos) return {400, m, prompt_param, {}};
      if (m.find("shutting down") != std::string::npos) return {503, m, "", {}};
      return {429, m, "", {}};
    case StatusCode::kNotFound: return {404, m, "", {}};
    case StatusCode::kUnimplemented: return {501, m, "", {}};
    default: return {500, m, "", {}};
  }
}

ApiResult<CompletionRequest> parse_completion_request(std::string_view text, const RequestContext& ctx) {
  ojson body;
  TIDAL_API_TRY(parse_body(text, &body));
  TIDAL_API_TRY(check_model(body, ctx));
  CompletionRequest r;
  TIDAL_API_TRY(parse_prompts(body, ctx, &r));
  TIDAL_API_TRY(parse_sampling(body, ctx, &r.params, nullptr));
  TIDAL_API_TRY(opt_int(body, "logprobs", 0, 20, &r.params.logprobs));
  if (int64_t(r.prompts.size()) * r.params.n > kMaxSequencesPerRequest) {
    return bad("n", "prompts x 'n' = " + std::to_string(int64_t(r.prompts.size()) * r.params.n) +
                        " sequences; one request may ask for at most " + std::to_string(kMaxSequencesPerRequest));
  }
  TIDAL_API_TRY(parse_stream_flags(body, &r.stream, &r.include_usage));
  TIDAL_API_TRY(opt_bool(body, "echo", &r.echo));
  TIDAL_API_TRY(opt_bool(body, "return_token_ids", &r.return_token_ids));
  // Extension: "detokenize": false skips producing text (token-id clients; stop strings then
  // have no effect, as with an in-process engine request that does not detokenize).
  TIDAL_API_TRY(opt_bool(body, "detokenize", &r.params.detokenize));
  bool return_logprobs = false, prompt_logprobs = false;
  TIDAL_API_TRY(opt_bool(body, "return_logprobs", &return_logprobs));
  TIDAL_API_TRY(opt_bool(body, "prompt_logprobs", &prompt_logprobs));
  std::string user;
  TIDAL_API_TRY(opt_string(body, "user", &user));
  r.want_logprobs = r.params.logprobs > 0 || return_logprobs;
  // Prompt log-probabilities: with echo + logprobs (OpenAI), or "prompt_logprobs": true (extension).
  r.params.prompt_logprobs = (r.echo && r.params.logprobs > 0) || prompt_logprobs;
  if (r.params.prompt_logprobs && r.stream) {
    return bad(prompt_logprobs ? "prompt_logprobs" : "echo",
               "prompt log-probabilities ('echo' with 'logprobs', or 'prompt_logprobs') need stream: false");
  }
  if (Status st = r.params.validate(ctx.vocab_size); !st.is_ok()) return api_error_from_status(st, "prompt");
  return r;
}

ApiResult<ChatRequest> parse_chat_request(std::string_view text, const RequestContext& ctx) {
  ojson body;
  TIDAL_API_TRY(parse_body(text, &body));
  TIDAL_API_TRY(check_model(body, ctx));
  ChatRequest r;
  auto msgs = body.find("messages");
  if (msgs == body.end() || msgs->is_null()) return bad("messages", "'messages' is required");
  TIDAL_API_TRY(parse_messages(*msgs));
  r.messages = std::move(*msgs);
  TIDAL_API_TRY(parse_tools(body, &r));
  TIDAL_API_TRY(opt_bool(body, "add_generation_prompt", &r.add_generation_prompt));
  if (const ojson* kw = field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) return type_error("chat_template_kwargs", "an object", *kw);
    r.template_kwargs = *kw;
  }
  TIDAL_API_TRY(parse_sampling(body, ctx, &r.params, &r.max_tokens_given));
  TIDAL_API_TRY(opt_bool(body, "logprobs", &r.want_logprobs));
  int32_t top = 0;
  TIDAL_API_TRY(opt_int(body, "top_logprobs", 0, 20, &top));
  if (top > 0 && !r.want_logprobs) return bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  r.params.logprobs = r.want_logprobs ? top : 0;
  TIDAL_API_TRY(parse_stream_flags(body, &r.stream, &r.include_usage));
  TIDAL_API_TRY(opt_bool(body, "return_token_ids", &r.return_token_ids));
  std::string user;
  TIDAL_API_TRY(opt_string(body, "user", &user));
  if (!ctx.tokenizer) return ApiError{501, "the model folder has no tokenizer.json (chat needs one)", "", {}};
  if (Status st = r.params.validate(ctx.vocab_size); !st.is_ok()) return api_error_from_status(st, "messages");
  return r;
}

}  // namespace tidal::server
