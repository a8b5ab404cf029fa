// count-letters (MISSION.md part 4): "how many times does letter L occur in string S?"
//
// Prompt text "^" + S + ":" + L + "=", answer the count's digits then the end-of-sequence token.
// The count is drawn uniformly from 0 .. min(max_count, |S|) and the other positions are filled
// with letters other than L, so the task measures counting (with uniform random strings the
// answer is almost always 0 or 1). Splits:
//   train          letters from `letters`, lengths min_len .. max_len
//   test           the same distribution, other instances (held out)
//   probe-letters  query letters from `probe_letters` (e.g. n-z when training on a-m)
//   probe-length   lengths probe_min_len .. probe_max_len (e.g. 21-30 when training on 5-20)
// Reward 1 when the answer (text before the stop) is exactly the count, else 0.
//
// Answer formats (`answer`):
//   direct         "3"                              (the count's digit)
//   running-count  "001223>3": for each character of S, how many L's so far, then ">" and the
//                  count. A chain of thought aligned with the characters: each step is a local
//                  decision (is this character L? add one), which a 4-layer model can learn where
//                  counting in one step is hard. Only the part after the last ">" is graded.
//   echo-count     "x0k0r1r2p2r3>3": each character of S copied, then the count so far, then ">"
//                  and the count. The same chain, but the character each step looks at is the one
//                  just written (running-count must find S[i] at a distance that depends on |S|).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

#include "tidal/http/json_fields.h"
#include "tidal/rollout/tasks.h"
#include "tidal/rollout/seed.h"

namespace tidal::rollout {
namespace {


using Rng = SplitMix;

struct Problem {
  std::string text;  // S
  char letter = 'a';
  int count = 0;
};

struct Spec {
  std::string alphabet = "abcdefghijklmnopqrstuvwxyz";
  std::string letters = "abcdefghijklmnopqrstuvwxyz";
  int64_t min_len = 5, max_len = 20, max_count = 9;
  std::string probe_letters;
  int64_t probe_min_len = 0, probe_max_len = 0;
  std::string answer = "direct";  // direct | running-count | echo-count
};

// The prompt "^S:L=".
std::string prompt_text(const Problem& p) { return "^" + p.text + ":" + std::string(1, p.letter) + "="; }

// The demonstration's answer text for `p` in the chosen format.
std::string answer_text(const Problem& p, const std::string& format) {
  if (format == "direct") return std::to_string(p.count);
  std::string s;
  int so_far = 0;
  for (char c : p.text) {
    so_far += c == p.letter;
    if (format == "echo-count") s += c;
    s += char('0' + so_far);
  }
  return s + ">" + std::to_string(p.count);
}

Problem draw(const std::string& alphabet, const std::string& letters, int64_t min_len, int64_t max_len,
             int64_t max_count, Rng& rng) {
  Problem p;
  const int64_t len = min_len + int64_t(rng.below(uint64_t(max_len - min_len + 1)));
  p.letter = letters[rng.below(letters.size())];
  p.count = int(rng.below(uint64_t(std::min<int64_t>(max_count, len) + 1)));
  std::string others;
  for (char c : alphabet)
    if (c != p.letter) others += c;
  p.text.assign(size_t(len), ' ');
  // `count` distinct positions (partial Fisher-Yates), the letter there, other letters elsewhere.
  std::vector<int64_t> pos(static_cast<size_t>(len));
  for (int64_t i = 0; i < len; ++i) pos[size_t(i)] = i;
  for (int i = 0; i < p.count; ++i) std::swap(pos[size_t(i)], pos[size_t(i) + rng.below(uint64_t(len - i))]);
  for (int i = 0; i < len; ++i) p.text[size_t(i)] = others[rng.below(others.size())];
  for (int i = 0; i < p.count; ++i) p.text[size_t(pos[size_t(i)])] = p.letter;
  return p;
}

class CountLettersEnv final : public Environment {
 public:
  CountLettersEnv(const Tokenizer& tok, Problem p, bool chain)
      : tok_(tok), p_(std::move(p)), chain_(chain) {}
  Expected<std::vector<int32_t>> reset() override {
    return tok_.encode(prompt_text(p_), false);
  }
  Expected<EnvStep> step(const std::vector<int32_t>&, const std::string& text) override {
    EnvStep s;
    s.done = true;
    std::string answer = text;
    if (chain_) {  // the final answer follows the last '>'; without one it is wrong
      const size_t gt = text.rfind('>');
      answer = gt == std::string::npos ? std::string() : text.substr(gt + 1);
    }
    s.correct = answer == std::to_string(p_.count);
    s.reward = s.correct ? 1.0 : 0.0;
    return s;
  }

 private:
  const Tokenizer& tok_;
  Problem p_;
  bool chain_;  // a chain of thought before ">" and the answer
};

class CountLetters final : public Task {
 public:
  CountLetters(const Tokenizer& tok, Spec spec) : tok_(tok), spec_(std::move(spec)) {}
  std::string name() const override { return "count-letters"; }

  std::vector<std::string> eval_splits() const override {
    std::vector<std::string> s = {"test"};
    if (!spec_.probe_letters.empty()) s.push_back("probe-letters");
    if (spec_.probe_max_len > 0) s.push_back("probe-length");
    return s;
  }

  Expected<Problem> problem(uint64_t instance, const std::string& split) const {
    uint64_t salt = 0;
    const std::string* letters = &spec_.letters;
    int64_t lo = spec_.min_len, hi = spec_.max_len;
    if (split == "train") salt = 1;
    else if (split == "test") salt = 2;
    else if (split == "probe-letters" && !spec_.probe_letters.empty()) salt = 3, letters = &spec_.probe_letters;
    else if (split == "probe-length" && spec_.probe_max_len > 0) salt = 4, lo = spec_.probe_min_len, hi = spec_.probe_max_len;
    else return invalid_argument("count-letters: unknown split '" + split + "'");
    Rng rng = instance_rng(instance, salt);
    return draw(spec_.alphabet, *letters, lo, hi, spec_.max_count, rng);
  }

  Expected<std::unique_ptr<Environment>> make(uint64_t instance, const std::string& split) const override {
    auto p = problem(instance, split);
    if (!p) return p.status();
    return std::unique_ptr<Environment>(std::make_unique<CountLettersEnv>(tok_, std::move(*p), spec_.answer != "direct"));
  }

  SamplingParams turn_params() const override {
    SamplingParams sp;
    // direct: one digit, the stop token, one spare (a wrong format is just wrong). running-count:
    // one digit per character of the longest string of any split (echo-count: two), ">", the
    // count, the stop, a spare.
    sp.max_tokens = 3;
    const int longest = int(std::max(spec_.max_len, spec_.probe_max_len));
    if (spec_.answer == "running-count") sp.max_tokens = longest + 4;
    if (spec_.answer == "echo-count") sp.max_tokens = 2 * longest + 4;
    return sp;
  }

  std::optional<Demonstration> demonstration(uint64_t instance) const override {
    auto p = problem(instance, "train");
    if (!p) return std::nullopt;
    Demonstration d;
    d.prompt = tok_.encode(prompt_text(*p), false);
    d.completion = tok_.encode(answer_text(*p, spec_.answer), false);
    if (auto eos = tok_.eos_id()) d.completion.push_back(*eos);
    return d;
  }

 private:
  const Tokenizer& tok_;
  Spec spec_;
};

Status check_letters(const std::string& key, const std::string& s, const std::string& alphabet) {
  if (s.empty()) return invalid_argument("env." + key + ": must not be empty");
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)))
      return invalid_argument("env." + key + ": only letters and digits are allowed");
    if (key != "alphabet" && alphabet.find(c) == std::string::npos)
      return invalid_argument("env." + key + ": '" + std::string(1, c) + "' is not in env.alphabet");
  }
  return Status::ok();
}

}  // namespace

Expected<std::unique_ptr<Task>> make_count_letters(const nlohmann::json& config, const TaskContext& context) {
  Spec s;
  std::string name;
  http::JsonFields f(config, "env");
  f.required("name", &name);
  f.optional("alphabet", &s.alphabet);
  f.optional("letters", &s.letters);
  f.optional("min_len", &s.min_len);
  f.optional("max_len", &s.max_len);
  f.optional("max_count", &s.max_count);
  f.optional("probe_letters", &s.probe_letters);
  f.optional("probe_min_len", &s.probe_min_len);
  f.optional("probe_max_len", &s.probe_max_len);
  f.optional("answer", &s.answer);
  f.reject_unknown();
  if (!f.status().is_ok()) return f.status();
  for (auto [key, val] : {std::pair{"alphabet", &s.alphabet}, {"letters", &s.letters}}) {
    if (auto st = check_letters(key, *val, s.alphabet); !st.is_ok()) return st;
  }
  if (!s.probe_letters.empty()) {
    if (auto st = check_letters("probe_letters", s.probe_letters, s.alphabet); !st.is_ok()) return st;
  }
  if (s.answer != "direct" && s.answer != "running-count" && s.answer != "echo-count")
    return invalid_argument("env.answer: unknown format '" + s.answer + "' (direct, running-count or echo-count)");
  if (s.alphabet.size() < 2) return invalid_argument("env.alphabet: needs at least 2 letters");
  if (s.min_len < 1 || s.max_len < s.min_len || s.max_len > 4096)
    return invalid_argument("env.min_len/max_len: need 1 <= min_len <= max_len <= 4096");
  if (s.max_count < 0 || s.max_count > 9) return invalid_argument("env.max_count: must be in 0..9 (one digit)");
  if (s.probe_max_len > 0 && (s.probe_min_len < 1 || s.probe_max_len < s.probe_min_len || s.probe_max_len > 4096))
    return invalid_argument("env.probe_min_len/probe_max_len: need 1 <= probe_min_len <= probe_max_len <= 4096");
  return std::unique_ptr<Task>(std::make_unique<CountLetters>(*context.tokenizer, std::move(s)));
}

}  // namespace tidal::rollout
