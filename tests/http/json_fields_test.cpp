#include "tidal/http/json_fields.h"

#include <gtest/gtest.h>

#include "tidal/http/metrics_registry.h"

namespace tidal::http {
namespace {

using nlohmann::json;

TEST(JsonFields, ReadsTypedFields) {
  json body = json::parse(R"({"cmd":["ls","-l"],"timeout_s":5,"env":{"A":"1"},"shell":null,"ratio":0.5,"ok":true})");
  JsonFields f(body);
  std::vector<std::string> cmd;
  int64_t timeout = 0;
  std::map<std::string, std::string> env;
  std::string shell = "unset";
  double ratio = 0;
  bool ok = false;
  f.required("timeout_s", &timeout);
  f.optional("cmd", &cmd);
  f.optional("env", &env);
  f.optional("shell", &shell);  // null: untouched
  f.optional("ratio", &ratio);
  f.optional("ok", &ok);
  f.reject_unknown();
  ASSERT_TRUE(f.status().is_ok()) << f.status().to_string();
  EXPECT_EQ(cmd, (std::vector<std::string>{"ls", "-l"}));
  EXPECT_EQ(timeout, 5);
  EXPECT_EQ(env.at("A"), "1");
  EXPECT_EQ(shell, "unset");
  EXPECT_DOUBLE_EQ(ratio, 0.5);
  EXPECT_TRUE(ok);
}

TEST(JsonFields, ErrorsNameTheField) {
  json f_json = json::parse(R"({"timeout_s":"soon"})");
  JsonFields f(f_json);
  int64_t t = 0;
  f.optional("timeout_s", &t);
  EXPECT_NE(f.status().message().find("'timeout_s' must be an integer"), std::string::npos);

  json g_json = json::parse(R"({})");
  JsonFields g(g_json);
  std::string s;
  g.required("code", &s);
  EXPECT_NE(g.status().message().find("missing required field 'code'"), std::string::npos);

  json h_json = json::parse(R"({"cmd":[1]})");
  JsonFields h(h_json);
  std::vector<std::string> cmd;
  h.optional("cmd", &cmd);
  EXPECT_FALSE(h.status().is_ok());

  json u_json = json::parse(R"({"a":1,"typo":2})");
  JsonFields u(u_json);
  int64_t a = 0;
  u.optional("a", &a);
  u.reject_unknown();
  EXPECT_NE(u.status().message().find("unknown field 'typo'"), std::string::npos);

  json arr_json = json::parse("[1,2]");
  JsonFields arr(arr_json);
  EXPECT_FALSE(arr.status().is_ok());

  json frac_json = json::parse(R"({"n":1.5})");
  JsonFields frac(frac_json);
  int64_t n = 0;
  frac.optional("n", &n);
  EXPECT_FALSE(frac.status().is_ok());
}

TEST(Metrics, RendersPrometheusText) {
  MetricsRegistry reg;
  reg.counter("tidal_requests_total", "Requests.", "code=\"200\"").inc(3);
  reg.counter("tidal_requests_total", "Requests.", "code=\"404\"").inc();
  reg.gauge("tidal_live", "Live things.").set(2);
  reg.gauge_fn("tidal_fn", "Computed.", [] { return 7.0; });
  Histogram& h = reg.histogram("tidal_latency_seconds", "Latency.", {0.001, 0.01, 0.1});
  h.observe(0.0005);
  h.observe(0.05);
  h.observe(5);
  std::string text = reg.render();
  EXPECT_NE(text.find("# TYPE tidal_requests_total counter\ntidal_requests_total{code=\"200\"} 3\n"
                      "tidal_requests_total{code=\"404\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tidal_live 2\n"), std::string::npos);
  EXPECT_NE(text.find("tidal_fn 7\n"), std::string::npos);
  EXPECT_NE(text.find("tidal_latency_seconds_bucket{le=\"0.01\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("tidal_latency_seconds_bucket{le=\"0.1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("tidal_latency_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("tidal_latency_seconds_count 3\n"), std::string::npos);
  EXPECT_DOUBLE_EQ(h.quantile(0.5), 0.1);
}

}  // namespace
}  // namespace tidal::http
