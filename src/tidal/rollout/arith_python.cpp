// arith-python: a random integer arithmetic problem; the model answers with Python, which the
// reward runs in a sandbox (`POST /v1/run` on one of the run's sandbox hosts, under that host's
// lease; sandbox_pool.h) and checks.
//
// Problem: `terms` operands drawn from 0 .. max_operand joined by operators drawn from `ops`
// ("+", "-", "*", "/" = floor division `//`, "%" = modulo; the operand after "/" or "%" is >= 1),
// with Python's precedence and semantics (floor division and modulo round towards -infinity).
// Prompt (plain text, then the completion starts on the next line):
//   style "words":   "Compute 12 plus 7 times 3 (times, floor-divided by and modulo before plus
//                     and minus). Reply with a Python expression or a Python program that prints
//                     the result.\n"
//   style "symbols": "Compute 12 + 7 * 3. Reply with a Python expression or ... the result.\n"
//
// Answer handling: the turn's token ids are decoded without special tokens (python_cell.h); a
// ``` fenced block, if any, is taken as the code, else the whole text. The code runs as a
// notebook cell: when its last statement is an expression, its value is printed (so a bare
// expression "12 + 7 * 3" and a program "x = 7 * 3\nprint(12 + x)" both print 33). Reward 1 when
// the last non-empty line of stdout is the expected integer ("33", or "33.0" from true division),
// the program exited 0 and did not time out; 0 otherwise (wrong, raised, timed out, no output, empty
// answer: no sandbox call). A sandbox service failure (unreachable, lease gone) is an error of the
// step, not a 0 reward. Splits: train and test (different instances). demonstration(): the
// expression itself, in Python syntax, then the end-of-sequence token. info: sandbox_calls (runs),
// sandbox_timeouts.
//
// Config ([env] table): name = "arith-python", terms (3, 2..6), max_operand (99, 1..1000000), ops
// ("+-*", characters of "+-*/%"), style ("words" | "symbols", default "words"), timeout_s (5, per
// run, (0, 60]), max_tokens (64, per turn, 1..4096), memory_mb (256, 16..4096).
#include <memory>
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

using i128 = __int128;

std::string to_string128(i128 v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  std::string s;
  while (v != 0) {
    int d = static_cast<int>(v % 10);
    s += static_cast<char>('0' + (d < 0 ? -d : d));
    v /= 10;
  }
  if (neg) s += '-';
  return {s.rbegin(), s.rend()};
}

i128 floor_div(i128 a, i128 b) {
  i128 q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

i128 py_mod(i128 a, i128 b) {
  i128 r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

struct Spec {
  int64_t terms = 3, max_operand = 99;
  std::string ops = "+-*";
  std::string style = "words";
  double timeout_s = 5;
  int64_t max_tokens = 64, memory_mb = 256;
};

struct Problem {
  std::vector<int64_t> operands;
  std::string ops;  // operands.size() - 1 operator characters
  std::string expected;

  std::string python() const {
    std::string s = std::to_string(operands[0]);
    for (size_t i = 0; i < ops.size(); ++i) {
      s += ops[i] == '/' ? " // " : std::string(" ") + ops[i] + " ";
      s += std::to_string(operands[i + 1]);
    }
    return s;
  }

  std::string words() const {
    std::string s = std::to_string(operands[0]);
    for (size_t i = 0; i < ops.size(); ++i) {
      switch (ops[i]) {
        case '+': s += " plus "; break;
        case '-': s += " minus "; break;
        case '*': s += " times "; break;
        case '/': s += " floor-divided by "; break;
        default: s += " modulo "; break;
      }
      s += std::to_string(operands[i + 1]);
    }
    return s;
  }
};

// Python's value of the expression: * // % bind tighter than + -, all left-associative.
i128 evaluate(const Problem& p) {
  i128 total = 0, product = p.operands[0];
  int sign = 1;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const i128 v = p.operands[i + 1];
    switch (p.ops[i]) {
      case '*': product *= v; break;
      case '/': product = floor_div(product, v); break;
      case '%': product = py_mod(product, v); break;
      default:
        total += sign * product;
        sign = p.ops[i] == '+' ? 1 : -1;
        product = v;
    }
  }
  return total + sign * product;
}

Problem draw(const Spec& spec, Rng& rng) {
  Problem p;
  p.operands.push_back(int64_t(rng.below(uint64_t(spec.max_operand) + 1)));
  for (int64_t i = 1; i < spec.terms; ++i) {
    const char op = spec.ops[rng.below(spec.ops.size())];
    p.ops += op;
    const bool divisor = op == '/' || op == '%';
    p.operands.push_back(divisor ? 1 + int64_t(rng.below(uint64_t(spec.max_operand)))
                                 : int64_t(rng.below(uint64_t(spec.max_operand) + 1)));
  }
  p.expected = to_string128(evaluate(p));
  return p;
}

std::string prompt_text(const Spec& spec, const Problem& p) {
  std::string q = spec.style == "words" ? p.words() : p.python();
  std::string rule;
  if (spec.style == "words" && p.ops.find_first_of("*/%") != std::string::npos &&
      p.ops.find_first_of("+-") != std::string::npos)
    rule = " (times, floor-divided by and modulo before plus and minus)";
  return "Compute " + q + rule +
         ". Reply with a Python expression or a Python program that prints the result.\n";
}

class ArithPythonEnv final : public Environment {
 public:
  ArithPythonEnv(const Tokenizer& tok, const Spec& spec, std::shared_ptr<SandboxPool> sandboxes, Problem p)
      : tok_(tok), spec_(spec), sandboxes_(std::move(sandboxes)), p_(std::move(p)) {}

  Expected<std::vector<int32_t>> reset() override { return tok_.encode(prompt_text(spec_, p_), false); }

  bool blocking() const override { return true; }

  Expected<EnvStep> step(const std::vector<int32_t>& completion, const std::string& text) override {
    EnvStep s;
    s.done = true;
    s.info["sandbox_calls"] = 0;
    const std::string code = python_cell::strip_fences(python_cell::turn_text(tok_, completion, text));
    if (code.empty()) return s;
    SandboxRun run;
    run.code = python_cell::kDriver;
    run.stdin_data = python_cell::driver_input({}, code);
    run.timeout_s = spec_.timeout_s;
    run.max_output_bytes = 4096;
    run.memory_mb = spec_.memory_mb;
    auto r = sandboxes_->run(run);
    s.info["sandbox_calls"] = 1;
    if (!r) return r.status();
    s.info["sandbox_timeouts"] = r->timed_out ? 1 : 0;
    if (r->ok()) {
      auto got = python_cell::last_integer_line(r->stdout_data);
      s.correct = got && *got == p_.expected;
    }
    s.reward = s.correct ? 1.0 : 0.0;
    return s;
  }

 private:
  const Tokenizer& tok_;
  Spec spec_;
  std::shared_ptr<SandboxPool> sandboxes_;
  Problem p_;
};

class ArithPython final : public Task {
 public:
  ArithPython(const Tokenizer& tok, Spec spec, std::shared_ptr<SandboxPool> sandboxes)
      : tok_(tok), spec_(std::move(spec)), sandboxes_(std::move(sandboxes)) {}
  std::string name() const override { return "arith-python"; }

  Expected<Problem> problem(uint64_t instance, const std::string& split) const {
    uint64_t salt = 0;
    if (split == "train") salt = 1;
    else if (split == "test") salt = 2;
    else return invalid_argument("arith-python: unknown split '" + split + "' (train, test)");
    Rng rng = instance_rng(instance, salt);
    return draw(spec_, rng);
  }

  Expected<std::unique_ptr<Environment>> make(uint64_t instance, const std::string& split) const override {
    TIDAL_ASSIGN_OR_RETURN(Problem p, problem(instance, split));
    return std::unique_ptr<Environment>(std::make_unique<ArithPythonEnv>(tok_, spec_, sandboxes_, std::move(p)));
  }

  SamplingParams turn_params() const override {
    SamplingParams sp;
    sp.max_tokens = static_cast<int32_t>(spec_.max_tokens);
    return sp;
  }

  std::optional<Demonstration> demonstration(uint64_t instance) const override {
    auto p = problem(instance, "train");
    if (!p) return std::nullopt;
    Demonstration d;
    d.prompt = tok_.encode(prompt_text(spec_, *p), false);
    d.completion = tok_.encode(p->python(), false);
    if (auto eos = tok_.eos_id()) d.completion.push_back(*eos);
    return d;
  }

 private:
  const Tokenizer& tok_;
  Spec spec_;
  std::shared_ptr<SandboxPool> sandboxes_;
};

}  // namespace

Expected<std::unique_ptr<Task>> make_arith_python(const nlohmann::json& config, const TaskContext& context) {
  Spec s;
  std::string name;
  http::JsonFields f(config, "env");
  f.required("name", &name);
  f.optional("terms", &s.terms);
  f.optional("max_operand", &s.max_operand);
  f.optional("ops", &s.ops);
  f.optional("style", &s.style);
  read_sandbox_keys(f, &s.timeout_s, &s.max_tokens, &s.memory_mb);
  f.reject_unknown();
  if (s.terms < 2 || s.terms > 6) f.fail("terms", "must be in 2..6, got " + std::to_string(s.terms));
  if (s.max_operand < 1 || s.max_operand > 1000000)
    f.fail("max_operand", "must be in 1..1000000, got " + std::to_string(s.max_operand));
  if (s.ops.empty() || s.ops.find_first_not_of("+-*/%") != std::string::npos)
    f.fail("ops", "must be a non-empty string of the operators + - * / % (got '" + s.ops + "')");
  if (s.style != "words" && s.style != "symbols") f.fail("style", "must be \"words\" or \"symbols\" (got '" + s.style + "')");
  check_sandbox_keys(f, s.timeout_s, s.max_tokens, s.memory_mb);
  if (!f.status().is_ok()) return f.status();
  TIDAL_ASSIGN_OR_RETURN(auto sandboxes, task_sandboxes(context, "arith-python", "answers"));
  return std::unique_ptr<Task>(std::make_unique<ArithPython>(*context.tokenizer, std::move(s), std::move(sandboxes)));
}

}  // namespace tidal::rollout
