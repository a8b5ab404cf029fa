// libFuzzer target: tokenizer.json loading and encode/decode must never crash, whatever the bytes.
// First input byte picks the mode:
//   even: the rest is a tokenizer.json; when it loads, a few fixed strings are encoded and decoded
//         (every id must be in range, decode output valid UTF-8);
//   odd:  the rest is text, encoded with a fixed synthetic byte-level vocabulary and a
//         SentencePiece-style (byte fallback) variant of it; decode(encode(text)) must be valid
//         UTF-8 and streaming decode must join to it (for any loaded tokenizer too, whenever
//         Tokenizer::stream_matches_decode() says the decoder chain streams exactly).
// Seeds: fuzz/corpus/tokenizer. Run: build/fuzz/fuzz/fuzz_tokenizer -max_total_time=60 fuzz/corpus/tokenizer
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tidal/tokenizer/incremental_decoder.h"
#include "tidal/tokenizer/synthetic.h"
#include "tidal/tokenizer/tokenizer.h"
#include "tidal/tokenizer/utf8.h"

namespace {

[[noreturn]] void die(const char* what, std::string_view text) {
  std::fprintf(stderr, "fuzz_tokenizer: %s (text of %zu bytes)\n", what, text.size());
  std::abort();
}

void check(const tidal::Tokenizer& tok, std::string_view text) {
  const auto ids = tok.encode(text);
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) die("id out of range", text);
  }
  const std::string decoded = tok.decode(ids);
  if (!tidal::utf8::is_valid(decoded)) die("decode is not valid UTF-8", text);
  tidal::IncrementalDecoder stream(tok);
  std::string joined;
  for (int32_t id : ids) joined += stream.feed(id);
  joined += stream.finish();
  if (!tidal::utf8::is_valid(joined)) die("streaming decode is not valid UTF-8", text);
  if (tok.stream_matches_decode() && decoded.find("\xef\xbf\xbd") == std::string::npos && joined != decoded) {
    std::fprintf(stderr, "decoded [%s] streamed [%s]\n", decoded.c_str(), joined.c_str());
    die("streaming decode differs from decode", text);
  }
}

const tidal::Tokenizer& synthetic() {
  static const tidal::Tokenizer kTok = *tidal::Tokenizer::from_json_text(tidal::make_synthetic_tokenizer_json(600));
  return kTok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto tok = tidal::Tokenizer::from_json_text(rest);
    if (!tok) return 0;
    for (std::string_view s : {"", "Hello world", " \n\t  x", "\xe4\xb8\xad\xf0\x9f\x98\x80", "<|im_end|>a"}) {
      check(*tok, s);
    }
    return 0;
  }
  check(synthetic(), rest);
  return 0;
}
