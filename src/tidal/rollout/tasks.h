// The built-in tasks' factories (make_task in task.h dispatches on config["name"]). Each reads its
// own keys from `config` with http::JsonFields (where = "env") and rejects unknown ones.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"
#include "tidal/http/json_fields.h"
#include "tidal/rollout/sandbox_pool.h"
#include "tidal/rollout/task.h"

namespace tidal::rollout {

Expected<std::unique_ptr<Task>> make_count_letters(const nlohmann::json& config, const TaskContext& context);
// arith-python and tool-use run model-written Python on context.sandboxes (required).
Expected<std::unique_ptr<Task>> make_arith_python(const nlohmann::json& config, const TaskContext& context);
Expected<std::unique_ptr<Task>> make_tool_use(const nlohmann::json& config, const TaskContext& context);
// qa: the declarative form (prompt/answer items in the config or a JSONL file; qa_task.cpp).
Expected<std::unique_ptr<Task>> make_qa(const nlohmann::json& config, const TaskContext& context);

// Shared by the tasks that run code in sandboxes (arith-python, tool-use): their common keys
// timeout_s (per run, (0, 60]), max_tokens (per turn, 1..4096) and memory_mb (16..4096), read
// and range-checked into `f` (defaults stay with the caller), and the task's sandbox hosts
// (an error naming `task` and `what` it runs when the context has none).
void read_sandbox_keys(http::JsonFields& f, double* timeout_s, int64_t* max_tokens, int64_t* memory_mb);
void check_sandbox_keys(http::JsonFields& f, double timeout_s, int64_t max_tokens, int64_t memory_mb);
Expected<std::shared_ptr<SandboxPool>> task_sandboxes(const TaskContext& context, const std::string& task,
                                                      const std::string& what);

}  // namespace tidal::rollout
