// tool-use: multi-turn; the model may run Python in a sandbox before it answers.
//
// Problems (`problems`, default all):
//   sum-squares      "What is the sum of the squares of 3, 17, 42, 8, 11?"
//   product-mod      "What is the product of 3, 17, 42, 8, 11 modulo 97?"
//   count-divisible  "How many integers from 1 to 5000 are divisible by 6 or by 10?"
// with `list_len` values from 1 .. max_value (count-divisible: N in max_value .. 100 * max_value,
// two distinct divisors in 2 .. 12).
//
// Prompt: "Tools: write <python>code</python> to run Python; its output comes back as
// <output>...</output> (variables persist between calls). Finish with <answer>N</answer>.\n
// Question: ...\n". Each model turn ends on "</python>" or "</answer>" (turn_params() stop
// strings) or the end-of-sequence token. A turn is read from its token ids decoded without
// special tokens (python_cell.h), so it works whether or not the caller's text held the stop
// string back, and whether or not the turn closed its tag:
//   - "<answer>" first: the episode ends; reward 1 when an integer follows ("<answer> 42" with or
//     without "</answer>") and equals the expected value, else 0.
//   - "<python>" first: a tool call. The code is what follows, up to "</python>" or the end of the
//     turn. It runs in the trajectory's sandbox (created on the first call on one of the run's
//     sandbox hosts, under its lease, deleted when the episode ends or the Environment is
//     destroyed; every call of the episode goes to that host) with notebook semantics (a
//     final expression is printed). The observation is "<output>" + stdout + stderr (a timeout or
//     OOM kill is reported as a Python-style error line; the middle of long output is cut to
//     max_output_chars; "<|" becomes "< |" so output cannot spell special tokens) +
//     "</output>\n", preceded by "</python>" when the turn did not write it.
//     On the max_turns-th turn a tool call ends the episode with reward 0 (no answer).
//   - neither: the episode ends, reward 0.
// State across turns: each exec is a fresh process (the sandbox service has no long-lived
// interpreter yet), so a call replays the trajectory's earlier cells silently (output discarded,
// exceptions swallowed; cells that timed out are dropped) and then runs the new one: variables,
// functions and imports persist, and files persist because the sandbox does. Side effects of
// earlier cells (appending to a file, random draws) happen again on replay.
//
// demonstration(): `demonstration` = "answer" (default: the one-turn answer "<answer>N</answer>"),
// "tool" (the first turn only: "<python>CODE</python>" that prints the answer; the rest needs the
// tool's output, which SFT does not model) or "none".
//
// Config ([env] table): name = "tool-use", problems (list, default all), list_len (5, 1..64),
// max_value (99, 1..1000000), max_turns (4, 1..16), timeout_s (5, per call, (0, 60]),
// max_output_chars (256, 16..65536), max_tokens (256, per turn, 1..4096), memory_mb (256,
// 16..4096), demonstration. info: sandbox_calls (tool executions), sandbox_timeouts.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "tidal/http/json_fields.h"
#include "tidal/rollout/seed.h"
#include "tidal/rollout/python_cell.h"
#include "tidal/rollout/sandbox_pool.h"
#include "tidal/rollout/tasks.h"

namespace tidal::rollout {
namespace {


using Rng = SplitMix;

const std::vector<std::string> kKinds = {"sum-squares", "product-mod", "count-divisible"};

struct Spec {
  std::vector<std::string> problems = kKinds;
  int64_t list_len = 5, max_value = 99, max_turns = 4;
  double timeout_s = 5;
  int64_t max_output_chars = 256, max_tokens = 256, memory_mb = 256;
  std::string demonstration = "answer";
};

struct Problem {
  std::string question;
  std::string code;  // a cell that prints the answer
  std::string expected;
};

std::string join(const std::vector<int64_t>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
  return s;
}

Problem draw(const Spec& spec, Rng& rng) {
  const std::string& kind = spec.problems[rng.next() % spec.problems.size()];
  Problem p;
  if (kind == "count-divisible") {
    const int64_t n = rng.in(spec.max_value, 100 * spec.max_value);
    const int64_t a = rng.in(2, 12);
    int64_t b = rng.in(2, 11);
    if (b >= a) ++b;
    const int64_t l = std::lcm(a, b);
    p.question = "How many integers from 1 to " + std::to_string(n) + " are divisible by " + std::to_string(a) +
                 " or by " + std::to_string(b) + "?";
    p.code = "print(sum(1 for i in range(1, " + std::to_string(n) + " + 1) if i % " + std::to_string(a) +
             " == 0 or i % " + std::to_string(b) + " == 0))";
    p.expected = std::to_string(n / a + n / b - n / l);
    return p;
  }
  std::vector<int64_t> xs(static_cast<size_t>(spec.list_len));
  for (auto& x : xs) x = rng.in(1, spec.max_value);
  if (kind == "sum-squares") {
    int64_t sum = 0;
    for (int64_t x : xs) sum += x * x;
    p.question = "What is the sum of the squares of " + join(xs, ", ") + "?";
    p.code = "print(sum(x * x for x in [" + join(xs, ", ") + "]))";
    p.expected = std::to_string(sum);
    return p;
  }
  const int64_t m = rng.in(7, 997);  // product-mod
  int64_t prod = 1 % m;
  for (int64_t x : xs) prod = prod * (x % m) % m;
  p.question = "What is the product of " + join(xs, ", ") + " modulo " + std::to_string(m) + "?";
  p.code = "import math\nprint(math.prod([" + join(xs, ", ") + "]) % " + std::to_string(m) + ")";
  p.expected = std::to_string(prod);
  return p;
}

std::string prompt_text(const Problem& p) {
  return "Tools: write <python>code</python> to run Python; its output comes back as <output>...</output> "
         "(variables persist between calls). Finish with <answer>N</answer>.\nQuestion: " +
         p.question + "\n";
}

// The integer after "<answer>" at `at` (spaces allowed around it), followed by "</answer>" or the
// end of the turn; nullopt otherwise.
std::optional<std::string> read_answer(const std::string& t, size_t at) {
  size_t i = at + std::string("<answer>").size();
  auto space = [&](size_t k) { return k < t.size() && std::isspace(static_cast<unsigned char>(t[k])); };
  while (space(i)) ++i;
  size_t j = i;
  if (j < t.size() && (t[j] == '-' || t[j] == '+')) ++j;
  while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) ++j;
  const std::string number = t.substr(i, j - i);
  while (space(j)) ++j;
  if (j != t.size() && t.compare(j, 9, "</answer>") != 0) return std::nullopt;
  return python_cell::canonical_integer(number);
}

class ToolUseEnv final : public Environment {
 public:
  ToolUseEnv(const Tokenizer& tok, Spec spec, std::shared_ptr<SandboxPool> sandboxes, Problem p)
      : tok_(tok), spec_(std::move(spec)), sandboxes_(std::move(sandboxes)), p_(std::move(p)) {}
  ~ToolUseEnv() override { drop_sandbox(); }

  Expected<std::vector<int32_t>> reset() override { return tok_.encode(prompt_text(p_), false); }

  bool blocking() const override { return true; }

  Expected<EnvStep> step(const std::vector<int32_t>& completion, const std::string& text) override {
    if (done_) return invalid_argument("tool-use: step() after the episode ended");
    ++turn_;
    const std::string t = python_cell::turn_text(tok_, completion, text);
    EnvStep s;
    s.info["sandbox_calls"] = 0;
    const size_t answer = t.find("<answer>"), call = t.find("<python>");
    if (answer != std::string::npos && (call == std::string::npos || answer < call)) {
      auto got = read_answer(t, answer);
      s.correct = got && *got == p_.expected;
      return finish(std::move(s));
    }
    if (call == std::string::npos || turn_ >= spec_.max_turns) return finish(std::move(s));

    const size_t code_at = call + std::string("<python>").size();
    const size_t close = t.find("</python>", code_at);
    const std::string code = t.substr(code_at, close == std::string::npos ? std::string::npos : close - code_at);
    if (sandbox_.empty()) {
      SandboxCreate spec;
      spec.memory_mb = spec_.memory_mb;
      spec.timeout_s = 3600;  // a backstop: the lease or the episode's end deletes it much earlier
      spec.labels = {{"tidal-task", "tool-use"}};
      TIDAL_ASSIGN_OR_RETURN(sandbox_, sandboxes_->create_sandbox(spec));
    }
    SandboxExec exec;
    exec.argv = {"python3", "-c", python_cell::kDriver};
    exec.stdin_data = python_cell::driver_input(history_, code);
    exec.timeout_s = spec_.timeout_s;
    exec.max_output_bytes = std::max<int64_t>(4096, 4 * spec_.max_output_chars);
    auto r = sandboxes_->exec(sandbox_, exec);
    s.info["sandbox_calls"] = 1;
    if (!r) return r.status();
    s.info["sandbox_timeouts"] = r->timed_out ? 1 : 0;
    std::string out = r->stdout_data + r->stderr_data;
    if (r->timed_out) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", spec_.timeout_s);
      out += "TimeoutError: the cell ran longer than " + std::string(buf) + " s\n";
    } else {
      history_.push_back(code);
      if (r->oom_killed) out += "MemoryError: the cell ran out of memory\n";
    }
    out = python_cell::truncate_middle(out, static_cast<size_t>(spec_.max_output_chars));
    // The output is data: break up special-token spellings ("<|im_end|>") so that a program
    // cannot put control tokens into the context.
    std::string shown;
    for (size_t i = 0; i < out.size(); ++i) {
      shown += out[i];
      if (out[i] == '<' && i + 1 < out.size() && out[i + 1] == '|') shown += ' ';
    }
    const std::string obs =
        std::string(close == std::string::npos ? "</python>" : "") + "<output>" + shown + "</output>\n";
    s.observation = tok_.encode(obs, false);
    return s;
  }

 private:
  EnvStep finish(EnvStep s) {
    done_ = true;
    s.done = true;
    s.reward = s.correct ? 1.0 : 0.0;
    drop_sandbox();
    return s;
  }

  void drop_sandbox() {
    if (sandbox_.empty()) return;
    (void)sandboxes_->delete_sandbox(sandbox_);  // gone already (lease ended) is fine
    sandbox_ = {};
  }

  const Tokenizer& tok_;
  Spec spec_;
  std::shared_ptr<SandboxPool> sandboxes_;
  Problem p_;
  int64_t turn_ = 0;
  bool done_ = false;
  SandboxHandle sandbox_;  // on one of the run's hosts; its execs go there
  std::vector<std::string> history_;
};

class ToolUse final : public Task {
 public:
  ToolUse(const Tokenizer& tok, Spec spec, std::shared_ptr<SandboxPool> sandboxes)
      : tok_(tok), spec_(std::move(spec)), sandboxes_(std::move(sandboxes)) {}
  std::string name() const override { return "tool-use"; }
  int max_turns() const override { return static_cast<int>(spec_.max_turns); }

  Expected<Problem> problem(uint64_t instance, const std::string& split) const {
    uint64_t salt = 0;
    if (split == "train") salt = 1;
    else if (split == "test") salt = 2;
    else return invalid_argument("tool-use: unknown split '" + split + "' (train, test)");
    Rng rng = instance_rng(instance, salt);
    return draw(spec_, rng);
  }

  Expected<std::unique_ptr<Environment>> make(uint64_t instance, const std::string& split) const override {
    TIDAL_ASSIGN_OR_RETURN(Problem p, problem(instance, split));
    return std::unique_ptr<Environment>(std::make_unique<ToolUseEnv>(tok_, spec_, sandboxes_, std::move(p)));
  }

  SamplingParams turn_params() const override {
    SamplingParams sp;
    sp.max_tokens = static_cast<int32_t>(spec_.max_tokens);
    sp.stop = {"</python>", "</answer>"};
    return sp;
  }

  std::optional<Demonstration> demonstration(uint64_t instance) const override {
    if (spec_.demonstration == "none") return std::nullopt;
    auto p = problem(instance, "train");
    if (!p) return std::nullopt;
    Demonstration d;
    d.prompt = tok_.encode(prompt_text(*p), false);
    // The turn ends on its stop string, so no end-of-sequence token.
    d.completion = tok_.encode(spec_.demonstration == "tool" ? "<python>" + p->code + "</python>"
                                                             : "<answer>" + p->expected + "</answer>",
                               false);
    return d;
  }

 private:
  const Tokenizer& tok_;
  Spec spec_;
  std::shared_ptr<SandboxPool> sandboxes_;
};

}  // namespace

Expected<std::unique_ptr<Task>> make_tool_use(const nlohmann::json& config, const TaskContext& context) {
  Spec s;
  std::string name;
  http::JsonFields f(config, "env");
  f.required("name", &name);
  f.optional("problems", &s.problems);
  f.optional("list_len", &s.list_len);
  f.optional("max_value", &s.max_value);
  f.optional("max_turns", &s.max_turns);
  read_sandbox_keys(f, &s.timeout_s, &s.max_tokens, &s.memory_mb);
  f.optional("max_output_chars", &s.max_output_chars);
  f.optional("demonstration", &s.demonstration);
  f.reject_unknown();
  if (s.problems.empty()) f.fail("problems", "must list at least one of sum-squares, product-mod, count-divisible");
  for (const auto& k : s.problems) {
    if (std::find(kKinds.begin(), kKinds.end(), k) == kKinds.end())
      f.fail("problems", "has unknown problem '" + k + "' (sum-squares, product-mod, count-divisible)");
  }
  if (s.list_len < 1 || s.list_len > 64) f.fail("list_len", "must be in 1..64, got " + std::to_string(s.list_len));
  if (s.max_value < 1 || s.max_value > 1000000)
    f.fail("max_value", "must be in 1..1000000, got " + std::to_string(s.max_value));
  if (s.max_turns < 1 || s.max_turns > 16) f.fail("max_turns", "must be in 1..16, got " + std::to_string(s.max_turns));
  check_sandbox_keys(f, s.timeout_s, s.max_tokens, s.memory_mb);
  if (s.max_output_chars < 16 || s.max_output_chars > 65536) f.fail("max_output_chars", "must be in 16..65536");
  if (s.demonstration != "answer" && s.demonstration != "tool" && s.demonstration != "none")
    f.fail("demonstration", "must be \"answer\", \"tool\" or \"none\" (got '" + s.demonstration + "')");
  if (!f.status().is_ok()) return f.status();
  TIDAL_ASSIGN_OR_RETURN(auto sandboxes, task_sandboxes(context, "tool-use", "the python tool"));
  return std::unique_ptr<Task>(std::make_unique<ToolUse>(*context.tokenizer, std::move(s), std::move(sandboxes)));
}

}  // namespace tidal::rollout
