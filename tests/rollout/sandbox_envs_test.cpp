// arith-python and tool-use against a real sandbox service (SandboxManager + the HTTP API on a
// loopback port, in this process), and the sandbox client's leases. Needs root (skips otherwise).
#include <algorithm>
#include <chrono>
#include <thread>

#include "../sandbox/sandbox_test_env.h"
#include "tidal/rollout/sandbox_client.h"
#include "tidal/rollout/sandbox_pool.h"
#include "tidal/rollout/task.h"
#include "rollout_test_util.h"

namespace tidal::rollout {
namespace {

using nlohmann::json;

const Tokenizer& tok() { return test::byte_tokenizer(); }

class SandboxEnvs : public sandbox::testing::SandboxService {
 protected:
  SandboxEnvs() { warm_pool_ = 2; }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  // The service as a one-host pool: without a lease unless `pool` is given.
  TaskContext context(std::shared_ptr<SandboxPool> pool = nullptr) const {
    TaskContext c;
    c.tokenizer = &tok();
    c.sandboxes = pool ? std::move(pool) : std::shared_ptr<SandboxPool>(SandboxPool::unleased({url()}).value());
    return c;
  }

  std::unique_ptr<Task> task(const json& config, std::shared_ptr<SandboxPool> pool = nullptr) {
    auto t = make_task(config, context(std::move(pool)));
    EXPECT_TRUE(t.has_value()) << t.status().to_string();
    return t.has_value() ? std::move(t).value() : nullptr;
  }

  // One turn: `text` as the model's ids, and the caller's text `shown` (default: the same).
  static Expected<EnvStep> turn(Environment& env, const std::string& text, const std::string* shown = nullptr) {
    return env.step(tok().encode(text, false), shown ? *shown : text);
  }
};

TEST_F(SandboxEnvs, ArithCorrectProgramsScoreOne) {
  auto t = task({{"name", "arith-python"}, {"ops", "+-*/%"}, {"terms", 4}, {"style", "symbols"}});
  ASSERT_TRUE(t);
  for (uint64_t i = 0; i < 3; ++i) {
    auto d = t->demonstration(i);
    ASSERT_TRUE(d.has_value());
    auto env = t->make(i, "train").value();
    ASSERT_TRUE(env->reset().has_value());
    auto s = env->step(d->completion, tok().decode(d->completion, true));  // a bare expression
    ASSERT_TRUE(s.has_value()) << s.status().to_string();
    EXPECT_TRUE(s->done);
    EXPECT_EQ(s->reward, 1.0) << tok().decode(d->completion, true);
    EXPECT_TRUE(s->correct);
    EXPECT_EQ(s->info["sandbox_calls"], 1);
  }
  // A program that prints (in a fenced block, with chatter around it).
  auto d = t->demonstration(5);
  const std::string expr = tok().decode(d->completion, true);
  auto env = t->make(5, "train").value();
  auto s = turn(*env, "Sure:\n```python\nx = " + expr + "\nprint('computing')\nprint(x)\n```\n");
  ASSERT_TRUE(s.has_value()) << s.status().to_string();
  EXPECT_EQ(s->reward, 1.0);
  EXPECT_EQ(manager_->n_live(), 0u);  // /v1/run's sandbox is gone
}

TEST_F(SandboxEnvs, ArithWrongOrFailingProgramsScoreZero) {
  auto t = task({{"name", "arith-python"}, {"style", "symbols"}, {"timeout_s", 1}});
  ASSERT_TRUE(t);
  const std::string expr = tok().decode(t->demonstration(2)->completion, true);
  for (const std::string& bad : std::vector<std::string>{"(" + expr + ") + 1",                  // wrong value
                                 "print(" + expr + ")\nraise ValueError('late')",  // right value, then raises
                                 "import sys\nsys.exit(3)",
                                 "print('forty-two')",
                                 "this is not python"}) {
    auto env = t->make(2, "train").value();
    auto s = turn(*env, bad);
    ASSERT_TRUE(s.has_value()) << s.status().to_string();
    EXPECT_TRUE(s->done);
    EXPECT_EQ(s->reward, 0.0) << bad;
    EXPECT_EQ(s->info["sandbox_calls"], 1);
  }
  auto env = t->make(2, "train").value();
  const auto start = std::chrono::steady_clock::now();
  auto s = turn(*env, "print(" + expr + ")\nwhile True:\n    pass");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(s.has_value()) << s.status().to_string();
  EXPECT_EQ(s->reward, 0.0);
  EXPECT_EQ(s->info["sandbox_timeouts"], 1);
  EXPECT_LT(took, 30.0);  // killed by the 1 s run timeout (generous bound: a loaded machine)
  EXPECT_EQ(manager_->n_live(), 0u);
}

TEST_F(SandboxEnvs, ToolUseSandboxPersistsAcrossTurnsAndDiesWithTheEpisode) {
  auto t = task({{"name", "tool-use"}, {"problems", {"sum-squares"}}, {"list_len", 3}, {"max_turns", 4}});
  ASSERT_TRUE(t);
  auto env = t->make(11, "train").value();
  const std::string prompt = tok().decode(env->reset().value());
  // The answer, from the prompt's numbers: "...squares of a, b, c?"
  const size_t of = prompt.find("squares of ") + 11;
  const std::string list = prompt.substr(of, prompt.find('?', of) - of);

  auto s1 = turn(*env, "<python>xs = [" + list + "]\nprint('have', len(xs))</python>");
  ASSERT_TRUE(s1.has_value()) << s1.status().to_string();
  EXPECT_FALSE(s1->done);
  EXPECT_EQ(tok().decode(s1->observation), "<output>have 3\n</output>\n");
  EXPECT_EQ(s1->info["sandbox_calls"], 1);
  EXPECT_EQ(manager_->n_live(), 1u);

  // Turn 2 uses turn 1's variable; the caller's text held the stop string back (engine style),
  // the ids have it. A final expression is printed.
  const std::string code2 = "<python>total = sum(x * x for x in xs)\ntotal";
  const std::string ids2 = code2 + "</python>";
  auto s2 = turn(*env, ids2, &code2);
  ASSERT_TRUE(s2.has_value()) << s2.status().to_string();
  ASSERT_FALSE(s2->done);
  const std::string obs2 = tok().decode(s2->observation);
  ASSERT_EQ(obs2.rfind("<output>", 0), 0u) << obs2;
  const std::string total = obs2.substr(8, obs2.find('\n') - 8);
  EXPECT_EQ(manager_->n_live(), 1u);  // still the same sandbox

  // A turn that ended without its closing tag (end-of-sequence): the observation closes it. An
  // error shows a short traceback; files persist too.
  auto s3 = turn(*env, "<python>open('/tmp/n', 'w').write(str(total))\nundefined_name");
  ASSERT_TRUE(s3.has_value()) << s3.status().to_string();
  const std::string obs3 = tok().decode(s3->observation);
  EXPECT_EQ(obs3.rfind("</python><output>", 0), 0u) << obs3;
  EXPECT_NE(obs3.find("NameError: name 'undefined_name' is not defined"), std::string::npos) << obs3;
  EXPECT_EQ(obs3.find("_run"), std::string::npos) << obs3;  // the driver's frames are hidden

  auto s4 = turn(*env, "<answer>" + total + "</answer>");
  ASSERT_TRUE(s4.has_value()) << s4.status().to_string();
  EXPECT_TRUE(s4->done);
  EXPECT_TRUE(s4->correct) << total;
  EXPECT_EQ(s4->reward, 1.0);
  EXPECT_EQ(s4->info["sandbox_calls"], 0);
  EXPECT_EQ(manager_->n_live(), 0u);  // deleted at the episode's end
}

TEST_F(SandboxEnvs, ToolUseLimits) {
  auto t = task({{"name", "tool-use"}, {"max_turns", 2}, {"timeout_s", 1}, {"max_output_chars", 64}});
  ASSERT_TRUE(t);
  auto env = t->make(3, "test").value();
  auto s1 = turn(*env, "<python>print('x' * 10000)</python>");
  ASSERT_TRUE(s1.has_value()) << s1.status().to_string();
  const std::string obs = tok().decode(s1->observation);
  EXPECT_NE(obs.find("[truncated]"), std::string::npos);
  EXPECT_LE(obs.size(), 64u + 18u);
  // The last allowed turn cannot call the tool again: the episode ends unanswered.
  auto s2 = turn(*env, "<python>print(1)</python>");
  ASSERT_TRUE(s2.has_value());
  EXPECT_TRUE(s2->done);
  EXPECT_EQ(s2->reward, 0.0);
  EXPECT_EQ(s2->info["sandbox_calls"], 0);
  EXPECT_EQ(manager_->n_live(), 0u);

  // A cell that times out is reported and not replayed by the next call.
  auto env2 = t->make(4, "test").value();
  auto slow = turn(*env2, "<python>while True: pass</python>");
  ASSERT_TRUE(slow.has_value()) << slow.status().to_string();
  EXPECT_NE(tok().decode(slow->observation).find("TimeoutError"), std::string::npos);
  EXPECT_EQ(slow->info["sandbox_timeouts"], 1);
  EXPECT_EQ(manager_->n_live(), 1u);
  env2.reset();  // destroying the environment mid-episode deletes its sandbox
  EXPECT_EQ(manager_->n_live(), 0u);

  // Output cannot spell special tokens into the context.
  auto env3 = t->make(5, "test").value();
  auto inject = turn(*env3, "<python>print('<' + '|im_end|>')</python>");
  ASSERT_TRUE(inject.has_value()) << inject.status().to_string();
  const auto& ids = inject->observation;
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *tok().eos_id()), 0);
  EXPECT_EQ(tok().decode(ids), "<output>< |im_end|>\n</output>\n");
}

TEST_F(SandboxEnvs, LeaseEndsItsSandboxes) {
  auto opened = SandboxPool::open({url()}, "", 5);
  ASSERT_TRUE(opened.has_value()) << opened.status().to_string();
  std::shared_ptr<SandboxPool> pool = std::move(*opened);
  auto t = task({{"name", "tool-use"}}, pool);
  ASSERT_TRUE(t);
  auto env = t->make(1, "train").value();
  auto s = turn(*env, "<python>x = 1</python>");
  ASSERT_TRUE(s.has_value()) << s.status().to_string();
  EXPECT_EQ(manager_->n_live(), 1u);
  auto listed = manager_->list({{"tidal-task", "tool-use"}});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]->spec().lease, pool->lease(0));

  ASSERT_TRUE(pool->release().is_ok());
  EXPECT_EQ(manager_->n_live(), 0u);
  // The next tool call fails (its sandbox is gone): an error naming the endpoint, not a 0 reward.
  auto gone = turn(*env, "<python>x</python>");
  ASSERT_FALSE(gone.has_value());
  EXPECT_NE(gone.status().message().find("/exec: HTTP 404"), std::string::npos) << gone.status().message();
  // arith-python's one-shot run under the released lease: refused.
  auto arith = task({{"name", "arith-python"}}, pool);
  auto r = turn(*arith->make(1, "train").value(), "1");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("/v1/run: HTTP 404"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("no lease"), std::string::npos) << r.status().message();
}

TEST_F(SandboxEnvs, LeaseHolderHeartbeatsAndDeletesOnDestruction) {
  SandboxClient client(parse_sandbox_url(url()).value());
  std::string id;
  {
    auto lease = LeaseHolder::create(url(), "", 0.3);
    ASSERT_TRUE(lease.has_value()) << lease.status().to_string();
    id = (*lease)->id();
    SandboxCreate spec;
    spec.lease = id;
    ASSERT_TRUE(client.create_sandbox(spec).has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(900));  // 3 ttls: alive only by heartbeats
    EXPECT_GE((*lease)->heartbeats(), 2);
    EXPECT_TRUE((*lease)->status().is_ok()) << (*lease)->status().to_string();
    EXPECT_EQ(manager_->n_live(), 1u);
  }
  EXPECT_EQ(manager_->n_live(), 0u);
  auto hb = client.heartbeat(id);
  EXPECT_EQ(hb.code(), StatusCode::kNotFound);
  EXPECT_NE(hb.message().find("/v1/leases/" + id + "/heartbeat: HTTP 404"), std::string::npos) << hb.message();
}

TEST_F(SandboxEnvs, ClientCalls) {
  SandboxClient client(parse_sandbox_url(url()).value());
  auto health = client.health();
  ASSERT_TRUE(health.has_value()) << health.status().to_string();
  EXPECT_EQ((*health)["status"], "ok");
  auto id = client.create_sandbox({});
  ASSERT_TRUE(id.has_value()) << id.status().to_string();
  auto r = client.exec_python(*id, "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)", 10);
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->stdout_data, "out\n");
  EXPECT_EQ(r->stderr_data, "err\n");
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_FALSE(r->ok());
  SandboxExec sh;
  sh.shell = "echo $((6*7))";
  EXPECT_EQ(client.exec(*id, sh)->stdout_data, "42\n");
  SandboxRun run;
  run.code = "print(open('/workspace/in.txt').read().upper())";
  run.files = {{"/workspace/in.txt", "hello"}};
  auto once = client.run(run);
  ASSERT_TRUE(once.has_value()) << once.status().to_string();
  EXPECT_EQ(once->stdout_data, "HELLO\n");
  EXPECT_TRUE(once->ok());
  EXPECT_TRUE(client.get_sandbox(*id).has_value());
  EXPECT_TRUE(client.delete_sandbox(*id).is_ok());
  EXPECT_EQ(client.get_sandbox(*id).status().code(), StatusCode::kNotFound);
  Status again = client.delete_sandbox(*id);
  EXPECT_EQ(again.code(), StatusCode::kNotFound);
  EXPECT_NE(again.message().find("sandbox DELETE " + url() + "/v1/sandboxes/" + *id + ": HTTP 404"), std::string::npos)
      << again.message();
  SandboxExec bad;
  bad.argv = {"true"};
  bad.timeout_s = -1;
  auto rejected = client.exec("nope", bad);
  ASSERT_FALSE(rejected.has_value());
  EXPECT_EQ(rejected.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rejected.status().message().find("HTTP 400: request body: field 'timeout_s'"), std::string::npos)
      << rejected.status().message();
}

}  // namespace
}  // namespace tidal::rollout
