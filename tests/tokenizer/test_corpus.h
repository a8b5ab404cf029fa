// Strings the tokenizer tests encode: hand-picked edge cases plus deterministic random mixes.
#pragma once

#include <random>
#include <string>
#include <vector>

namespace tidal::test {

inline std::vector<std::string> tokenizer_corpus(size_t n_random = 200) {
  std::vector<std::string> corpus = {
      "",
      "Hello world",
      "Hello, world! How's it going? I'm fine; we'll see, they'd've said it's OK.",
      "HOW'S IT GOING? I'M FINE, WE'LL SEE",
      "  leading spaces",
      "trailing spaces   ",
      "multiple   spaces  between    words",
      "\n\n\nnewlines\n\n",
      "\t tabs\t\t and\ttabs",
      "\r\n windows line\r\nends \r\n",
      "1234567890 12 3.14159 -42 1e10 2024-01-01 0x1F",
      "\xd9\xa3\xd9\xa4\xd9\xa5 arabic digits, \xe2\x85\xa7 roman eight",
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88\xe3\x81\xa7\xe3\x81\x99\xe3\x80\x82",
      "\xe4\xb8\xad\xe6\x96\x87\xe6\x96\x87\xe6\x9c\xac\xef\xbc\x8c\xe6\xb5\x8b\xe8\xaf\x95\xe4\xb8\x80\xe4\xb8\x8b\xe3\x80\x82",
      "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xed\x85\x8d\xec\x8a\xa4\xed\x8a\xb8",
      "\xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd\xce\xb9\xce\xba\xce\xac \xd1\x80\xd1\x83\xd1\x81\xd1\x81\xd0\xba\xd0\xb8\xd0\xb9",
      "emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7\xe2\x80\x8d\xf0\x9f\x91\xa6 \xf0\x9f\x8f\xb3\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x8c\x88!",
      "mixed \xe4\xb8\xad\xe6\x96\x87 and English 123 \xf0\x9f\x98\x80",
      "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
      "text<|endoftext|>more text",
      "<|im_start|><|im_end|><|endoftext|>",
      "<|im_start <|im_end| |im_end|> <|IM_END|>",
      "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
      "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
      "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'Ve x's",
      "\xc5\xbf \xe2\x80\x99s don\xe2\x80\x99t",
      "\xc2\xa0nbsp\xe2\x80\x83" "em\xe3\x80\x80ideographic\xc2\x85nel\xe2\x80\x8bzwsp",
      std::string(300, 'a'),
      "supercalifragilisticexpialidocious antidisestablishmentarianism",
      "https://example.com/path/to?query=1&b=2#frag",
      "caf\x65\xcc\x81 e\xcc\x81 A\xcc\x8a \xef\xac\x81 ligature",  // combining marks: NFC changes them
      std::string("x").append(100, ' ').append("y"),
      std::string(40, '\n') + "end",
      "   \n   \n\t  ",
      "!!!??? ... --- *** ### $$$ %%% ^^^ &&& ((( )))",
      "\x01\x02\x7f control\x1b[0m chars",
  };
  const std::vector<std::string> fragments = {
      "the", " quick", "brown", "fox", "Hello", "WORLD", "don't", "I'll", "42", "3.14", "1000000",
      "\xe4\xbd\xa0\xe5\xa5\xbd", "\xe4\xb8\x96\xe7\x95\x8c", "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf",
      "\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "\xe2\x80\x8d", "caf\xc3\xa9", "na\xc3\xafve",
      "<|im_start|>", "<|im_end|>", "<|endoftext|>", "{", "}", "();", "=>", "//", "#", "\"quoted\"",
      "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", "e\xcc\x81",
  };
  const std::vector<std::string> separators = {"", " ", "  ", "\n", "\n\n", "\t", " \n ", "   "};
  std::mt19937 rng(12345);
  for (size_t i = 0; i < n_random; ++i) {
    std::string s;
    const size_t n = 1 + rng() % 8;
    for (size_t k = 0; k < n; ++k) {
      s += fragments[rng() % fragments.size()];
      s += separators[rng() % separators.size()];
    }
    corpus.push_back(std::move(s));
  }
  return corpus;
}

}  // namespace tidal::test
