#include "tidal/server/openai_api.h"
#include "tidal/server/openai_common.h"
#include "tidal/server/cpu_accounting.h"

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

namespace tidal::server {

using json = nlohmann::json;
using http::HttpRequest;
using http::HttpResponse;
using clock_type = std::chrono::steady_clock;

namespace detail {

std::atomic<uint64_t> g_next_id{1};

void LatencyRecorder::on_output(const RequestOutput& o) {
  if (o.token_ids.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  if (first_) {
    ttft_->observe(std::chrono::duration<double>(now - start_).count());
  } else {
    itl_->observe(std::chrono::duration<double>(now - last_).count() / double(o.token_ids.size()));
  }
  first_ = false;
  last_ = now;
}

void StreamPump::start() {
  std::weak_ptr<StreamPump> weak = weak_from_this();
  auto self = shared_from_this();
  // The sink keeps the pump alive until the stream ends (the callback is dropped then).
  sink_->on_close([self] { self->abort_all(); });
  for (auto& s : streams_) {
    s->set_listener([weak] {
      if (auto p = weak.lock()) p->notify();
    });
  }
  notify();
}

void StreamPump::notify() {
  if (scheduled_.exchange(true)) return;
  sink_->post([self = shared_from_this()] { self->run(); });
}

void StreamPump::run() {
  scheduled_.store(false);  // a push from now on schedules another run
  if (done_) return;
  if (!sink_->open()) return abort_all();
  std::string out;
  if (!started_) {
    started_ = true;
    if (h_.start) out += h_.start();
  }
  bool all_done = true;
  for (auto& s : streams_) {
    outs_.clear();
    s->poll(&outs_);
    for (auto& o : outs_) out += h_.on_output(o);
    all_done = all_done && s->done();
  }
  if (all_done) {
    done_ = true;
    if (h_.finish) out += h_.finish();
  }
  if (!out.empty() && !sink_->write(std::move(out))) return abort_all();
  if (done_) sink_->end();
}

void StreamPump::abort_all() {
  if (done_) return;
  done_ = true;
  for (auto& s : streams_) {
    if (s->done()) continue;
    service_.abort(s->id());
    if (h_.aborted) h_.aborted();
  }
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

std::string new_id(const char* prefix) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s-%016llx", prefix,
                (unsigned long long)(g_next_id.fetch_add(1) * 0x9e3779b97f4a7c15ull));
  return buf;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A choice being assembled from RequestOutputs.
struct Choice {
  std::vector<float> prompt_logprobs;
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprob> logprobs;
  std::vector<uint64_t> token_versions;  // per token: the weight version that produced it
  std::string finish_reason;
};

std::string token_text(const Tokenizer* tok, int32_t id) {
  if (!tok) return std::to_string(id);
  const int32_t one[1] = {id};
  return tok->decode(one);
}

json completion_logprobs(const Tokenizer* tok, const std::vector<TokenLogprob>& lps, size_t text_offset0,
                         bool with_top, bool sampling) {
  json tokens = json::array(), token_lps = json::array(), tops = json::array(), offsets = json::array(),
       sampling_lps = json::array();
  size_t off = text_offset0;
  for (const auto& lp : lps) {
    const std::string t = token_text(tok, lp.id);
    tokens.push_back(t);
    token_lps.push_back(lp.logprob);
    sampling_lps.push_back(lp.sampling_logprob);
    offsets.push_back(off);
    off += t.size();
    if (with_top) {
      json top = json::object();
      for (const auto& [id, v] : lp.top) top[token_text(tok, id)] = v;
      tops.push_back(top);
    }
  }
  json out = {{"tokens", tokens}, {"token_logprobs", token_lps}, {"text_offset", offsets},
              {"top_logprobs", with_top ? tops : json(nullptr)}};
  if (sampling) out["sampling_logprobs"] = sampling_lps;
  return out;
}

HttpResponse status_response(const Status& st) { return HttpResponse::from_status(st); }

}  // namespace detail

using namespace detail;

OpenAiApi::OpenAiApi(EngineService& service, ApiOptions options) : service_(service), options_(std::move(options)) {
  if (!options_.model_dir.empty()) {
    auto t = ChatTemplate::load(options_.model_dir);
    if (t) chat_template_.emplace(std::move(t).value());
    else chat_template_status_ = t.status();
  }
  prompt_tokens_ = &metrics_.counter("tidal_prompt_tokens_total", "Prompt tokens received");
  generation_tokens_ = &metrics_.counter("tidal_generation_tokens_total", "Tokens generated");
  requests_ok_ = &metrics_.counter("tidal_requests_total", "Finished requests", "outcome=\"ok\"");
  requests_aborted_ = &metrics_.counter("tidal_requests_total", "Finished requests", "outcome=\"aborted\"");
  requests_error_ = &metrics_.counter("tidal_requests_total", "Finished requests", "outcome=\"error\"");
  const auto lat = http::MetricsRegistry::exponential_buckets(0.001, 2.0, 16);
  ttft_ = &metrics_.histogram("tidal_time_to_first_token_seconds", "Time to first token", lat);
  itl_ = &metrics_.histogram("tidal_inter_token_latency_seconds", "Time between output tokens", lat);
  e2e_ = &metrics_.histogram("tidal_request_latency_seconds", "End-to-end request latency",
                             http::MetricsRegistry::exponential_buckets(0.01, 2.0, 16));
  auto stat = [this](auto fn) { return [this, fn] { return fn(service_.stats()); }; };
  metrics_.gauge_fn("tidal_requests_running", "Sequences running in the engine",
                    stat([](const ServiceStats& s) { return double(s.engine.n_running); }));
  metrics_.gauge_fn("tidal_requests_waiting", "Sequences waiting in the engine",
                    stat([](const ServiceStats& s) { return double(s.engine.n_waiting); }));
  metrics_.gauge_fn("tidal_kv_cache_usage_ratio", "Fraction of KV blocks in use",
                    stat([](const ServiceStats& s) { return s.engine.kv_usage(); }));
  metrics_.gauge_fn("tidal_prefix_cache_hit_rate", "Prompt tokens served from the prefix cache / queried",
                    stat([](const ServiceStats& s) { return s.engine.prefix_hit_rate(); }));
  metrics_.gauge_fn("tidal_preemptions", "Sequences preempted so far",
                    stat([](const ServiceStats& s) { return double(s.engine.preemptions); }));
  metrics_.gauge_fn("tidal_engine_generated_tokens", "Tokens sampled by the engine so far (unfinished requests included)",
                    stat([](const ServiceStats& s) { return double(s.engine.generated_tokens); }));
  metrics_.gauge_fn("tidal_weight_version", "Version of the weights being served",
                    stat([](const ServiceStats& s) { return double(s.weight_version); }));
  // CPU split (cpu_accounting.h): the engine step (engine thread in step() + kernel pool workers)
  // versus everything else in the process (HTTP, JSON, SSE, prompt tokenizing).
  metrics_.gauge_fn("tidal_cpu_process_seconds", "CPU seconds of the whole process", [] { return process_cpu_seconds(); });
  metrics_.gauge_fn("tidal_cpu_engine_step_seconds", "CPU seconds spent in engine steps (engine thread + kernel pool)",
                    [this] { return service_.stats().step_thread_cpu_seconds + threads_cpu_seconds("tidal-pool"); });
  metrics_.gauge_fn("tidal_cpu_frontend_seconds", "CPU seconds outside engine steps (process - engine step)", [this] {
    // Pool first, process last: a concurrent step can only make the difference larger, never negative.
    const double engine = service_.stats().step_thread_cpu_seconds + threads_cpu_seconds("tidal-pool");
    return std::max(0.0, process_cpu_seconds() - engine);
  });
  metrics_.gauge_fn("tidal_paused", "1 while the server is paused",
                    stat([](const ServiceStats& s) { return s.paused ? 1.0 : 0.0; }));
}

void OpenAiApi::register_routes(http::Router& router) {
  router.add("POST", "/v1/completions", [this](HttpRequest& r) { return completions(r); });
  router.add("POST", "/v1/chat/completions", [this](HttpRequest& r) { return chat_completions(r); });
  // Inline (I/O thread, never blocked behind busy workers): models, health, metrics, resume.
  router.add_inline("GET", "/v1/models", [this](HttpRequest& r) { return models(r); });
  router.add("POST", "/tokenize", [this](HttpRequest& r) { return tokenize(r); });
  router.add("POST", "/detokenize", [this](HttpRequest& r) { return detokenize(r); });
  router.add_inline("GET", "/health", [](HttpRequest&) { return HttpResponse::json(200, {{"status", "ok"}}); });
  router.add_inline("GET", "/metrics", [this](HttpRequest&) {
    return HttpResponse::text(200, metrics_.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  router.add("POST", "/admin/pause", [this](HttpRequest& r) { return admin_pause(r); });
  router.add_inline("POST", "/admin/resume", [this](HttpRequest&) {
    service_.resume();
    return HttpResponse::json(200, {{"paused", false}});
  });
  router.add("POST", "/admin/flush_cache", [this](HttpRequest&) {
    Status st = service_.run_on_engine([](Engine& e) {
      e.flush_prefix_cache();
      return Status::ok();
    });
    return st.is_ok() ? HttpResponse::json(200, {{"flushed", true}}) : status_response(st);
  });
  router.add("POST", "/admin/update_weights", [this](HttpRequest& r) { return admin_update_weights(r); });
}

HttpResponse OpenAiApi::models(HttpRequest&) {
  const ModelConfig& c = service_.engine().model_config();
  json m = {{"id", options_.served_model_name}, {"object", "model"}, {"created", unix_now()}, {"owned_by", "tidal"},
            {"root", options_.model_dir}, {"max_model_len", service_.engine().max_model_len()},
            {"architecture", c.architecture}};
  return HttpResponse::json(200, {{"object", "list"}, {"data", json::array({m})}});
}

HttpResponse OpenAiApi::tokenize(HttpRequest& req) {
  auto body = req.json();
  if (!body) return status_response(body.status());
  const Tokenizer* tok = service_.engine().tokenizer();
  if (!tok) return HttpResponse::error(501, "the model folder has no tokenizer.json");
  auto it = body->find("prompt");
  if (it == body->end() || !it->is_string()) return HttpResponse::error(400, "'prompt' must be a string", {}, "prompt");
  bool add_special = true;
  if (auto a = body->find("add_special_tokens"); a != body->end() && !a->is_null()) {
    if (!a->is_boolean()) return HttpResponse::error(400, "'add_special_tokens' must be a boolean", {}, "add_special_tokens");
    add_special = a->get<bool>();
  }
  auto ids = tok->encode(it->get<std::string>(), add_special);
  return HttpResponse::json(200, {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", service_.engine().max_model_len()}});
}

HttpResponse OpenAiApi::detokenize(HttpRequest& req) {
  auto body = req.json();
  if (!body) return status_response(body.status());
  const Tokenizer* tok = service_.engine().tokenizer();
  if (!tok) return HttpResponse::error(501, "the model folder has no tokenizer.json");
  auto it = body->find("tokens");
  if (it == body->end() || !it->is_array()) return HttpResponse::error(400, "'tokens' must be a list of token ids", {}, "tokens");
  std::vector<int32_t> ids;
  const int64_t V = service_.engine().model_config().vocab_size;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= V) {
      const std::string param = "tokens[" + std::to_string(i) + "]";
      return HttpResponse::error(400, "'" + param + "' must be a token id in [0, " + std::to_string(V) + "), got " + t.dump(),
                                 {}, param);
    }
    ids.push_back(t.get<int32_t>());
  }
  return HttpResponse::json(200, {{"prompt", tok->decode(ids)}});
}

HttpResponse OpenAiApi::admin_pause(HttpRequest& req) {
  std::string mode = "wait";
  if (!req.body.empty()) {
    auto body = req.json();
    if (!body) return status_response(body.status());
    if (auto m = body->find("mode"); m != body->end()) {
      if (!m->is_string()) return HttpResponse::error(400, "'mode' must be one of abort, wait, keep", {}, "mode");
      mode = m->get<std::string>();
    }
  }
  EngineService::PauseMode pm;
  if (mode == "abort") pm = EngineService::PauseMode::kAbort;
  else if (mode == "wait") pm = EngineService::PauseMode::kWait;
  else if (mode == "keep") pm = EngineService::PauseMode::kKeep;
  else return HttpResponse::error(400, "'mode' must be one of abort, wait, keep; got '" + mode + "'", {}, "mode");
  Status st = service_.pause(pm);
  if (!st.is_ok()) return status_response(st);
  return HttpResponse::json(200, {{"paused", true}, {"mode", mode}});
}

HttpResponse OpenAiApi::admin_update_weights(HttpRequest& req) {
  auto body = req.json();
  if (!body) return status_response(body.status());
  auto p = body->find("path");
  if (p == body->end() || !p->is_string()) {
    return HttpResponse::error(400, "'path' must name a safetensors file or model folder (or /dev/shm/<segment>)", {},
                               "path");
  }
  std::string policy = "wait";
  if (auto m = body->find("in_flight"); m != body->end()) {
    if (!m->is_string() || (m->get<std::string>() != "wait" && m->get<std::string>() != "abort" &&
                            m->get<std::string>() != "continue")) {
      return HttpResponse::error(400,
                                 "'in_flight' must be 'wait' (finish on the old weights), 'abort', or 'continue' "
                                 "(swap between two steps; in-flight generations go on with the new weights)",
                                 {}, "in_flight");
    }
    policy = m->get<std::string>();
  }
  std::optional<uint64_t> version;  // absent: the current version + 1
  if (auto v = body->find("weight_version"); v != body->end()) {
    if (!v->is_number_unsigned()) return HttpResponse::error(400, "'weight_version' must be a non-negative integer");
    version = v->get<uint64_t>();
  }
  const std::string path = p->get<std::string>();
  const auto t0 = clock_type::now();
  Status st;
  if (policy == "continue") {
    // Partial rollouts: the swap runs on the engine thread between two steps; nothing pauses,
    // generations in flight continue on the new weights (each token reports its version). The
    // service's version changes in the same engine-thread task, so requests admitted afterwards
    // report the new one.
    st = service_.run_on_engine([&](Engine& e) {
      Status s = e.update_weights(path, version);
      if (s.is_ok()) service_.set_weight_version(e.weight_version());
      return s;
    });
  } else {
    const bool was_paused = service_.paused();
    st = service_.pause(policy == "abort" ? EngineService::PauseMode::kAbort : EngineService::PauseMode::kWait);
    if (st.is_ok()) st = service_.run_on_engine([&](Engine& e) { return e.update_weights(path, version); });
    if (st.is_ok()) {
      if (version) service_.set_weight_version(*version);
      else service_.bump_weight_version();
    }
    if (!was_paused) service_.resume();
  }
  if (!st.is_ok()) {
    ApiError e = api_error_from_status(st, "path");
    if (e.status == 400 || e.status == 404) e.param = "path";
    return e.response();
  }
  return HttpResponse::json(200, {{"weight_version", service_.weight_version()}, {"in_flight", policy},
                                  {"seconds", std::chrono::duration<double>(clock_type::now() - t0).count()}});
}

std::optional<HttpResponse> OpenAiApi::overloaded() {
  const int64_t waiting = service_.stats().engine.n_waiting;
  if (waiting < options_.max_waiting) return std::nullopt;
  HttpResponse r = HttpResponse::error(429, "server overloaded: " + std::to_string(waiting) +
                                                " sequences are waiting; retry later");
  r.headers.emplace_back("Retry-After", "1");
  requests_error_->inc();
  return r;
}

RequestContext OpenAiApi::request_context() const {
  const Engine& e = service_.engine();
  return {options_.served_model_name, e.tokenizer(), e.model_config().vocab_size, e.max_model_len()};
}

HttpResponse OpenAiApi::completions(HttpRequest& req) {
  if (auto busy = overloaded()) return *busy;
  auto parsed = parse_completion_request(req.body, request_context());
  if (auto* err = std::get_if<ApiError>(&parsed)) {
    requests_error_->inc();
    return err->response();
  }
  CompletionRequest& r = std::get<CompletionRequest>(parsed);
  const Tokenizer* tok = service_.engine().tokenizer();
  std::vector<std::vector<int32_t>>& prompts = r.prompts;
  std::vector<std::string>& prompt_texts = r.prompt_texts;
  SamplingParams& params = r.params;
  const bool stream = r.stream, echo = r.echo, return_ids = r.return_token_ids,
             want_lp = r.want_logprobs;

  // Submit every prompt; choice index = prompt * n + sample.
  const auto t0 = clock_type::now();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (auto& ids : prompts) {
    prompt_tokens_->inc(ids.size());
    auto s = service_.submit(ids, params);
    if (!s) {
      for (auto& x : streams) service_.abort(x->id());
      requests_error_->inc();
      return api_error_from_status(s.status(), prompts.size() > 1 ? "prompt[" + std::to_string(streams.size()) + "]" : "prompt")
          .response();
    }
    streams.push_back(*s);
  }
  const int32_t n = params.n;
  const std::string id = new_id("cmpl");
  const int64_t created = unix_now();
  const std::string model = options_.served_model_name;
  const uint64_t version = streams[0]->weight_version();

  if (!stream) {
    std::vector<Choice> choices(prompts.size() * size_t(n));
    LatencyRecorder latency(ttft_, itl_, t0);
    for (size_t pi = 0; pi < streams.size(); ++pi) {
      std::vector<RequestOutput> outs;
      while (streams[pi]->next(&outs, std::chrono::milliseconds(100))) {
        for (auto& o : outs) {
          latency.on_output(o);
          Choice& c = choices[pi * size_t(n) + size_t(o.index)];
          if (!o.prompt_logprobs.empty()) c.prompt_logprobs = o.prompt_logprobs;
          c.text += o.text;
          c.token_ids.insert(c.token_ids.end(), o.token_ids.begin(), o.token_ids.end());
          c.logprobs.insert(c.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
          c.token_versions.insert(c.token_versions.end(), o.token_ids.size(), o.weight_version);
          if (o.finished()) c.finish_reason = finish_reason_name(o.finish);
        }
        outs.clear();
      }
    }
    json jc = json::array();
    int64_t completion_tokens = 0;
    int64_t prompt_tokens = 0;
    for (const auto& p : prompts) prompt_tokens += int64_t(p.size()) * n;
    for (size_t i = 0; i < choices.size(); ++i) {
      Choice& c = choices[i];
      const size_t pi = i / size_t(n);
      completion_tokens += int64_t(c.token_ids.size());
      generation_tokens_->inc(c.token_ids.size());
      if (c.finish_reason == "abort") requests_aborted_->inc(); else requests_ok_->inc();
      const std::string prefix = echo ? prompt_texts[pi] : "";
      json lpj = want_lp ? completion_logprobs(tok, c.logprobs, prefix.size(), params.logprobs > 0, true) : json(nullptr);
      if (echo && want_lp) {
        // OpenAI's echo + logprobs: the prompt's tokens come first; the first has no logprob, and
        // prompt positions carry no top alternatives.
        json pt = json::array(), plp = json::array({nullptr}), ptop = json::array(), poff = json::array();
        size_t off = 0;
        for (size_t k = 0; k < prompts[pi].size(); ++k) {
          const std::string t = token_text(tok, prompts[pi][k]);
          pt.push_back(t);
          poff.push_back(off);
          off += t.size();
          ptop.push_back(nullptr);
          if (k > 0) plp.push_back(k - 1 < c.prompt_logprobs.size() ? json(c.prompt_logprobs[k - 1]) : json(nullptr));
        }
        for (auto& v : lpj["tokens"]) pt.push_back(v);
        for (auto& v : lpj["token_logprobs"]) plp.push_back(v);
        for (auto& v : lpj["text_offset"]) poff.push_back(v);
        if (lpj["top_logprobs"].is_array()) for (auto& v : lpj["top_logprobs"]) ptop.push_back(v);
        lpj["tokens"] = pt;
        lpj["token_logprobs"] = plp;
        lpj["text_offset"] = poff;
        lpj["top_logprobs"] = ptop;
      }
      json choice = {{"index", i}, {"text", prefix + c.text}, {"logprobs", lpj}, {"finish_reason", c.finish_reason}};
      if (params.prompt_logprobs) choice["prompt_logprobs"] = c.prompt_logprobs;
      if (return_ids) {
        choice["token_ids"] = c.token_ids;
        choice["prompt_token_ids"] = prompts[pi];
        // A generation may span a weight update (in_flight "continue"): each token's version.
        choice["token_weight_versions"] = c.token_versions;
      }
      jc.push_back(std::move(choice));
    }
    e2e_->observe(std::chrono::duration<double>(clock_type::now() - t0).count());
    return HttpResponse::json(200, {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
                                    {"choices", jc}, {"weight_version", version},
                                    {"usage", usage_json(prompt_tokens, completion_tokens)}});
  }

  // Streaming: one SSE event per output; event-driven (StreamPump), a client that goes away
  // aborts its requests.
  struct State {
    int64_t completion_tokens = 0;
    std::vector<size_t> text_offset;
    std::vector<bool> first;
    std::unique_ptr<LatencyRecorder> latency;
  };
  auto state = std::make_shared<State>();
  state->text_offset.assign(prompts.size() * size_t(n), 0);
  state->first.assign(prompts.size() * size_t(n), true);
  state->latency = std::make_unique<LatencyRecorder>(ttft_, itl_, t0);
  auto shared_req = std::make_shared<CompletionRequest>(std::move(r));
  std::map<RequestId, size_t> prompt_of;
  for (size_t pi = 0; pi < streams.size(); ++pi) prompt_of[streams[pi]->id()] = pi;
  auto head = [id, created, model, version] {
    return json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
                {"weight_version", version}};
  };
  StreamPump::Handlers h;
  h.start = [state, shared_req, n, head]() {
    std::string out;
    if (!shared_req->echo) return out;
    for (size_t i = 0; i < state->text_offset.size(); ++i) {
      const std::string& t = shared_req->prompt_texts[i / size_t(n)];
      json chunk = head();
      chunk["choices"] = json::array({{{"index", i}, {"text", t}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
      out += http::sse_event(chunk.dump(-1, ' ', false, json::error_handler_t::replace));
      state->text_offset[i] = t.size();
    }
    return out;
  };
  h.on_output = [this, state, shared_req, n, head, prompt_of, tok](RequestOutput& o) {
    const size_t pi = prompt_of.at(o.id);
    const size_t ci = pi * size_t(n) + size_t(o.index);
    state->latency->on_output(o);
    state->completion_tokens += int64_t(o.token_ids.size());
    generation_tokens_->inc(o.token_ids.size());
    const CompletionRequest& q = *shared_req;
    json choice = {{"index", ci}, {"text", o.text},
                   {"logprobs", q.want_logprobs ? completion_logprobs(tok, o.logprobs, state->text_offset[ci],
                                                                      q.params.logprobs > 0, true)
                                                : json(nullptr)},
                   {"finish_reason", o.finished() ? json(finish_reason_name(o.finish)) : json(nullptr)}};
    state->text_offset[ci] += o.text.size();
    if (q.return_token_ids) {
      choice["token_ids"] = o.token_ids;
      choice["token_weight_versions"] = std::vector<uint64_t>(o.token_ids.size(), o.weight_version);
    }
    if (o.finished()) {
      if (o.finish == FinishReason::kAbort) requests_aborted_->inc(); else requests_ok_->inc();
    }
    json chunk = head();
    chunk["choices"] = json::array({choice});
    if (q.return_token_ids && state->first[ci]) chunk["prompt_token_ids"] = q.prompts[pi];
    state->first[ci] = false;
    return http::sse_event(chunk.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  h.finish = [this, state, shared_req, n, head, t0]() {
    std::string out;
    if (shared_req->include_usage) {
      int64_t prompt_tokens = 0;
      for (const auto& p : shared_req->prompts) prompt_tokens += int64_t(p.size()) * n;
      json usage = head();
      usage.erase("weight_version");
      usage["choices"] = json::array();
      usage["usage"] = usage_json(prompt_tokens, state->completion_tokens);
      out += http::sse_event(usage.dump());
    }
    out += http::sse_event("[DONE]");
    e2e_->observe(std::chrono::duration<double>(clock_type::now() - t0).count());
    return out;
  };
  h.aborted = [this] { requests_aborted_->inc(); };
  return HttpResponse::async_sse([this, streams, h = std::move(h)](std::shared_ptr<http::ChunkSink> sink) mutable {
    std::make_shared<StreamPump>(service_, streams, std::move(sink), std::move(h))->start();
  });
}

}  // namespace tidal::server
