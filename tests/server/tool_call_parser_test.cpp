#include "tidal/server/tool_call_parser.h"

#include <gtest/gtest.h>

namespace tidal::server {
namespace {

TEST(ToolCallParserTest, ParsesQwenBlocksAndKeepsTheRest) {
  auto p = parse_tool_calls(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>{\"name\": \"now\"}</tool_call>");
  EXPECT_EQ(p.content, "Let me check.");
  ASSERT_EQ(p.tool_calls.size(), 2u);
  EXPECT_EQ(p.tool_calls[0].name, "get_weather");
  EXPECT_EQ(p.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(p.tool_calls[1].arguments, "{}");
  // Broken JSON stays as text.
  auto q = parse_tool_calls("<tool_call>{not json}</tool_call>");
  EXPECT_TRUE(q.tool_calls.empty());
  EXPECT_EQ(q.content, "<tool_call>{not json}</tool_call>");
  // So does absurdly nested JSON (the model's output is untrusted input too).
  const std::string deep = "<tool_call>{\"name\": \"f\", \"arguments\": " + std::string(50000, '[') +
                           std::string(50000, ']') + "}</tool_call>";
  auto d = parse_tool_calls(deep);
  EXPECT_TRUE(d.tool_calls.empty());
  EXPECT_EQ(d.content, deep);
}

TEST(ToolCallParserTest, StreamFilterHoldsBackMarkup) {
  ToolCallStreamFilter f;
  std::string out;
  for (std::string piece : {"Sure", ". <to", "ol_c", "all>{\"name\"", ": \"x\"}</tool_call>"}) out += f.push(piece);
  EXPECT_EQ(out, "Sure. ");
  EXPECT_EQ(parse_tool_calls(f.held()).tool_calls.size(), 1u);
  ToolCallStreamFilter g;
  EXPECT_EQ(g.push("a <b"), "a <b");  // "<b" cannot start "<tool_call>"
  EXPECT_EQ(g.push("<"), "");
  EXPECT_EQ(g.push("x"), "<x");
}

TEST(ToolCallParserTest, SplitsReasoning) {
  auto r = split_reasoning("<think>\nhmm\n</think>\n\nAnswer");
  EXPECT_TRUE(r.found);
  EXPECT_EQ(r.reasoning, "hmm");
  EXPECT_EQ(r.content, "Answer");
  EXPECT_FALSE(split_reasoning("plain").found);
}

}  // namespace
}  // namespace tidal::server
