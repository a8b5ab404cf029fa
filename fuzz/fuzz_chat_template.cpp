// libFuzzer target: the chat-template lexer, parser and interpreter must fail cleanly (a Status),
// never crash or hang, on any template text. The input is the template; it is rendered with a
// small fixed conversation. Seeds: fuzz/corpus/chat_template.
// Run: build/fuzz/fuzz/fuzz_chat_template -max_total_time=60 -timeout=5 fuzz/corpus/chat_template
#include <cstdint>
#include <string_view>

#include "tidal/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tmpl = tidal::ChatTemplate::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!tmpl) return 0;
  static const nlohmann::ordered_json kMessages = nlohmann::ordered_json::parse(
      R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi <b>"},
          {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
          {"role": "tool", "content": "42"}])");
  tidal::ChatTemplateInputs in;
  in.messages = kMessages;
  in.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  in.add_generation_prompt = true;
  in.bos_token = "<s>";
  auto text = tmpl->render(in);
  (void)text;
  return 0;
}
