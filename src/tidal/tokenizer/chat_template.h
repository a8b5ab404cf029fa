// ChatTemplate: renders the `chat_template` of a model's tokenizer_config.json (a Jinja template)
// into the prompt text, byte-identical to the reference renderer @huggingface/jinja (which is what
// transformers.js uses; it mirrors Python Jinja2 with trim_blocks and lstrip_blocks).
//
//   auto tmpl = tidal::ChatTemplate::load("models/qwen3");
//   tidal::ChatTemplateInputs in;
//   in.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
//   in.add_generation_prompt = true;
//   in.extra["enable_thinking"] = false;
//   Expected<std::string> prompt = tmpl->render(in);
//
// Supported: text, {{ }}, {% if/elif/else %}, {% for %} (loop.*, else, inline if, break/continue),
// {% set %} (names, tuples, namespace attributes, blocks), {% macro %}, {% call %}, {% filter %},
// comments, whitespace control; the operators, filters, tests and string/dict methods listed in
// docs/tokenizer.md; globals namespace(), range(), raise_exception(), strftime_now().
// Anything else fails with an error naming the construct and its line.
//
// Thread-safety: a ChatTemplate is immutable after load/parse; render() may run concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"

namespace tidal {

struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{"role":..., "content":...}]
  std::optional<nlohmann::ordered_json> tools;                        // array of tool schemas
  bool add_generation_prompt = false;
  // More template variables (e.g. {"enable_thinking": false}); a name here overrides the above.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // Override the tokens from tokenizer_config.json; unset tokens stay undefined in the template.
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

class ChatTemplate {
 public:
  // Parses template source. Errors: kInvalidArgument naming the line and construct.
  static Expected<ChatTemplate> parse(std::string_view source);
  // From a model folder (or a tokenizer_config.json path): its "chat_template" (a string, or a
  // list of {"name", "template"}; "tool_use" is used when tools are given), else the folder's
  // chat_template.jinja; bos_token/eos_token from the config. kNotFound when there is none.
  static Expected<ChatTemplate> load(const std::string& path);

  // Renders `inputs`. Errors: kInvalidArgument for bad inputs or a render error (message names the
  // template line and problem, e.g. "line 12: unsupported filter 'wordwrap' for string"), and for
  // raise_exception() in the template ("raise_exception: <its message>").
  Expected<std::string> render(const ChatTemplateInputs& inputs) const;

  const std::optional<std::string>& bos_token() const;
  const std::optional<std::string>& eos_token() const;

 private:
  struct Impl;
  explicit ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace tidal
