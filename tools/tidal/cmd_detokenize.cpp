// tidal detokenize --model DIR --ids 1,2,3 [--skip-special-tokens]: ids -> text.
#include <cstdio>

#include "cli_util.h"
#include "command.h"
#include "tidal/tokenizer/tokenizer.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal detokenize --model DIR --ids 1,2,3 [--skip-special-tokens]
Decodes token ids with the model's tokenizer.json and writes the text to stdout exactly (no
newline added). Invalid UTF-8 produced by byte tokens becomes U+FFFD, as in Hugging Face tokenizers.
)";

int run_detokenize(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const auto model = args.get("model");
  const auto ids_text = args.get("ids");
  const bool skip_special = args.has("skip-special-tokens");
  if (!args.finish()) return 2;
  if (!model || !ids_text) {
    args.error("--model DIR and --ids 1,2,3 are required (see --help)");
    return 2;
  }
  auto ids = tidal::cli::parse_id_list(*ids_text);
  if (!ids) return tidal::cli::fail(args, ids.status());
  auto tok = tidal::Tokenizer::load(*model);
  if (!tok) return tidal::cli::fail(args, tok.status());
  for (int32_t id : *ids) {
    if (id >= tok->vocab_size()) {
      return tidal::cli::fail(args, tidal::invalid_argument("token id " + std::to_string(id) +
                                                            " is out of range (vocab size " +
                                                            std::to_string(tok->vocab_size()) + ")"));
    }
  }
  const std::string text = tok->decode(*ids, skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace

TIDAL_COMMAND("detokenize", "token ids -> text with the model's tokenizer.json", run_detokenize);
