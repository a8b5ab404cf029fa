#include "tidal/http/router.h"

#include <gtest/gtest.h>

namespace tidal::http {
namespace {

HttpHandler answer(std::string text) {
  return [text](HttpRequest&) { return HttpResponse::text(200, text); };
}

HttpRequest make(std::string method, std::string path) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

TEST(Router, MatchesLiteralAndParams) {
  Router router;
  router.add("GET", "/v1/sandboxes", answer("list"));
  router.add("POST", "/v1/sandboxes/{id}/exec", answer("exec"));
  router.add("GET", "/v1/sandboxes/{id}", answer("get"));

  auto req = make("POST", "/v1/sandboxes/sb-42/exec");
  EXPECT_EQ(router.dispatch(req).body, "exec");
  EXPECT_EQ(req.param("id"), "sb-42");

  req = make("GET", "/v1/sandboxes/");  // trailing slash ignored
  EXPECT_EQ(router.dispatch(req).body, "list");
  req = make("GET", "/v1/sandboxes/abc");
  EXPECT_EQ(router.dispatch(req).body, "get");
  EXPECT_EQ(req.param("id"), "abc");
}

TEST(Router, LiteralBeatsParam) {
  Router router;
  router.add("GET", "/v1/{name}", answer("param"));
  router.add("GET", "/v1/health", answer("literal"));
  auto req = make("GET", "/v1/health");
  EXPECT_EQ(router.dispatch(req).body, "literal");
  req = make("GET", "/v1/other");
  EXPECT_EQ(router.dispatch(req).body, "param");
}

TEST(Router, NotFoundAndMethodNotAllowed) {
  Router router;
  router.add("GET", "/a/{id}", answer("a"));
  auto req = make("GET", "/b");
  EXPECT_EQ(router.dispatch(req).status, 404);
  req = make("DELETE", "/a/1");
  EXPECT_EQ(router.dispatch(req).status, 405);
  req = make("GET", "/a");  // param must be non-empty
  EXPECT_EQ(router.dispatch(req).status, 404);
  req = make("GET", "/a/1/extra");
  EXPECT_EQ(router.dispatch(req).status, 404);
}

TEST(Router, HandlerExceptionBecomes500) {
  Router router;
  router.add("GET", "/boom", [](HttpRequest&) -> HttpResponse { throw std::runtime_error("kaput"); });
  auto req = make("GET", "/boom");
  HttpResponse r = router.dispatch(req);
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("kaput"), std::string::npos);
}

TEST(Router, ReAddReplaces) {
  Router router;
  router.add("GET", "/x", answer("1"));
  router.add("GET", "/x", answer("2"));
  auto req = make("GET", "/x");
  EXPECT_EQ(router.dispatch(req).body, "2");
}

TEST(Router, InlineRoutesAreMarked) {
  Router router;
  router.add_inline("GET", "/health", answer("ok"));
  router.add("GET", "/slow", answer("s"));
  auto h = make("GET", "/health");
  auto s = make("GET", "/slow");
  auto none = make("GET", "/nope");
  EXPECT_TRUE(router.runs_inline(h));
  EXPECT_FALSE(router.runs_inline(s));
  EXPECT_FALSE(router.runs_inline(none));
  EXPECT_EQ(router.dispatch(h).body, "ok");
  router.add("GET", "/health", answer("again"));  // re-added as a normal route
  EXPECT_FALSE(router.runs_inline(h));
}

TEST(Query, ParsesAndDecodes) {
  auto q = parse_query("path=%2Ftmp%2Fa+b.txt&x=1&x=2&flag&=v");
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->at("path"), "/tmp/a b.txt");
  EXPECT_EQ(q->at("x"), "2");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_FALSE(parse_query("a=%zz").has_value());
  EXPECT_FALSE(parse_query("a=%4").has_value());
  EXPECT_EQ(url_decode("a+b", false).value(), "a+b");
  EXPECT_EQ(url_encode("/a b/ü", true), "/a%20b/%C3%BC");
  EXPECT_EQ(url_decode(url_encode("x/&=?%", false), false).value(), "x/&=?%");
}

TEST(Response, ErrorShape) {
  HttpResponse r = HttpResponse::error(404, "no sandbox 'x'");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["message"], "no sandbox 'x'");
  EXPECT_EQ(j["error"]["type"], "not_found_error");
  EXPECT_EQ(j["error"]["code"], 404);
  EXPECT_TRUE(j["error"]["param"].is_null());
  j = nlohmann::json::parse(HttpResponse::error(400, "'x' must be a number", {}, "x").body);
  EXPECT_EQ(j["error"]["param"], "x");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(HttpResponse::from_status(invalid_argument("bad")).status, 400);
  EXPECT_EQ(HttpResponse::from_status(resource_exhausted("full")).status, 429);
  EXPECT_EQ(HttpResponse::from_status(unimplemented("later")).status, 501);
}

}  // namespace
}  // namespace tidal::http
