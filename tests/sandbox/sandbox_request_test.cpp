// Request parsing of the sandbox API without a host (no root): the same functions the handlers
// and the fuzz target (fuzz/fuzz_sandbox_request.cpp) use.
#include <gtest/gtest.h>

#include "tidal/sandbox/sandbox_api.h"

namespace tidal::sandbox {
namespace {

std::string error_of(const Status& s) { return s.message(); }

TEST(SandboxRequest, CreateDefaultsFieldsAndErrors) {
  auto empty = parse_create_request("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->spec.memory_mb, 512);
  EXPECT_EQ(empty->ticket.wait_ms, -1);
  auto c = parse_create_request(R"({"memory_mb": 64, "network": "egress", "queue_timeout_s": 0.25, "labels": {"a": "b"}})");
  ASSERT_TRUE(c.has_value()) << c.status().to_string();
  EXPECT_EQ(c->spec.network, NetworkMode::kEgress);
  EXPECT_EQ(c->ticket.wait_ms, 250);
  EXPECT_EQ(c->spec.labels.at("a"), "b");
  EXPECT_NE(error_of(parse_create_request("[1]").status()).find("object"), std::string::npos);
  EXPECT_NE(error_of(parse_create_request("{").status()).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(parse_create_request(R"({"queue_timeout_s": -2})").status()).find("queue_timeout_s"), std::string::npos);
  EXPECT_NE(error_of(parse_create_request(R"({"network": "wifi"})").status()).find("none, loopback, egress"), std::string::npos);
  EXPECT_NE(error_of(parse_create_request(R"({"disk_mb": 0})").status()).find("disk_mb"), std::string::npos);
}

TEST(SandboxRequest, ExecAndRun) {
  auto e = parse_exec_request(R"({"shell": "echo hi", "timeout_s": 0.0001, "stream": true})");
  ASSERT_TRUE(e.has_value()) << e.status().to_string();
  EXPECT_EQ(e->exec.argv, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
  EXPECT_EQ(e->exec.timeout_ms, 1);  // rounded up, never 0
  EXPECT_TRUE(e->stream);
  EXPECT_FALSE(parse_exec_request("").has_value());
  EXPECT_FALSE(parse_exec_request(R"({"cmd": ["a"], "shell": "b"})").has_value());
  EXPECT_FALSE(parse_exec_request(R"({"cmd": ["a"], "cwd": "rel"})").has_value());
  EXPECT_FALSE(parse_exec_request(R"({"cmd": "not an array"})").has_value());
  // Every body parser refuses JSON nested deeper than kMaxJsonNesting (http::parse_json_body).
  const std::string deep = R"({"cmd": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  for (const Status& st : {parse_exec_request(deep).status(), parse_create_request(deep).status(),
                           parse_run_request(deep).status()}) {
    EXPECT_NE(error_of(st).find("nested deeper than 128 levels"), std::string::npos) << error_of(st);
  }
  auto r = parse_run_request(R"J({"language": "python", "code": "print(1)", "files": {"/w/a.py": "x"}})J");
  ASSERT_TRUE(r.has_value()) << r.status().to_string();
  EXPECT_EQ(r->run.files.size(), 1u);
  EXPECT_TRUE(r->run.spec.lease.empty());
  auto leased = parse_run_request(R"J({"language": "python", "code": "print(1)", "lease": "lease-1"})J");
  ASSERT_TRUE(leased.has_value()) << leased.status().to_string();
  EXPECT_EQ(leased->run.spec.lease, "lease-1");
  EXPECT_EQ(r->run.spec.template_name, "host");
  auto templated = parse_run_request(R"J({"language": "python", "code": "print(1)", "template": "debian"})J");
  ASSERT_TRUE(templated.has_value()) << templated.status().to_string();
  EXPECT_EQ(templated->run.spec.template_name, "debian");
  EXPECT_NE(error_of(parse_run_request(R"({"language": "python", "code": "", "files": {"/w/../x": ""}})").status()).find("files"),
            std::string::npos);
}

// Timeouts far past the largest int64 number of milliseconds (the fuzzer's 2.8e49 s) are refused
// with an error naming the field, and never converted (UBSan would flag the conversion).
TEST(SandboxRequest, HugeTimeoutsAreRefusedByName) {
  const std::string run = R"J({"language": "python", "code": "print(1)", "timeout_s": 2.8e49})J";
  EXPECT_NE(error_of(parse_run_request(run).status()).find("timeout_s"), std::string::npos);
  EXPECT_NE(error_of(parse_exec_request(R"({"cmd": ["true"], "timeout_s": 1e300})").status()).find("timeout_s"),
            std::string::npos);
  EXPECT_NE(error_of(parse_create_request(R"({"queue_timeout_s": 1e300})").status()).find("queue_timeout_s"),
            std::string::npos);
}

TEST(SandboxRequest, LabelFilter) {
  auto l = parse_label_filter("a=1,b=2=3");
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->at("a"), "1");
  EXPECT_EQ(l->at("b"), "2=3");
  EXPECT_TRUE(parse_label_filter("")->empty());
  EXPECT_FALSE(parse_label_filter("novalue").has_value());
  EXPECT_FALSE(parse_label_filter("a=1,").has_value());
}

}  // namespace
}  // namespace tidal::sandbox
