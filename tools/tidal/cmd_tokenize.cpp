// tidal tokenize --model DIR (--text T | --file F) [--json] [--no-special-tokens]: text -> ids.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "command.h"
#include "tidal/tokenizer/tokenizer.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal tokenize --model DIR (--text T | --file F) [--json] [--no-special-tokens]
Encodes text with the model's tokenizer.json (DIR may also be the tokenizer.json itself).
Prints the ids space-separated, or with --json: {"ids": [...]}.
Special tokens written in the text (e.g. <|im_end|>) are matched; the post-processor's tokens
(e.g. BOS) are added unless --no-special-tokens. Text starting with "--": use --text=...
)";

int run_tokenize(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const auto model = args.get("model");
  const bool has_text = args.has("text"), has_file = args.has("file");
  const auto text = args.get("text");
  const auto file = args.get("file");
  const bool as_json = args.has("json");
  const bool no_special = args.has("no-special-tokens");
  if (!args.finish()) return 2;
  if (!model) {
    args.error("--model DIR is required (see --help)");
    return 2;
  }
  if (has_text == has_file) {
    args.error("give exactly one of --text T or --file F (see --help)");
    return 2;
  }
  std::string input;
  if (text) {
    input = *text;
  } else {
    std::ifstream in(*file, std::ios::binary);
    if (!in) return tidal::cli::fail(args, tidal::not_found(*file + ": cannot open"));
    std::ostringstream ss;
    ss << in.rdbuf();
    input = ss.str();
  }
  auto tok = tidal::Tokenizer::load(*model);
  if (!tok) return tidal::cli::fail(args, tok.status());
  const std::vector<int32_t> ids = tok->encode(input, !no_special);
  if (as_json) {
    std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
  } else {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace

TIDAL_COMMAND("tokenize", "text -> token ids with the model's tokenizer.json", run_tokenize);
