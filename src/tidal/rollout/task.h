// Tasks and environments: what the RL loop trains on.
//
//   Task (one per run, from the config's [env] table)      make(instance, split) -> Environment
//   Environment (one per trajectory, multi-turn)            reset() -> prompt ids; step(turn) -> EnvStep
//
// A trajectory is: prompt = reset(); repeat { completion = generate(context); r = step(completion);
// if r.done: reward; else context += completion + r.observation }. Observation tokens (tool
// output) are part of the context but never trained on (loss mask 0).
//
// Environments see both token ids and text (decoded by the run's tokenizer): tasks that parse
// answers work on text, the manager keeps ids (no re-tokenisation drift between turns).
//
// Thread-safety: a Task is shared by every thread (make/demonstration are const and
// thread-safe); an Environment is used by one thread at a time. Environments whose step() calls
// remote services (sandboxes) return blocking() = true and are stepped on a worker pool, off the
// rollout event loop.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"
#include "tidal/engine/sampling_params.h"
#include "tidal/tokenizer/tokenizer.h"

namespace tidal::rollout {

struct EnvStep {
  bool done = false;
  double reward = 0;                 // meaningful when done
  bool correct = false;              // counted as accuracy when done
  std::vector<int32_t> observation;  // !done: appended to the context before the next turn
  std::map<std::string, double> info;  // summed into metrics (e.g. "sandbox_calls")
};

class Environment {
 public:
  virtual ~Environment() = default;
  // The first prompt (token ids). Called once, before step().
  virtual Expected<std::vector<int32_t>> reset() = 0;
  // One model turn: its token ids (stop token included when it stopped on one) and their text.
  // An error fails the trajectory (counted, not trained on).
  virtual Expected<EnvStep> step(const std::vector<int32_t>& completion, const std::string& text) = 0;
  // True when step() may block (network calls): the manager runs it on a worker thread.
  virtual bool blocking() const { return false; }
};

// A supervised demonstration: prompt ids and the completion to learn (loss on the completion).
struct Demonstration {
  std::vector<int32_t> prompt;
  std::vector<int32_t> completion;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // Instance `instance` (any 64-bit value; the same value gives the same problem) of `split`
  // ("train" or one of eval_splits()). Errors: unknown split.
  virtual Expected<std::unique_ptr<Environment>> make(uint64_t instance, const std::string& split) const = 0;
  // Held-out evaluation splits; the first is the main one ("test"), others are probes.
  virtual std::vector<std::string> eval_splits() const { return {"test"}; }
  // Per-turn generation limits (max_tokens, stop ids/strings); the loop sets temperature, seed, n.
  virtual SamplingParams turn_params() const = 0;
  virtual int max_turns() const { return 1; }
  // A demonstration for SFT warm-up, when the task can generate one.
  virtual std::optional<Demonstration> demonstration(uint64_t instance) const { (void)instance; return std::nullopt; }
};

class SandboxPool;

// Services a task may need (absent ones are empty).
struct TaskContext {
  const Tokenizer* tokenizer = nullptr;  // required
  // The run's `tidal sandbox serve` hosts, each under the run's lease (sandbox_pool.h); needed by
  // arith-python and tool-use. Null: no sandbox service.
  std::shared_ptr<SandboxPool> sandboxes;
};

// Builds the task named by `config["name"]` ("count-letters", "arith-python", "tool-use") from the
// rest of the table; unknown keys and bad values are errors naming the key ("env.min_len: ...").
Expected<std::unique_ptr<Task>> make_task(const nlohmann::json& config, const TaskContext& context);

}  // namespace tidal::rollout
