// The conformance corpus of issue 3: >= 2,000 strings, deterministic, covering English prose,
// Chinese, Japanese, Korean, code in several languages, emoji and ZWJ sequences, long whitespace
// and newline runs, numbers, mixed scripts, special-token strings embedded in text (of Qwen,
// Llama-3 and DeepSeek), very long words, the empty string; plus the hand-picked edge cases of
// tokenizer_corpus().
#pragma once

#include <random>
#include <string>
#include <vector>

#include "test_corpus.h"

namespace tidal::test {

inline std::vector<std::string> conformance_corpus() {
  std::vector<std::string> corpus = tokenizer_corpus(0);
  const std::vector<std::vector<std::string>> categories = {
      // English prose
      {"The quick brown fox jumps over the lazy dog.", "It's a truth universally acknowledged, that a single man",
       "They'll say we've been there; I'd rather not.", "Mr. O'Neil's 3rd-floor apartment (approx. 85 m²) costs $2,450/month.",
       "However, the results — surprisingly — were inconclusive…", "\"Quoted,\" she said, 'and single-quoted.'",
       "e.g. i.e. etc. vs. U.S.A. Ph.D.", "ALL CAPS SENTENCE WITH CONTRACTIONS: DON'T, WON'T, SHAN'T."},
      // Chinese
      {"中华人民共和国成立于1949年。", "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。",
       "你好！请问今天天气怎么样？", "《红楼梦》是中国古典四大名著之一。", "繁體中文與简体中文混合測試"},
      // Japanese
      {"東京は日本の首都です。", "ひらがなとカタカナ、そして漢字を混ぜた文章。", "ｶﾀｶﾅ半角とＡＢＣ全角。",
       "吾輩は猫である。名前はまだ無い。", "コンピューター・プログラミング"},
      // Korean and other scripts
      {"안녕하세요, 세계! 반갑습니다.", "Привет, мир! Как дела?", "Γειά σου Κόσμε", "مرحبا بالعالم، كيف حالك؟",
       "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới", "Tiếng Việt có dấu: ắ ằ ẳ ẵ ặ",
       "ქართული ენა", "Ελληνικά και English μαζί", "ʻōlelo Hawaiʻi"},
      // Code
      {"def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
       "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n}\n",
       "const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);",
       "fn main() {\n    let s: String = \"hi\".to_owned();\n    println!(\"{s}\");\n}",
       "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
       "<div class=\"box\"><a href='/x?y=1&z=2'>link</a></div>",
       "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
       "for f in *.txt; do echo \"$f\" | tr a-z A-Z; done 2>&1 >/dev/null",
       "    \tindented_with_mixed_whitespace = {'a': 1}\n\t\t\treturn None",
       "x+=1;y-=2;z*=3;w/=4;a%=5;b**=6;c//=7;d<<=1;e>>=2;f&=g|h^i;",
       "public static void main(String[] args) { System.out.println(\"Hello\"); }",
       "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"go\") }"},
      // Emoji and ZWJ sequences
      {"😀😃😄😁", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇫🇷🇯🇵🇺🇸", "❤️‍🔥", "🧑🏽‍💻 coding",
       "keycap 1️⃣ #️⃣", "text😀text", "😀 😀  😀   😀"},
      // Numbers
      {"0", "42", "3.14159265358979", "1,234,567.89", "-0.0001", "1e-10 6.022e23", "2024-12-31T23:59:59Z",
       "192.168.0.1:8080", "+1 (555) 123-4567", "123456789012345678901234567890", "٣٤٥ ١٢", "Ⅻ ½ ¾ ²³"},
      // Whitespace runs
      {" ", "  ", "\t", "\n", "\r\n", "\n\n\n\n\n\n\n\n", "     \n     ", "a\u00a0\u00a0b", "x\u3000\u3000y",
       "\t\t\t\t", " \n \n \n", "\r\r\n\n", "end with spaces      ", "      start with spaces"},
      // Special tokens (of the three vocabularies) in text
      {"<|im_start|>system\nYou are helpful.<|im_end|>", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
       "<｜begin▁of▁sentence｜><｜User｜>hello<｜Assistant｜>", "text<|endoftext|>text", "<|eot_id|><|eot_id|>",
       "not special: <|im_start <|eot_id| <｜User", "<think>\nreasoning\n</think>\n\nanswer", "<tool_call>\n{}\n</tool_call>"},
      // Mixed scripts
      {"Hello世界Привет🌍مرحبا", "abc中文def日本語ghi한국어", "2024年12月31日", "价格：¥1,299.00（含税）", "iPhone15Pro価格",
       "naïve café résumé jalapeño", "Straße Maß Œuvre ĳ ǆ", "ＡＢＣ１２３", "e\u0301 o\u0308 n\u0303"},
  };
  // Each category alone, then random mixes with random separators.
  for (const auto& cat : categories) corpus.insert(corpus.end(), cat.begin(), cat.end());
  const std::vector<std::string> separators = {"", " ", "  ", "\n", "\n\n", "\t", " \n ", "   ", "\r\n", "\u00a0",
                                               std::string(17, ' '), std::string(9, '\n'), " \t \t"};
  std::mt19937 rng(2024);
  while (corpus.size() < 2000) {
    std::string s;
    const size_t n = 1 + rng() % 5;
    for (size_t k = 0; k < n; ++k) {
      const auto& cat = categories[rng() % categories.size()];
      std::string piece = cat[rng() % cat.size()];
      if (rng() % 4 == 0 && piece.size() > 4) {  // a suffix, cut at a character boundary
        size_t cut = rng() % (piece.size() / 2);
        while (cut < piece.size() && (static_cast<unsigned char>(piece[cut]) & 0xC0) == 0x80) ++cut;
        piece = piece.substr(cut);
      }
      s += piece;
      s += separators[rng() % separators.size()];
    }
    corpus.push_back(std::move(s));
  }
  // Very long words and runs.
  corpus.push_back(std::string(1000, 'x'));
  corpus.push_back(std::string(500, ' ') + "x");
  corpus.push_back(std::string(300, '\n'));
  std::string long_word;
  for (int i = 0; i < 200; ++i) long_word += "abc";
  corpus.push_back(long_word);
  std::string long_cjk;
  for (int i = 0; i < 300; ++i) long_cjk += "\xe4\xb8\xad";
  corpus.push_back(long_cjk);
  std::string long_digits;
  for (int i = 0; i < 500; ++i) long_digits += static_cast<char>('0' + i % 10);
  corpus.push_back(long_digits);
  corpus.push_back("");
  return corpus;
}

}  // namespace tidal::test
