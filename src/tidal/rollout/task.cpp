#include "tidal/rollout/task.h"

#include "tidal/rollout/tasks.h"

namespace tidal::rollout {

Expected<std::unique_ptr<Task>> make_task(const nlohmann::json& config, const TaskContext& context) {
  if (!context.tokenizer) return invalid_argument("env: the task needs a tokenizer");
  if (!config.is_object()) return invalid_argument("env: expected a table");
  auto it = config.find("name");
  if (it == config.end() || !it->is_string())
    return invalid_argument("env.name: required (count-letters, arith-python, tool-use or qa)");
  const std::string name = it->get<std::string>();
  if (name == "count-letters") return make_count_letters(config, context);
  if (name == "arith-python") return make_arith_python(config, context);
  if (name == "tool-use") return make_tool_use(config, context);
  if (name == "qa") return make_qa(config, context);
  return invalid_argument("env.name: unknown task '" + name + "' (count-letters, arith-python, tool-use or qa)");
}

}  // namespace tidal::rollout
