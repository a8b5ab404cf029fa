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

void read_sandbox_keys(http::JsonFields& f, double* timeout_s, int64_t* max_tokens, int64_t* memory_mb) {
  f.optional("timeout_s", timeout_s);
  f.optional("max_tokens", max_tokens);
  f.optional("memory_mb", memory_mb);
}

void check_sandbox_keys(http::JsonFields& f, double timeout_s, int64_t max_tokens, int64_t memory_mb) {
  if (!(timeout_s > 0) || timeout_s > 60) f.fail("timeout_s", "must be in (0, 60]");
  if (max_tokens < 1 || max_tokens > 4096) f.fail("max_tokens", "must be in 1..4096");
  if (memory_mb < 16 || memory_mb > 4096) f.fail("memory_mb", "must be in 16..4096");
}

Expected<std::shared_ptr<SandboxPool>> task_sandboxes(const TaskContext& context, const std::string& task,
                                                      const std::string& what) {
  if (!context.sandboxes)
    return invalid_argument("env: " + task + " runs " + what +
                            " in a sandbox; no sandbox service url was given ([sandbox] url or urls)");
  return context.sandboxes;
}

}  // namespace tidal::rollout
