// SandboxApi: the HTTP/JSON API of the sandbox service (documented in docs/sandbox-api.md).
//
// add_routes() registers every endpoint on a Router; the handlers call the SandboxManager, which
// must outlive the server. Validation happens here: malformed JSON, wrong types, unknown fields and
// out-of-range limits are 400 with a message naming the field; unknown ids are 404; a full node is
// 429; a path escaping the sandbox is 400.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "tidal/http/router.h"
#include "tidal/sandbox/sandbox_manager.h"

namespace tidal::sandbox {

// Request parsing, separate from execution (and the fuzz target's entry points): the JSON body of
// POST /v1/sandboxes (may be empty: all defaults), .../exec and /v1/run, and the ?label= filter.
// Errors are kInvalidArgument naming the field at fault; nothing here touches the host.
struct CreateCall {
  SandboxSpec spec;
  QueueTicket ticket;
};
struct ExecCall {
  ExecRequest exec;
  bool stream = false;
  QueueTicket ticket;
};
struct RunCall {
  RunRequest run;
  QueueTicket ticket;
};
[[nodiscard]] Expected<CreateCall> parse_create_request(std::string_view body);
[[nodiscard]] Expected<ExecCall> parse_exec_request(std::string_view body);
[[nodiscard]] Expected<RunCall> parse_run_request(std::string_view body);
[[nodiscard]] Expected<std::map<std::string, std::string>> parse_label_filter(const std::string& filter);

class SandboxApi {
 public:
  static void add_routes(tidal::http::Router& router, SandboxManager& manager);
};

}  // namespace tidal::sandbox
