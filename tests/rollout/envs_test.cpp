// arith-python and tool-use without a sandbox service: config validation, prompts, answers that
// need no sandbox call, the text helpers, URL parsing, and a clear error when the service is down;
// the sandbox pool's checks and fail-over errors when no host answers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tidal/rollout/python_cell.h"
#include "tidal/rollout/sandbox_client.h"
#include "tidal/rollout/sandbox_pool.h"
#include "tidal/rollout/task.h"
#include "rollout_test_util.h"

namespace tidal::rollout {
namespace {

using nlohmann::json;

const Tokenizer& tok() { return test::byte_tokenizer(); }

// Port 1 on loopback: nothing listens there, so a call fails fast with "connection refused".
TaskContext offline() {
  TaskContext c;
  c.tokenizer = &tok();
  c.sandboxes = SandboxPool::unleased({"http://127.0.0.1:1"}).value();
  return c;
}

std::string error_of(const json& config, TaskContext context = offline()) {
  auto t = make_task(config, context);
  return t.has_value() ? std::string("(no error)") : t.status().message();
}

TEST(RolloutEnvs, ConfigErrorsNameTheKey) {
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
  };
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}, {"terms", 9}}), "'terms' must be in 2..6")) << error_of({{"name", "arith-python"}, {"terms", 9}});
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}, {"ops", "+^"}}), "'ops'"));
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}, {"max_operand", 0}}), "'max_operand'"));
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}, {"style", "prose"}}), "'style'"));
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}, {"timeout_s", 0}}), "'timeout_s'"));
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}, {"term", 3}}), "unknown field 'term'"));
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}, {"terms", "three"}}), "'terms' must be"));
  EXPECT_TRUE(has(error_of({{"name", "tool-use"}, {"max_turns", 0}}), "'max_turns'"));
  EXPECT_TRUE(has(error_of({{"name", "tool-use"}, {"problems", {"sum-squares", "sudoku"}}}), "unknown problem 'sudoku'"));
  EXPECT_TRUE(has(error_of({{"name", "tool-use"}, {"problems", json::array()}}), "'problems'"));
  EXPECT_TRUE(has(error_of({{"name", "tool-use"}, {"demonstration", "all"}}), "'demonstration'"));
  EXPECT_TRUE(has(error_of({{"name", "tool-use"}, {"max_output_chars", 1}}), "'max_output_chars'"));
  EXPECT_TRUE(has(error_of({{"name", "tool-use"}, {"colour", 1}}), "unknown field 'colour'"));
  TaskContext no_sandbox = offline();
  no_sandbox.sandboxes.reset();
  EXPECT_TRUE(has(error_of({{"name", "tool-use"}}, no_sandbox), "no sandbox service url"));
  EXPECT_TRUE(has(error_of({{"name", "arith-python"}}, no_sandbox), "arith-python runs answers in a sandbox"));
  EXPECT_EQ(error_of({{"name", "arith-python"}, {"terms", 4}, {"ops", "+-*/%"}, {"style", "symbols"}}), "(no error)");
  EXPECT_EQ(error_of({{"name", "tool-use"}, {"problems", {"product-mod"}}, {"max_turns", 2}}), "(no error)");
}

TEST(RolloutEnvs, SandboxUrls) {
  auto u = parse_sandbox_url("http://127.0.0.1:8080/");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(parse_sandbox_url("http://localhost:9")->host, "127.0.0.1");
  for (const char* bad : {"127.0.0.1:8080", "http://127.0.0.1", "http://127.0.0.1:0", "http://127.0.0.1:70000",
                          "http://127.0.0.1:80/v1", "http://sandbox.example:80", "http://:80"}) {
    auto r = parse_sandbox_url(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
}

TEST(RolloutEnvs, TextHelpers) {
  using namespace python_cell;
  EXPECT_EQ(strip_fences("  6*7 \n"), "6*7");
  EXPECT_EQ(strip_fences("Here:\n```python\nx = 6\nprint(x*7)\n```\nDone"), "x = 6\nprint(x*7)");
  EXPECT_EQ(strip_fences("```\n1+1"), "1+1");
  EXPECT_EQ(last_integer_line("debug\n42\n\n"), "42");
  EXPECT_EQ(last_integer_line("-0012"), "-12");
  EXPECT_EQ(last_integer_line("42.000\n"), "42");
  EXPECT_EQ(last_integer_line("-0.0"), "0");
  EXPECT_FALSE(last_integer_line("42.5").has_value());
  EXPECT_FALSE(last_integer_line("42\nhello").has_value());
  EXPECT_FALSE(last_integer_line("").has_value());
  EXPECT_FALSE(last_integer_line("1e3").has_value());
  std::string big(1000, 'a');
  big += "TAIL";
  std::string cut = truncate_middle(big, 100);
  EXPECT_EQ(cut.size(), 100u);
  EXPECT_NE(cut.find("[truncated]"), std::string::npos);
  EXPECT_EQ(cut.substr(cut.size() - 4), "TAIL");
  EXPECT_EQ(truncate_middle("short", 100), "short");
  // The stop string is in the ids even when a caller's text held it back.
  const std::string turn = "<python>print(1)</python>";
  EXPECT_EQ(turn_text(tok(), tok().encode(turn, false), "<python>print(1)"), turn);
  EXPECT_EQ(turn_text(tok(), {}, "<python>print(1)"), "<python>print(1)");
}

TEST(RolloutEnvs, ArithPromptsAndDemonstrations) {
  auto t = make_task({{"name", "arith-python"}, {"style", "symbols"}, {"ops", "+-*/%"}, {"terms", 5}}, offline());
  ASSERT_TRUE(t.has_value()) << t.status().to_string();
  EXPECT_TRUE((*t)->make(7, "train").value()->blocking());
  EXPECT_FALSE((*t)->make(7, "probe").has_value());
  auto d = (*t)->demonstration(7);
  ASSERT_TRUE(d.has_value());
  auto env = (*t)->make(7, "train");
  ASSERT_TRUE(env.has_value());
  auto prompt = (*env)->reset();
  ASSERT_TRUE(prompt.has_value());
  EXPECT_EQ(*prompt, d->prompt);  // the same instance gives the same problem
  const std::string p = tok().decode(*prompt), code = tok().decode(d->completion, true);
  EXPECT_EQ(p.rfind("Compute ", 0), 0u) << p;
  EXPECT_NE(p.find(code), std::string::npos) << p << " / " << code;  // symbols: the prompt shows the expression
  EXPECT_EQ(d->completion.back(), *tok().eos_id());
  EXPECT_NE(tok().decode((*t)->make(8, "train").value()->reset().value()), p);

  auto words = make_task({{"name", "arith-python"}, {"ops", "*"}, {"terms", 2}}, offline());
  ASSERT_TRUE(words.has_value());
  const std::string wp = tok().decode((*words)->make(1, "test").value()->reset().value());
  EXPECT_NE(wp.find(" times "), std::string::npos) << wp;

  // An empty answer scores 0 without a sandbox call (the service here is down: no call was made).
  auto s = (*env)->step(tok().encode("   ", false), "   ");
  ASSERT_TRUE(s.has_value()) << s.status().to_string();
  EXPECT_TRUE(s->done);
  EXPECT_EQ(s->reward, 0.0);
  EXPECT_EQ(s->info["sandbox_calls"], 0);
}

TEST(RolloutEnvs, ServiceDownIsAnErrorNamingTheEndpoint) {
  auto t = make_task({{"name", "arith-python"}}, offline());
  ASSERT_TRUE(t.has_value());
  auto env = (*t)->make(1, "train");
  ASSERT_TRUE(env.has_value());
  auto s = (*env)->step(tok().encode("1+1", false), "1+1");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.status().message().find("sandbox POST http://127.0.0.1:1/v1/run"), std::string::npos) << s.status().message();
  EXPECT_EQ(s.status().code(), StatusCode::kIoError);
}

TEST(RolloutEnvs, ToolUseAnswersWithoutTheTool) {
  auto t = make_task({{"name", "tool-use"}, {"max_turns", 3}}, offline());
  ASSERT_TRUE(t.has_value()) << t.status().to_string();
  EXPECT_EQ((*t)->max_turns(), 3);
  const SamplingParams sp = (*t)->turn_params();
  EXPECT_EQ(sp.stop, (std::vector<std::string>{"</python>", "</answer>"}));
  for (uint64_t i = 0; i < 6; ++i) {
    auto d = (*t)->demonstration(i);
    ASSERT_TRUE(d.has_value());
    const std::string answer = tok().decode(d->completion);
    ASSERT_EQ(answer.rfind("<answer>", 0), 0u) << answer;
    auto env = (*t)->make(i, "train");
    ASSERT_TRUE(env.has_value());
    EXPECT_EQ((*env)->reset().value(), d->prompt);
    // The caller's text may lack the stop string; the ids have it.
    auto s = (*env)->step(d->completion, answer.substr(0, answer.size() - 9));
    ASSERT_TRUE(s.has_value()) << s.status().to_string();
    EXPECT_TRUE(s->done);
    EXPECT_TRUE(s->correct) << answer;
    EXPECT_EQ(s->reward, 1.0);
    EXPECT_FALSE((*env)->step(d->completion, answer).has_value());  // the episode is over
  }
  auto env = (*t)->make(0, "test");
  auto wrong = (*env)->step(tok().encode("<answer>-1</answer>", false), "<answer>-1");
  ASSERT_TRUE(wrong.has_value());
  EXPECT_TRUE(wrong->done);
  EXPECT_EQ(wrong->reward, 0.0);
  auto env2 = (*t)->make(0, "test");
  auto none = (*env2)->step(tok().encode("I think it is 7", false), "I think it is 7");
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->done);
  EXPECT_EQ(none->reward, 0.0);
  EXPECT_EQ(none->info["sandbox_calls"], 0);

  auto tool_demo = make_task({{"name", "tool-use"}, {"demonstration", "tool"}}, offline());
  const std::string code = tok().decode((*tool_demo)->demonstration(3)->completion);
  EXPECT_EQ(code.rfind("<python>", 0), 0u);
  EXPECT_EQ(code.substr(code.size() - 9), "</python>");
  auto no_demo = make_task({{"name", "tool-use"}, {"demonstration", "none"}}, offline());
  EXPECT_FALSE((*no_demo)->demonstration(3).has_value());
}

}  // namespace
}  // namespace tidal::rollout

namespace tidal::rollout {
namespace {

TEST(SandboxPoolOffline, UrlErrorsNameTheUrl) {
  auto has = [](const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; };
  auto https = SandboxPool::unleased({"http://127.0.0.1:8080", "https://sandbox:443"});
  ASSERT_FALSE(https.has_value());
  EXPECT_TRUE(has(https.status(), "sandbox url 'https://sandbox:443'")) << https.status().message();
  // The same host twice (spelled differently) would hold two leases on one daemon.
  auto twice = SandboxPool::unleased({"http://127.0.0.1:8080", "http://localhost:8080/"});
  ASSERT_FALSE(twice.has_value());
  EXPECT_TRUE(has(twice.status(), "'http://localhost:8080/': listed twice")) << twice.status().message();
  auto none = SandboxPool::unleased({});
  ASSERT_FALSE(none.has_value());
  EXPECT_TRUE(has(none.status(), "no sandbox host")) << none.status().message();
  // open() takes a lease on every host: one that does not answer is an error naming it.
  auto down = SandboxPool::open({"http://127.0.0.1:1"}, "", 5);
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.status().code(), StatusCode::kIoError);
  EXPECT_TRUE(has(down.status(), "sandbox host http://127.0.0.1:1: cannot take the run's lease")) << down.status().message();
  auto bad_ttl = SandboxPool::open({"http://127.0.0.1:1"}, "", 0.01);
  ASSERT_FALSE(bad_ttl.has_value());
  EXPECT_TRUE(has(bad_ttl.status(), "ttl_s")) << bad_ttl.status().message();
}

TEST(SandboxPoolOffline, EveryHostDownNamesEachFailure) {
  auto pool = SandboxPool::unleased({"http://127.0.0.1:1", "http://127.0.0.1:2"});
  ASSERT_TRUE(pool.has_value()) << pool.status().to_string();
  SandboxPool& p = **pool;
  EXPECT_EQ(p.size(), 2u);
  EXPECT_EQ(p.url(1), "http://127.0.0.1:2");
  EXPECT_EQ(p.lease(0), "");
  EXPECT_TRUE(p.status().is_ok());  // no leases to lose
  SandboxRun run;
  run.code = "print(1)";
  auto r = p.run(run);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("all 2 usable sandbox hosts failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sandbox POST http://127.0.0.1:1/v1/run"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sandbox POST http://127.0.0.1:2/v1/run"), std::string::npos) << msg;
  auto c = p.create_sandbox({});
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.status().message().find("sandbox create: all 2"), std::string::npos) << c.status().message();
  for (const auto& h : p.stats()) {
    EXPECT_EQ(h.calls, 2) << h.url;  // one run, one create
    EXPECT_EQ(h.failures, 2) << h.url;
    EXPECT_EQ(h.in_flight, 0) << h.url;
    EXPECT_FALSE(h.healthy) << h.url;  // in back-off
  }
  // A handle's calls go to its own host only (no fail-over), and the error names it.
  SandboxExec call;
  call.argv = {"true"};
  auto e = p.exec({1, "sb-1"}, call);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.status().message().find("http://127.0.0.1:2/v1/sandboxes/sb-1/exec"), std::string::npos)
      << e.status().message();
  Status d = p.delete_sandbox({0, "sb-2"});
  EXPECT_NE(d.message().find("sandbox DELETE http://127.0.0.1:1/v1/sandboxes/sb-2"), std::string::npos) << d.message();
  EXPECT_EQ(p.stats()[0].calls, 3);
  EXPECT_EQ(p.stats()[1].calls, 3);
  EXPECT_FALSE(p.exec({2, "sb-1"}, {}).has_value());  // no host 2
  EXPECT_FALSE(p.delete_sandbox({0, ""}).is_ok());
}

}  // namespace
}  // namespace tidal::rollout
