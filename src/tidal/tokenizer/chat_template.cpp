#include "tidal/tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tidal/tokenizer/jinja/interpreter.h"
#include "tidal/tokenizer/jinja/lexer.h"
#include "tidal/tokenizer/jinja/parser.h"

namespace tidal {

struct ChatTemplate::Impl {
  jinja::NodeList program;
  jinja::NodeList tool_use_program;  // empty unless a "tool_use" template was given
  bool has_tool_use = false;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

namespace {

Expected<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Expected<jinja::NodeList> parse_program(std::string_view source, const std::string& what) {
  try {
    return jinja::parse(jinja::tokenize(source));
  } catch (const jinja::Error& e) {
    return invalid_argument(what + ": " + e.message);
  }
}

std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

Expected<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  auto impl = std::make_shared<Impl>();
  TIDAL_ASSIGN_OR_RETURN(impl->program, parse_program(source, "chat_template"));
  return ChatTemplate(std::move(impl));
}

Expected<ChatTemplate> ChatTemplate::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path config_path(path);
  if (fs::is_directory(config_path, ec)) config_path /= "tokenizer_config.json";
  const fs::path dir = config_path.parent_path();
  nlohmann::json config = nlohmann::json::object();
  if (fs::exists(config_path, ec)) {
    TIDAL_ASSIGN_OR_RETURN(std::string text, read_text(config_path));
    config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return invalid_argument(config_path.string() + ": not a JSON object");
    }
  }
  auto impl = std::make_shared<Impl>();
  impl->bos_token = config_token(config, "bos_token");
  impl->eos_token = config_token(config, "eos_token");
  const std::string where = config_path.string() + ": chat_template";
  auto it = config.find("chat_template");
  if (it != config.end() && it->is_string()) {
    TIDAL_ASSIGN_OR_RETURN(impl->program, parse_program(it->get<std::string>(), where));
  } else if (it != config.end() && it->is_array()) {
    bool found_default = false;
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& e = (*it)[i];
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("template") ||
          !e["template"].is_string()) {
        return invalid_argument(where + "[" + std::to_string(i) + "]: expected {\"name\", \"template\"}");
      }
      const std::string name = e["name"].get<std::string>();
      TIDAL_ASSIGN_OR_RETURN(auto program, parse_program(e["template"].get<std::string>(), where + "." + name));
      if (name == "default") { impl->program = std::move(program); found_default = true; }
      else if (name == "tool_use") { impl->tool_use_program = std::move(program); impl->has_tool_use = true; }
    }
    if (!found_default) return invalid_argument(where + ": no template named \"default\"");
  } else if (it != config.end() && !it->is_null()) {
    return invalid_argument(where + ": expected a string or a list of named templates");
  } else if (fs::exists(dir / "chat_template.jinja", ec)) {
    TIDAL_ASSIGN_OR_RETURN(std::string text, read_text(dir / "chat_template.jinja"));
    TIDAL_ASSIGN_OR_RETURN(impl->program, parse_program(text, (dir / "chat_template.jinja").string()));
  } else {
    return not_found(path + ": no chat_template in tokenizer_config.json and no chat_template.jinja");
  }
  return ChatTemplate(std::move(impl));
}

Expected<std::string> ChatTemplate::render(const ChatTemplateInputs& inputs) const {
  if (!inputs.messages.is_array()) return invalid_argument("messages: expected an array of message objects");
  for (size_t i = 0; i < inputs.messages.size(); ++i) {
    if (!inputs.messages[i].is_object()) {
      return invalid_argument("messages[" + std::to_string(i) + "]: expected an object");
    }
  }
  if (inputs.tools && !inputs.tools->is_array() && !inputs.tools->is_null()) {
    return invalid_argument("tools: expected an array of tool schemas");
  }
  if (!inputs.extra.is_object()) return invalid_argument("extra: expected an object");
  jinja::Object globals;
  globals.set("messages", jinja::Value::from_json(inputs.messages));
  if (inputs.tools) globals.set("tools", jinja::Value::from_json(*inputs.tools));
  globals.set("add_generation_prompt", jinja::Value::boolean(inputs.add_generation_prompt));
  const auto& bos = inputs.bos_token ? inputs.bos_token : impl_->bos_token;
  const auto& eos = inputs.eos_token ? inputs.eos_token : impl_->eos_token;
  if (bos) globals.set("bos_token", jinja::Value::string(*bos));
  if (eos) globals.set("eos_token", jinja::Value::string(*eos));
  for (auto it = inputs.extra.begin(); it != inputs.extra.end(); ++it) {
    globals.set(it.key(), jinja::Value::from_json(it.value()));
  }
  const bool use_tools = impl_->has_tool_use && inputs.tools && !inputs.tools->is_null();
  try {
    jinja::Interpreter interpreter(globals);
    return interpreter.render(use_tools ? impl_->tool_use_program : impl_->program);
  } catch (const jinja::Error& e) {
    return invalid_argument("chat_template: " + e.message);
  }
}

const std::optional<std::string>& ChatTemplate::bos_token() const { return impl_->bos_token; }
const std::optional<std::string>& ChatTemplate::eos_token() const { return impl_->eos_token; }

}  // namespace tidal
