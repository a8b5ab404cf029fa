// Tool calls in model output, Qwen3 / Hermes style:
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
// parse_tool_calls() splits a finished completion into plain content and tool calls; a block
// whose JSON does not parse (or lacks "name") stays in the content, untouched.
// ToolCallStreamFilter holds back streamed text from the first "<tool_call>" on, so clients never
// see the markup as content.
#pragma once

#include <string>
#include <vector>

namespace tidal::server {

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text (OpenAI sends arguments as a string)
};

struct ParsedOutput {
  std::string content;  // text outside the parsed blocks, trimmed
  std::vector<ToolCall> tool_calls;
};

ParsedOutput parse_tool_calls(const std::string& text);

// Splits "<think>...</think>rest" (Qwen3 reasoning) into reasoning and the rest; no split when
// there is no "</think>".
struct ReasoningSplit {
  std::string reasoning;
  std::string content;
  bool found = false;
};
ReasoningSplit split_reasoning(const std::string& text);

class ToolCallStreamFilter {
 public:
  // Returns the part of `delta` that is safe to stream as content.
  std::string push(const std::string& delta);
  // At the end: everything held back (to be parsed with parse_tool_calls()).
  const std::string& held() const { return held_; }

 private:
  std::string held_;
  bool in_call_ = false;
};

}  // namespace tidal::server
