// SandboxApi: the HTTP/JSON API of the sandbox service (documented in docs/sandbox-api.md).
//
// add_routes() registers every endpoint on a Router; the handlers call the SandboxManager, which
// must outlive the server. Validation happens here: malformed JSON, wrong types, unknown fields and
// out-of-range limits are 400 with a message naming the field; unknown ids are 404; a full node is
// 429; a path escaping the sandbox is 400.
#pragma once

#include "tidal/http/router.h"
#include "tidal/sandbox/sandbox_manager.h"

namespace tidal::sandbox {

class SandboxApi {
 public:
  static void add_routes(tidal::http::Router& router, SandboxManager& manager);
};

}  // namespace tidal::sandbox
