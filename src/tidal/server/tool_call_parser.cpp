#include "tidal/server/tool_call_parser.h"

#include <nlohmann/json.hpp>

#include "tidal/core/json_nesting.h"

namespace tidal::server {

namespace {
constexpr const char* kOpen = "<tool_call>";
constexpr const char* kClose = "</tool_call>";

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}
}  // namespace

ParsedOutput parse_tool_calls(const std::string& text) {
  ParsedOutput out;
  std::string content;
  size_t pos = 0;
  while (true) {
    const size_t open = text.find(kOpen, pos);
    if (open == std::string::npos) {
      content += text.substr(pos);
      break;
    }
    const size_t body = open + std::char_traits<char>::length(kOpen);
    size_t close = text.find(kClose, body);
    const size_t end = close == std::string::npos ? text.size() : close + std::char_traits<char>::length(kClose);
    const std::string inner = trim(text.substr(body, (close == std::string::npos ? text.size() : close) - body));
    // Model output is untrusted too: absurdly nested "JSON" stays text (core/json_nesting.h).
    auto j = json_nesting_exceeds(inner) ? nlohmann::json(nlohmann::json::value_t::discarded)
                                         : nlohmann::json::parse(inner, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("name") && j["name"].is_string()) {
      content += text.substr(pos, open - pos);
      ToolCall call;
      call.name = j["name"].get<std::string>();
      const auto args = j.find("arguments");
      if (args == j.end() || args->is_null()) {
        call.arguments = "{}";
      } else {
        call.arguments = args->is_string() ? args->get<std::string>() : args->dump();
      }
      out.tool_calls.push_back(std::move(call));
    } else {
      content += text.substr(pos, end - pos);  // not a valid call: keep it as text
    }
    pos = end;
  }
  out.content = trim(content);
  return out;
}

ReasoningSplit split_reasoning(const std::string& text) {
  ReasoningSplit r;
  const size_t close = text.find("</think>");
  if (close == std::string::npos) {
    r.content = text;
    return r;
  }
  std::string reasoning = text.substr(0, close);
  if (const size_t open = reasoning.find("<think>"); open != std::string::npos) reasoning = reasoning.substr(open + 7);
  r.reasoning = trim(reasoning);
  r.content = text.substr(close + 8);
  const size_t b = r.content.find_first_not_of("\r\n");
  r.content = b == std::string::npos ? "" : r.content.substr(b);
  r.found = true;
  return r;
}

std::string ToolCallStreamFilter::push(const std::string& delta) {
  if (in_call_) {
    held_ += delta;
    return {};
  }
  held_ += delta;
  const size_t open = held_.find(kOpen);
  if (open != std::string::npos) {
    in_call_ = true;
    std::string safe = held_.substr(0, open);
    held_ = held_.substr(open);
    return safe;
  }
  // Hold back a tail that could be the start of "<tool_call>".
  const std::string tag = kOpen;
  size_t keep = 0;
  for (size_t n = std::min(tag.size() - 1, held_.size()); n > 0; --n) {
    if (held_.compare(held_.size() - n, n, tag, 0, n) == 0) {
      keep = n;
      break;
    }
  }
  std::string safe = held_.substr(0, held_.size() - keep);
  held_ = held_.substr(held_.size() - keep);
  return safe;
}

}  // namespace tidal::server
