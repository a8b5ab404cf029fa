#include "tidal/sandbox/sandbox_api.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "tidal/http/http_request.h"
#include "tidal/http/json_fields.h"

namespace tidal::sandbox {

using nlohmann::json;
using tidal::http::HttpRequest;
using tidal::http::HttpResponse;
using tidal::http::JsonFields;

namespace {

constexpr int64_t kMaxExecTimeoutS = 24 * 3600;
constexpr int64_t kMaxOutputBytes = 64ll << 20;
constexpr int64_t kMaxFileBytes = 64ll << 20;

json info_json(const Sandbox& sb) {
  SandboxInfo info = sb.info();
  const SandboxSpec& s = info.spec;
  return {{"id", info.id},
          {"template", s.template_name},
          {"cpu_millis", s.cpu_millis},
          {"memory_mb", s.memory_mb},
          {"pids", s.pids},
          {"disk_mb", s.disk_mb},
          {"timeout_s", s.timeout_s},
          {"network", network_mode_name(s.network)},
          {"env", s.env},
          {"labels", s.labels},
          {"lease", s.lease.empty() ? json(nullptr) : json(s.lease)},
          {"created_unix_ms", info.created_unix_ms},
          {"alive", info.alive},
          {"paused", info.paused},
          {"n_execs", info.n_execs},
          {"execs_running", info.execs_running},
          {"memory_bytes", info.memory_bytes},
          {"cpu_ms", info.cpu_ms},
          {"oom_kills", info.oom_kills}};
}

json result_json(const ExecResult& r, bool with_output = true) {
  json j = {{"exit_code", r.exit_code}, {"signal", r.signal}, {"truncated", r.truncated},
            {"timed_out", r.timed_out}, {"oom_killed", r.oom_killed}, {"cpu_ms", r.cpu_ms}, {"leftover_processes", r.leftover_processes},
            {"wall_ms", r.wall_ms}};
  if (with_output) {
    j["stdout"] = r.stdout_data;
    j["stderr"] = r.stderr_data;
  }
  return j;
}

// Reads and range-checks the sandbox spec fields shared by create and run.
void read_limits(JsonFields& f, SandboxSpec& spec) {
  f.optional("cpu_millis", &spec.cpu_millis);
  f.optional("memory_mb", &spec.memory_mb);
  f.optional("pids", &spec.pids);
  f.optional("disk_mb", &spec.disk_mb);
  auto range = [&f](const char* key, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) f.fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
  };
  range("cpu_millis", spec.cpu_millis, SpecBounds::kMinCpuMillis, SpecBounds::kMaxCpuMillis);
  range("memory_mb", spec.memory_mb, SpecBounds::kMinMemoryMb, SpecBounds::kMaxMemoryMb);
  range("pids", spec.pids, SpecBounds::kMinPids, SpecBounds::kMaxPids);
  range("disk_mb", spec.disk_mb, SpecBounds::kMinDiskMb, SpecBounds::kMaxDiskMb);
}

void read_network(JsonFields& f, SandboxSpec& spec) {
  std::string network = "none";
  f.optional("network", &network);
  if (network == "none") spec.network = NetworkMode::kNone;
  else if (network == "loopback") spec.network = NetworkMode::kLoopback;
  else if (network == "egress") spec.network = NetworkMode::kEgress;
  else f.fail("network", "must be one of none, loopback, egress (got '" + network + "')");
}

// Seconds (may be fractional) to milliseconds, with a range check.
int64_t read_timeout_ms(JsonFields& f, const char* key, double fallback_s, double max_s) {
  double s = fallback_s;
  f.optional(key, &s);
  if (!(s > 0) || s > max_s) {
    // (no conversion of an out-of-range value: past 9.2e15 s it is undefined behaviour)
    f.fail(key, "must be > 0 and <= " + std::to_string(static_cast<int64_t>(max_s)));
    return 1;
  }
  return std::max<int64_t>(1, static_cast<int64_t>(s * 1000.0));  // a sub-millisecond timeout is 1 ms
}

HttpResponse error(const Status& s) { return HttpResponse::from_status(s); }

// A failure that may come from an admission queue: 429 (queue full) or 503 (waited past the
// deadline), both with Retry-After.
HttpResponse error(const Status& s, const QueueTicket& ticket) {
  if (!ticket.refused) return error(s);
  HttpResponse r = HttpResponse::error(ticket.timed_out ? 503 : 429, s.message());
  r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, ticket.retry_after_s)));
  return r;
}

// The optional "queue_timeout_s": how long the request may wait for a slot on a saturated node.
void read_queue_timeout(JsonFields& f, QueueTicket& ticket) {
  double s = std::numeric_limits<double>::quiet_NaN();  // absent (JSON has no NaN)
  f.optional("queue_timeout_s", &s);
  if (std::isnan(s)) return;
  if (!(s >= 0) || s > 3600) {
    f.fail("queue_timeout_s", "must be in [0, 3600]");
    return;
  }
  ticket.wait_ms = static_cast<int64_t>(s * 1000.0);
}


HttpResponse handle_create(SandboxManager& m, HttpRequest& req) {
  auto call = parse_create_request(req.body);
  if (!call) return error(call.status());
  auto sb = m.create(call->spec, &call->ticket);
  if (!sb) return error(sb.status(), call->ticket);
  return HttpResponse::json(201, info_json(**sb));
}

HttpResponse handle_exec(SandboxManager& m, HttpRequest& req) {
  auto call = parse_exec_request(req.body);
  if (!call) return error(call.status());
  const ExecRequest& exec = call->exec;
  QueueTicket ticket = call->ticket;
  bool stream = call->stream;
  std::string id = req.param("id");
  if (!stream) {
    auto result = m.exec(id, exec, {}, &ticket);
    if (!result) return error(result.status(), ticket);
    return HttpResponse::json(200, result_json(*result));
  }
  if (!m.get(id)) return error(not_found("no sandbox '" + id + "'"));
  return HttpResponse::sse([&m, id, exec, ticket](tidal::http::StreamWriter& w) mutable {
    auto result = m.exec(id, exec, [&w](int stream_no, std::string_view data) {
      json event = {{"data", std::string(data)}};
      w.write_event(event.dump(-1, ' ', false, json::error_handler_t::replace), stream_no == 1 ? "stdout" : "stderr");
    }, &ticket);
    if (!result) {
      w.write_event(json{{"error", {{"message", result.status().message()}}}}.dump(), "error");
      return;
    }
    w.write_event(result_json(*result, false).dump(), "result");
  });
}

HttpResponse handle_files(SandboxManager& m, HttpRequest& req) {
  auto sb = m.get(req.param("id"));
  if (!sb) return error(sb.status());
  auto files = (*sb)->files();
  if (!files) return error(files.status());
  auto path_it = req.query.find("path");
  if (path_it == req.query.end()) return error(invalid_argument("query parameter 'path' is required"));
  const std::string& path = path_it->second;
  if (req.method == "PUT") {
    uint32_t mode = 0644;
    std::string mode_text = req.query_or("mode", "");
    if (!mode_text.empty()) {
      char* end = nullptr;
      unsigned long v = std::strtoul(mode_text.c_str(), &end, 8);
      if (*end || v > 07777) return error(invalid_argument("mode must be octal, e.g. 755"));
      mode = static_cast<uint32_t>(v);
    }
    Status s = files->write(path, req.body, mode);
    if (!s.is_ok()) return error(s);
    return HttpResponse::json(200, {{"path", path}, {"size", req.body.size()}});
  }
  if (req.method == "DELETE") {
    Status s = files->remove(path, req.query_or("recursive") == "1" || req.query_or("recursive") == "true");
    if (!s.is_ok()) return error(s);
    return HttpResponse::json(200, {{"path", path}, {"deleted", true}});
  }
  auto type = files->type_of(path);
  if (!type) return error(type.status());
  if (*type == "dir") {
    auto entries = files->list(path);
    if (!entries) return error(entries.status());
    json list = json::array();
    for (const auto& e : *entries) {
      list.push_back({{"name", e.name}, {"type", e.type}, {"size", e.size}, {"mode", e.mode}, {"mtime", e.mtime}});
    }
    return HttpResponse::json(200, {{"path", path}, {"entries", list}});
  }
  auto data = files->read(path, kMaxFileBytes);
  if (!data) return error(data.status());
  return HttpResponse::text(200, std::move(data).value(), "application/octet-stream");
}

// PUT: unpack a tar (optionally gzip) into ?path=DIR; GET: pack DIR as a tar (?gzip=1 compresses).
HttpResponse handle_archive(SandboxManager& m, HttpRequest& req) {
  auto sb = m.get(req.param("id"));
  if (!sb) return error(sb.status());
  auto files = (*sb)->files();
  if (!files) return error(files.status());
  auto path_it = req.query.find("path");
  if (path_it == req.query.end()) return error(invalid_argument("query parameter 'path' is required"));
  const std::string& path = path_it->second;
  if (req.method == "PUT") {
    ArchiveLimits limits;
    limits.max_bytes = (*sb)->spec().disk_mb << 20;
    auto stats = files->extract_tar(path, req.body, limits);
    if (!stats) return error(stats.status());
    return HttpResponse::json(200, {{"path", path}, {"entries", stats->entries}, {"bytes", stats->bytes}});
  }
  std::string gzip = req.query_or("gzip", "0");
  bool compress = gzip == "1" || gzip == "true";
  auto tar = files->create_tar(path, compress, kMaxFileBytes);
  if (!tar) return error(tar.status());
  return HttpResponse::text(200, std::move(tar).value(), compress ? "application/gzip" : "application/x-tar");
}

HttpResponse handle_run(SandboxManager& m, HttpRequest& req) {
  auto call = parse_run_request(req.body);
  if (!call) return error(call.status());
  const RunRequest& run = call->run;
  QueueTicket ticket = call->ticket;
  auto result = m.run_once(run, &ticket);
  if (!result) return error(result.status(), ticket);
  return HttpResponse::json(200, result_json(*result));
}

json templates_json(const SandboxManager& m) {
  json list = json::array();
  for (const auto& t : m.templates()) {
    json one = {{"name", t->name()}, {"source", t->source()}};
    if (t->name() != "host") one["idmapped"] = t->idmapped();
    if (!t->note().empty()) one["note"] = t->note();
    list.push_back(std::move(one));
  }
  return list;
}

}  // namespace

Expected<CreateCall> parse_create_request(std::string_view text) {
  json body = json::object();
  if (!text.empty()) {
    TIDAL_ASSIGN_OR_RETURN(body, http::parse_json_body(text));
  }
  JsonFields f(body);
  CreateCall call;
  SandboxSpec& spec = call.spec;
  f.optional("template", &spec.template_name);
  read_limits(f, spec);
  f.optional("timeout_s", &spec.timeout_s);
  if (spec.timeout_s < 0 || spec.timeout_s > SpecBounds::kMaxTimeoutS) f.fail("timeout_s", "must be in [0, 604800]");
  read_network(f, spec);
  f.optional("env", &spec.env);
  f.optional("labels", &spec.labels);
  f.optional("lease", &spec.lease);
  read_queue_timeout(f, call.ticket);
  f.reject_unknown();
  if (!f.status().is_ok()) return f.status();
  return call;
}

Expected<ExecCall> parse_exec_request(std::string_view text) {
  if (text.empty()) return invalid_argument("request body is empty; expected a JSON object");
  TIDAL_ASSIGN_OR_RETURN(json body, http::parse_json_body(text));
  JsonFields f(body);
  ExecCall call;
  ExecRequest& exec = call.exec;
  std::string shell;
  f.optional("cmd", &exec.argv);
  f.optional("shell", &shell);
  f.optional("stdin", &exec.stdin_data);
  f.optional("cwd", &exec.cwd);
  f.optional("env", &exec.env);
  f.optional("stream", &call.stream);
  read_queue_timeout(f, call.ticket);
  exec.timeout_ms = read_timeout_ms(f, "timeout_s", 30, kMaxExecTimeoutS);
  f.optional("max_output_bytes", &exec.max_output_bytes);
  if (exec.max_output_bytes < 0 || exec.max_output_bytes > kMaxOutputBytes) {
    f.fail("max_output_bytes", "must be in [0, " + std::to_string(kMaxOutputBytes) + "]");
  }
  f.reject_unknown();
  if (f.status().is_ok()) {
    if (exec.argv.empty() == shell.empty()) f.fail("cmd", "exactly one of 'cmd' (argv array) or 'shell' (string) is required");
    else if (!shell.empty()) exec.argv = {"/bin/sh", "-c", shell};
    if (!exec.cwd.empty() && exec.cwd[0] != '/') f.fail("cwd", "must be an absolute path");
  }
  if (!f.status().is_ok()) return f.status();
  return call;
}

Expected<RunCall> parse_run_request(std::string_view text) {
  if (text.empty()) return invalid_argument("request body is empty; expected a JSON object");
  TIDAL_ASSIGN_OR_RETURN(json body, http::parse_json_body(text));
  JsonFields f(body);
  RunCall call;
  RunRequest& run = call.run;
  f.required("language", &run.language);
  f.required("code", &run.code);
  f.optional("stdin", &run.stdin_data);
  f.optional("files", &run.files);
  run.timeout_ms = read_timeout_ms(f, "timeout_s", 30, 3600);
  f.optional("max_output_bytes", &run.max_output_bytes);
  if (run.max_output_bytes < 0 || run.max_output_bytes > kMaxOutputBytes) {
    f.fail("max_output_bytes", "must be in [0, " + std::to_string(kMaxOutputBytes) + "]");
  }
  f.optional("template", &run.spec.template_name);
  read_limits(f, run.spec);
  read_network(f, run.spec);
  f.optional("lease", &run.spec.lease);
  read_queue_timeout(f, call.ticket);
  f.reject_unknown();
  for (const auto& [path, content] : run.files) {
    Status s = FileAccess::check_path(path);
    if (!s.is_ok()) f.fail("files", s.message());
  }
  if (!f.status().is_ok()) return f.status();
  return call;
}

Expected<std::map<std::string, std::string>> parse_label_filter(const std::string& filter) {
  std::map<std::string, std::string> labels;
  size_t pos = 0;
  while (!filter.empty() && pos <= filter.size()) {
    size_t comma = filter.find(',', pos);
    if (comma == std::string::npos) comma = filter.size();
    std::string pair = filter.substr(pos, comma - pos);
    size_t eq = pair.find('=');
    if (eq == std::string::npos) return invalid_argument("label filter must be key=value[,key=value]");
    labels[pair.substr(0, eq)] = pair.substr(eq + 1);
    pos = comma + 1;
  }
  return labels;
}

void SandboxApi::add_routes(tidal::http::Router& router, SandboxManager& m) {
  router.add("GET", "/health", [&m](HttpRequest&) {
    return HttpResponse::json(200, {{"status", "ok"},
                                    {"live_sandboxes", m.n_live()},
                                    {"warm_ready", m.n_warm()},
                                    {"max_sandboxes", m.options().max_sandboxes},
                                    {"max_execs", m.options().max_execs},
                                    {"create_queue", m.create_queue_depth()},
                                    {"exec_queue", m.exec_queue_depth()},
                                    {"cgroups", m.cgroup_description()},
                                    {"limits_enforced", m.cgroups_enabled()},
                                    {"templates", templates_json(m)}});
  });
  router.add("GET", "/metrics", [&m](HttpRequest&) {
    return HttpResponse::text(200, m.metrics().render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  router.add("POST", "/v1/sandboxes", [&m](HttpRequest& r) { return handle_create(m, r); });
  router.add("GET", "/v1/sandboxes", [&m](HttpRequest& r) {
    auto labels = parse_label_filter(r.query_or("label"));
    if (!labels) return error(labels.status());
    json list = json::array();
    for (const auto& sb : m.list(*labels)) list.push_back(info_json(*sb));
    return HttpResponse::json(200, {{"sandboxes", list}});
  });
  router.add("GET", "/v1/sandboxes/{id}", [&m](HttpRequest& r) {
    auto sb = m.get(r.param("id"));
    if (!sb) return error(sb.status());
    return HttpResponse::json(200, info_json(**sb));
  });
  router.add("DELETE", "/v1/sandboxes/{id}", [&m](HttpRequest& r) {
    Status s = m.destroy(r.param("id"));
    if (!s.is_ok()) return error(s);
    return HttpResponse::json(200, {{"id", r.param("id")}, {"deleted", true}});
  });
  router.add("POST", "/v1/sandboxes/{id}/exec", [&m](HttpRequest& r) { return handle_exec(m, r); });
  for (const char* method : {"GET", "PUT", "DELETE"}) {
    router.add(method, "/v1/sandboxes/{id}/files", [&m](HttpRequest& r) { return handle_files(m, r); });
  }
  for (const char* method : {"GET", "PUT"}) {
    router.add(method, "/v1/sandboxes/{id}/archive", [&m](HttpRequest& r) { return handle_archive(m, r); });
  }
  router.add("POST", "/v1/sandboxes/{id}/fork", [&m](HttpRequest& r) {
    auto sb = m.fork(r.param("id"));
    if (!sb) return error(sb.status());
    return HttpResponse::json(201, info_json(**sb));
  });
  router.add("POST", "/v1/sandboxes/{id}/reset", [&m](HttpRequest& r) {
    auto sb = m.reset(r.param("id"));
    if (!sb) return error(sb.status());
    return HttpResponse::json(200, info_json(**sb));
  });
  for (const char* action : {"pause", "resume"}) {
    bool pause = std::string(action) == "pause";
    router.add("POST", std::string("/v1/sandboxes/{id}/") + action, [&m, pause](HttpRequest& r) {
      auto sb = m.get(r.param("id"));
      if (!sb) return error(sb.status());
      Status s = pause ? (*sb)->pause() : (*sb)->resume();
      if (!s.is_ok()) return error(s);
      return HttpResponse::json(200, info_json(**sb));
    });
  }
  router.add("POST", "/v1/leases", [&m](HttpRequest& r) {
    json body = json::object();
    if (!r.body.empty()) {
      auto parsed = r.json();
      if (!parsed) return error(parsed.status());
      body = std::move(parsed).value();
    }
    JsonFields f(body);
    int64_t ttl_ms = read_timeout_ms(f, "ttl_s", 60, 7 * 24 * 3600);
    f.reject_unknown();
    if (!f.status().is_ok()) return error(f.status());
    auto lease = m.create_lease(ttl_ms);
    if (!lease) return error(lease.status());
    return HttpResponse::json(201, {{"id", lease->id}, {"ttl_s", static_cast<double>(lease->ttl_ms) / 1000.0}});
  });
  router.add("GET", "/v1/leases/{id}", [&m](HttpRequest& r) {
    auto cpu = m.lease_cpu_ms(r.param("id"));
    if (!cpu) return error(cpu.status());
    return HttpResponse::json(200, {{"id", r.param("id")}, {"sandboxes", m.lease_sandboxes(r.param("id"))},
                                    {"cpu_ms", *cpu}});
  });
  router.add("POST", "/v1/leases/{id}/heartbeat", [&m](HttpRequest& r) {
    auto lease = m.heartbeat(r.param("id"));
    if (!lease) return error(lease.status());
    return HttpResponse::json(200, {{"id", lease->id}, {"ttl_s", static_cast<double>(lease->ttl_ms) / 1000.0}});
  });
  router.add("DELETE", "/v1/leases/{id}", [&m](HttpRequest& r) {
    Status s = m.release_lease(r.param("id"));
    if (!s.is_ok()) return error(s);
    return HttpResponse::json(200, {{"id", r.param("id")}, {"released", true}});
  });
  router.add("POST", "/v1/run", [&m](HttpRequest& r) { return handle_run(m, r); });
}

}  // namespace tidal::sandbox
