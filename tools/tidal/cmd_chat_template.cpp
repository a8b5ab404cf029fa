// tidal chat-template --model DIR --messages FILE.json [--tools FILE.json]
//   [--add-generation-prompt] [--enable-thinking true|false]: the rendered prompt, byte-exact.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "command.h"
#include "tidal/core/json_nesting.h"
#include "tidal/tokenizer/chat_template.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal chat-template --model DIR --messages FILE.json [--tools FILE.json]
                           [--add-generation-prompt] [--enable-thinking true|false]
Renders the chat_template of DIR/tokenizer_config.json (or DIR/chat_template.jinja) and writes
the text to stdout exactly (no newline added). FILE.json: a JSON array of messages
({"role": ..., "content": ..., "tool_calls": ...}); --tools: a JSON array of tool schemas.
bos_token and eos_token come from tokenizer_config.json.
)";

tidal::Expected<nlohmann::ordered_json> read_json(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return tidal::not_found(std::string(flag) + " " + path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (tidal::json_nesting_exceeds(ss.str())) {
    return tidal::invalid_argument(std::string(flag) + " " + path + ": arrays/objects nested deeper than " +
                                   std::to_string(tidal::kMaxJsonNesting) + " levels");
  }
  auto j = nlohmann::ordered_json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return tidal::invalid_argument(std::string(flag) + " " + path + ": not valid JSON");
  if (!j.is_array()) return tidal::invalid_argument(std::string(flag) + " " + path + ": expected a JSON array");
  return j;
}

int run_chat_template(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const auto model = args.get("model");
  const auto messages_path = args.get("messages");
  const auto tools_path = args.get("tools");
  const bool add_generation_prompt = args.has("add-generation-prompt");
  const auto enable_thinking = args.get("enable-thinking");
  if (!args.finish()) return 2;
  if (!model || !messages_path) {
    args.error("--model DIR and --messages FILE.json are required (see --help)");
    return 2;
  }
  tidal::ChatTemplateInputs inputs;
  inputs.add_generation_prompt = add_generation_prompt;
  if (enable_thinking) {
    if (*enable_thinking != "true" && *enable_thinking != "false") {
      args.error("--enable-thinking expects true or false, got '" + *enable_thinking + "'");
      return 2;
    }
    inputs.extra["enable_thinking"] = *enable_thinking == "true";
  }
  auto messages = read_json(*messages_path, "--messages");
  if (!messages) return tidal::cli::fail(args, messages.status());
  inputs.messages = std::move(*messages);
  if (tools_path) {
    auto tools = read_json(*tools_path, "--tools");
    if (!tools) return tidal::cli::fail(args, tools.status());
    inputs.tools = std::move(*tools);
  }
  auto tmpl = tidal::ChatTemplate::load(*model);
  if (!tmpl) return tidal::cli::fail(args, tmpl.status());
  auto text = tmpl->render(inputs);
  if (!text) return tidal::cli::fail(args, text.status());
  std::fwrite(text->data(), 1, text->size(), stdout);
  return 0;
}

}  // namespace

TIDAL_COMMAND("chat-template", "render a model's chat template for a conversation", run_chat_template);
