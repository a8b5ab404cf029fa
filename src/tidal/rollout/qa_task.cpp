// `qa`: the declarative task. Problems are written in the config (or a JSONL file), no C++:
//
//   [env]
//   name = "qa"
//   match = "exact"            # exact | contains | regex (ECMAScript; the answer is the pattern)
//   test_fraction = 0.2        # held out for evaluation (by a hash of the prompt: stable)
//   max_tokens = 16
//   file = "problems.jsonl"    # lines {"prompt": "...", "answer": "..."}; and/or inline:
//   [[env.items]]
//   prompt = "2+3="
//   answer = "5"
//
// Single turn. The completion's text (special tokens skipped, surrounding whitespace trimmed) is
// compared with the answer; reward 1 on a match. demonstration() is the answer then the
// end-of-sequence token, so `sft.steps` warms the model up on the train items.
#include <fstream>
#include <regex>

#include "tidal/http/json_fields.h"
#include "tidal/rollout/seed.h"
#include "tidal/rollout/tasks.h"

namespace tidal::rollout {
namespace {

struct Item {
  std::string prompt, answer;
  std::optional<std::regex> pattern;
};

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

class QaEnv final : public Environment {
 public:
  QaEnv(const Tokenizer& tok, const Item& item, const std::string& match) : tok_(tok), item_(item), match_(match) {}
  Expected<std::vector<int32_t>> reset() override { return tok_.encode(item_.prompt, false); }
  Expected<EnvStep> step(const std::vector<int32_t>&, const std::string& text) override {
    const std::string got = trim(text);
    EnvStep s;
    s.done = true;
    if (match_ == "exact") s.correct = got == item_.answer;
    else if (match_ == "contains") s.correct = got.find(item_.answer) != std::string::npos;
    else s.correct = std::regex_match(got, *item_.pattern);
    s.reward = s.correct ? 1.0 : 0.0;
    return s;
  }

 private:
  const Tokenizer& tok_;
  const Item& item_;
  const std::string& match_;
};

class QaTask final : public Task {
 public:
  QaTask(const Tokenizer& tok, std::vector<Item> train, std::vector<Item> test, std::string match, int64_t max_tokens)
      : tok_(tok), train_(std::move(train)), test_(std::move(test)), match_(std::move(match)), max_tokens_(max_tokens) {}
  std::string name() const override { return "qa"; }
  Expected<std::unique_ptr<Environment>> make(uint64_t instance, const std::string& split) const override {
    const std::vector<Item>* items = split == "train" ? &train_ : split == "test" ? &test_ : nullptr;
    if (!items) return invalid_argument("qa: unknown split '" + split + "' (train, test)");
    if (items->empty()) return invalid_argument("qa: the " + split + " split has no items");
    return std::unique_ptr<Environment>(std::make_unique<QaEnv>(tok_, (*items)[instance % items->size()], match_));
  }
  SamplingParams turn_params() const override {
    SamplingParams p;
    p.max_tokens = int32_t(max_tokens_);
    return p;
  }
  std::optional<Demonstration> demonstration(uint64_t instance) const override {
    if (train_.empty()) return std::nullopt;
    const Item& it = train_[instance % train_.size()];
    Demonstration d;
    d.prompt = tok_.encode(it.prompt, false);
    d.completion = tok_.encode(it.answer, false);
    if (auto eos = tok_.eos_id()) d.completion.push_back(*eos);
    return d;
  }

 private:
  const Tokenizer& tok_;
  std::vector<Item> train_, test_;
  std::string match_;
  int64_t max_tokens_;
};

Status read_item(const nlohmann::json& j, const std::string& where, std::vector<Item>* out) {
  Item it;
  http::JsonFields f(j, where);
  f.required("prompt", &it.prompt);
  f.required("answer", &it.answer);
  f.reject_unknown();
  if (!f.status().is_ok()) return f.status();
  if (it.prompt.empty()) return invalid_argument(where + ".prompt: must not be empty");
  out->push_back(std::move(it));
  return Status::ok();
}

}  // namespace

Expected<std::unique_ptr<Task>> make_qa(const nlohmann::json& config, const TaskContext& context) {
  std::string name, match = "exact", file;
  double test_fraction = 0.2;
  int64_t max_tokens = 16;
  nlohmann::json inline_items;
  http::JsonFields f(config, "env");
  f.required("name", &name);
  f.optional("match", &match);
  f.optional("test_fraction", &test_fraction);
  f.optional("max_tokens", &max_tokens);
  f.optional("file", &file);
  f.optional("items", &inline_items);
  f.reject_unknown();
  if (!f.status().is_ok()) return f.status();
  if (match != "exact" && match != "contains" && match != "regex")
    return invalid_argument("env.match: must be exact, contains or regex");
  if (!(test_fraction >= 0 && test_fraction < 1)) return invalid_argument("env.test_fraction: must be in [0, 1)");
  if (max_tokens < 1 || max_tokens > 4096) return invalid_argument("env.max_tokens: must be in 1..4096");
  std::vector<Item> items;
  if (!inline_items.is_null()) {
    if (!inline_items.is_array()) return invalid_argument("env.items: expected an array of {prompt, answer} tables");
    for (size_t i = 0; i < inline_items.size(); ++i)
      if (auto st = read_item(inline_items[i], "env.items[" + std::to_string(i) + "]", &items); !st.is_ok()) return st;
  }
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return not_found("env.file: cannot read " + file);
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (trim(line).empty()) continue;
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) return invalid_argument(file + ":" + std::to_string(n) + ": not valid JSON");
      if (auto st = read_item(j, file + ":" + std::to_string(n), &items); !st.is_ok()) return st;
    }
  }
  if (items.empty()) return invalid_argument("env: the qa task needs items ([[env.items]] or env.file)");
  std::vector<Item> train, test;
  for (auto& it : items) {
    if (match == "regex") {
      try {
        it.pattern.emplace(it.answer);
      } catch (const std::regex_error& e) {
        return invalid_argument("env: answer '" + it.answer + "' is not a valid regex: " + e.what());
      }
    }
    uint64_t h = 0;
    for (unsigned char ch : it.prompt) h = mix64(h ^ ch);
    (double(h >> 11) * 0x1.0p-53 < test_fraction ? test : train).push_back(std::move(it));
  }
  if (train.empty()) return invalid_argument("env.test_fraction: leaves no train items");
  return std::unique_ptr<Task>(std::make_unique<QaTask>(*context.tokenizer, std::move(train), std::move(test), match, max_tokens));
}

}  // namespace tidal::rollout
