// The built-in tasks' factories (make_task in task.h dispatches on config["name"]). Each reads its
// own keys from `config` with http::JsonFields (where = "env") and rejects unknown ones.
#pragma once

#include <memory>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"
#include "tidal/rollout/task.h"

namespace tidal::rollout {

Expected<std::unique_ptr<Task>> make_count_letters(const nlohmann::json& config, const TaskContext& context);
// arith-python and tool-use run model-written Python through context.sandbox_url (required).
Expected<std::unique_ptr<Task>> make_arith_python(const nlohmann::json& config, const TaskContext& context);
Expected<std::unique_ptr<Task>> make_tool_use(const nlohmann::json& config, const TaskContext& context);
// qa: the declarative form (prompt/answer items in the config or a JSONL file; qa_task.cpp).
Expected<std::unique_ptr<Task>> make_qa(const nlohmann::json& config, const TaskContext& context);

}  // namespace tidal::rollout
