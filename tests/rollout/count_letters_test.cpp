#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "rollout_test_util.h"
#include "tidal/rollout/task.h"

namespace tidal::rollout {
namespace {

nlohmann::json config() {
  return {{"name", "count-letters"}, {"letters", "abcdefghijklm"}, {"min_len", 5}, {"max_len", 20},
          {"probe_letters", "nopqrstuvwxyz"}, {"probe_min_len", 21}, {"probe_max_len", 30}};
}

struct Parsed {
  std::string text;
  char letter;
};

// "^S:L=" -> S, L
Parsed parse(const std::string& prompt) {
  EXPECT_EQ(prompt.front(), '^');
  const size_t colon = prompt.find(':');
  EXPECT_NE(colon, std::string::npos);
  EXPECT_EQ(prompt.back(), '=');
  return {prompt.substr(1, colon - 1), prompt[colon + 1]};
}

class CountLettersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = Tokenizer::load(test::tiny_model());
    ASSERT_TRUE(t) << t.status().to_string();
    tok_.emplace(std::move(*t));
    ctx_.tokenizer = &*tok_;
  }
  std::optional<Tokenizer> tok_;
  TaskContext ctx_;
};

TEST_F(CountLettersTest, ProblemsFollowTheSplitAndTheCountIsUniform) {
  auto task = make_task(config(), ctx_);
  ASSERT_TRUE(task) << task.status().to_string();
  EXPECT_EQ((*task)->eval_splits(), (std::vector<std::string>{"test", "probe-letters", "probe-length"}));
  struct Want {
    std::string split, letters;
    size_t lo, hi;
  };
  for (const Want& w : {Want{"train", "abcdefghijklm", 5, 20}, Want{"test", "abcdefghijklm", 5, 20},
                        Want{"probe-letters", "nopqrstuvwxyz", 5, 20}, Want{"probe-length", "abcdefghijklm", 21, 30}}) {
    std::map<int, int> counts;
    for (uint64_t i = 0; i < 2000; ++i) {
      auto env = (*task)->make(i, w.split);
      ASSERT_TRUE(env);
      auto ids = (*env)->reset();
      ASSERT_TRUE(ids);
      const Parsed p = parse(tok_->decode(*ids));
      ASSERT_GE(p.text.size(), w.lo) << w.split;
      ASSERT_LE(p.text.size(), w.hi) << w.split;
      ASSERT_NE(w.letters.find(p.letter), std::string::npos) << w.split;
      const int n = int(std::count(p.text.begin(), p.text.end(), p.letter));
      ++counts[n];
      // The reward is 1 exactly for the true count.
      auto right = (*env)->step({}, std::to_string(n));
      ASSERT_TRUE(right);
      EXPECT_TRUE(right->done);
      EXPECT_EQ(right->reward, 1.0);
      EXPECT_TRUE(right->correct);
      auto wrong = (*env)->step({}, std::to_string((n + 1) % 10));
      EXPECT_EQ(wrong->reward, 0.0);
      EXPECT_EQ((*env)->step({}, " " + std::to_string(n))->reward, 0.0);  // the format is exact
    }
    // Counts 0..9 each appear (uniform draw from 0..min(9, len)): no count dominates.
    EXPECT_EQ(counts.size(), 10u) << w.split;
    for (const auto& [n, c] : counts) EXPECT_LT(c, 2000 / 4) << w.split << " count " << n;
  }
}

TEST_F(CountLettersTest, InstancesAreDeterministicAndSplitsDiffer) {
  auto task = make_task(config(), ctx_);
  ASSERT_TRUE(task);
  int same = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    auto a = *(*(*task)->make(i, "train"))->reset();
    auto b = *(*(*task)->make(i, "train"))->reset();
    auto c = *(*(*task)->make(i, "test"))->reset();
    EXPECT_EQ(a, b);
    same += a == c;
  }
  EXPECT_LT(same, 3);
  EXPECT_FALSE((*task)->make(0, "nope"));
}

TEST_F(CountLettersTest, DemonstrationIsPromptAnswerAndEos) {
  auto task = make_task(config(), ctx_);
  ASSERT_TRUE(task);
  auto d = (*task)->demonstration(42);
  ASSERT_TRUE(d);
  const Parsed p = parse(tok_->decode(d->prompt));
  const int n = int(std::count(p.text.begin(), p.text.end(), p.letter));
  ASSERT_EQ(d->completion.size(), 2u);
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{d->completion[0]}), std::to_string(n));
  EXPECT_EQ(d->completion[1], *tok_->eos_id());
}

// answer = "running-count": the demonstration is one running-count digit per character of S, ">",
// the count and the stop; the reward grades only what follows the last ">".
TEST_F(CountLettersTest, RunningCountFormat) {
  auto c = config();
  c["answer"] = "running-count";
  auto task = make_task(c, ctx_);
  ASSERT_TRUE(task) << task.status().to_string();
  EXPECT_EQ((*task)->turn_params().max_tokens, 30 + 4);  // the probe's longest string
  for (uint64_t i = 0; i < 200; ++i) {
    auto d = (*task)->demonstration(i);
    ASSERT_TRUE(d);
    const Parsed p = parse(tok_->decode(d->prompt));
    ASSERT_EQ(d->completion.back(), *tok_->eos_id());
    std::vector<int32_t> body(d->completion.begin(), d->completion.end() - 1);
    const std::string answer = tok_->decode(body);
    ASSERT_EQ(answer.size(), p.text.size() + 2) << answer;
    int so_far = 0;
    for (size_t k = 0; k < p.text.size(); ++k) {
      so_far += p.text[k] == p.letter;
      ASSERT_EQ(answer[k], char('0' + so_far)) << answer << " for " << p.text << ":" << p.letter;
    }
    EXPECT_EQ(answer.substr(p.text.size()), ">" + std::to_string(so_far));
  }
  auto env = (*task)->make(7, "test");
  ASSERT_TRUE(env);
  const Parsed p = parse(tok_->decode(*(*env)->reset()));
  const std::string n = std::to_string(std::count(p.text.begin(), p.text.end(), p.letter));
  EXPECT_EQ((*env)->step({}, "0123>" + n)->reward, 1.0);  // the chain itself is not graded
  EXPECT_EQ((*env)->step({}, "9>9>" + n)->reward, 1.0);   // the last ">" counts
  EXPECT_EQ((*env)->step({}, n)->reward, 0.0);            // no ">": no answer
  EXPECT_EQ((*env)->step({}, n + ">")->reward, 0.0);
  // echo-count: each character copied, then the count so far.
  c["answer"] = "echo-count";
  auto echo = make_task(c, ctx_);
  ASSERT_TRUE(echo) << echo.status().to_string();
  EXPECT_EQ((*echo)->turn_params().max_tokens, 2 * 30 + 4);
  for (uint64_t i = 0; i < 50; ++i) {
    auto d = (*echo)->demonstration(i);
    ASSERT_TRUE(d);
    const Parsed q = parse(tok_->decode(d->prompt));
    std::string want;
    int so_far = 0;
    for (char ch : q.text) {
      so_far += ch == q.letter;
      want += std::string(1, ch) + char('0' + so_far);
    }
    std::vector<int32_t> body(d->completion.begin(), d->completion.end() - 1);
    EXPECT_EQ(tok_->decode(body), want + ">" + std::to_string(so_far));
  }
  c["answer"] = "essay";
  auto bad = make_task(c, ctx_);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("env.answer"), std::string::npos);
}

TEST_F(CountLettersTest, ConfigErrorsNameTheKey) {
  auto bad = [&](nlohmann::json j, const std::string& want) {
    auto t = make_task(j, ctx_);
    ASSERT_FALSE(t) << j.dump();
    EXPECT_NE(t.status().message().find(want), std::string::npos) << t.status().message();
  };
  auto c = config();
  c["min_len"] = 0;
  bad(c, "min_len");
  c = config();
  c["letters"] = "a!";
  bad(c, "letters");
  c = config();
  c["letters"] = "A";
  bad(c, "not in env.alphabet");
  c = config();
  c["colour"] = 1;
  bad(c, "colour");
  c = config();
  c["max_count"] = 12;
  bad(c, "max_count");
  bad({{"name", "chess"}}, "unknown task 'chess'");
  bad({{"letters", "ab"}}, "env.name");
}

}  // namespace
}  // namespace tidal::rollout
