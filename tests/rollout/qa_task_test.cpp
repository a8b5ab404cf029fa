#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "rollout_test_util.h"
#include "tidal/rollout/task.h"

namespace tidal::rollout {
namespace {

class QaTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = Tokenizer::load(test::tiny_model());
    ASSERT_TRUE(t);
    tok_.emplace(std::move(*t));
    ctx_.tokenizer = &*tok_;
  }
  nlohmann::json items(int n) {
    nlohmann::json a = nlohmann::json::array();
    for (int i = 0; i < n; ++i) a.push_back({{"prompt", std::to_string(i) + "+1="}, {"answer", std::to_string(i + 1)}});
    return a;
  }
  double reward(const Task& t, uint64_t i, const std::string& split, const std::string& text, std::string* prompt = nullptr) {
    auto env = t.make(i, split).value();
    auto p = env->reset();
    EXPECT_TRUE(p);
    if (prompt) *prompt = tok_->decode(*p);
    return env->step({}, text)->reward;
  }
  std::optional<Tokenizer> tok_;
  TaskContext ctx_;
};

TEST_F(QaTaskTest, RewardsFollowTheMatchMode) {
  auto t = make_task({{"name", "qa"}, {"items", items(50)}, {"test_fraction", 0.0}}, ctx_);
  ASSERT_TRUE(t) << t.status().to_string();
  std::string prompt;
  reward(**t, 7, "train", "", &prompt);
  const int n = std::stoi(prompt.substr(0, prompt.find('+')));
  const std::string right = std::to_string(n + 1);
  EXPECT_EQ(reward(**t, 7, "train", right), 1.0);
  EXPECT_EQ(reward(**t, 7, "train", " " + right + "\n"), 1.0);  // surrounding whitespace trimmed
  EXPECT_EQ(reward(**t, 7, "train", right + "0"), 0.0);
  auto c = make_task({{"name", "qa"}, {"items", items(50)}, {"test_fraction", 0.0}, {"match", "contains"}}, ctx_);
  ASSERT_TRUE(c);
  EXPECT_EQ(reward(**c, 7, "train", "it is " + right + "!"), 1.0);
  auto r = make_task({{"name", "qa"}, {"items", {{{"prompt", "x"}, {"answer", "[0-9]+ apples?"}}}}, {"test_fraction", 0.0}, {"match", "regex"}}, ctx_);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(reward(**r, 0, "train", "12 apples"), 1.0);
  EXPECT_EQ(reward(**r, 0, "train", "apples"), 0.0);
  // Demonstration: the answer and end-of-sequence.
  auto d = (*t)->demonstration(7);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->completion.back(), *tok_->eos_id());
  EXPECT_EQ(tok_->decode(d->completion, true), right);
}

TEST_F(QaTaskTest, TestSplitIsHeldOutAndStable) {
  auto t = make_task({{"name", "qa"}, {"items", items(200)}, {"test_fraction", 0.25}}, ctx_);
  ASSERT_TRUE(t);
  std::set<std::string> train, test;
  for (uint64_t i = 0; i < 400; ++i) {
    std::string p;
    reward(**t, i, "train", "", &p);
    train.insert(p);
    reward(**t, i, "test", "", &p);
    test.insert(p);
  }
  EXPECT_EQ(train.size() + test.size(), 200u);  // every item in exactly one split
  for (const auto& p : test) EXPECT_EQ(train.count(p), 0u);
  EXPECT_GT(test.size(), 25u);
  EXPECT_LT(test.size(), 75u);
}

TEST_F(QaTaskTest, FileAndErrors) {
  const auto path = std::filesystem::temp_directory_path() / ("tidal_qa_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream f(path);
    f << R"({"prompt": "a", "answer": "1"})" << "\n\n" << R"({"prompt": "b", "answer": "2"})" << "\n";
  }
  auto t = make_task({{"name", "qa"}, {"file", path.string()}, {"test_fraction", 0.0}}, ctx_);
  ASSERT_TRUE(t) << t.status().to_string();
  {
    std::ofstream f(path, std::ios::app);
    f << "{oops\n";
  }
  auto bad = [&](const nlohmann::json& j, const std::string& want) {
    auto r = make_task(j, ctx_);
    ASSERT_FALSE(r) << j.dump();
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status().message();
  };
  bad({{"name", "qa"}, {"file", path.string()}}, ":4: not valid JSON");
  bad({{"name", "qa"}, {"file", "/nonexistent.jsonl"}}, "cannot read");
  bad({{"name", "qa"}}, "needs items");
  bad({{"name", "qa"}, {"items", {{{"prompt", "x"}}}}}, "answer");
  bad({{"name", "qa"}, {"items", items(3)}, {"match", "fuzzy"}}, "env.match");
  bad({{"name", "qa"}, {"items", {{{"prompt", "x"}, {"answer", "("}}}}, {"match", "regex"}}, "not a valid regex");
  bad({{"name", "qa"}, {"items", items(3)}, {"colour", 1}}, "colour");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace tidal::rollout
