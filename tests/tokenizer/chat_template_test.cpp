// ChatTemplate without the reference: errors name the construct, inputs are validated, and the
// renders of a few fixed cases (checked against @huggingface/jinja when written) stay put.
#include "tidal/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace tidal {
namespace {

using ojson = nlohmann::ordered_json;

std::string render(const std::string& source, const ojson& extra = ojson::object(),
                   ojson messages = ojson::array()) {
  auto t = ChatTemplate::parse(source);
  if (!t) return "PARSE ERROR: " + t.status().message();
  ChatTemplateInputs in;
  in.messages = std::move(messages);
  in.extra = extra;
  auto r = t->render(in);
  return r ? *r : "ERROR: " + r.status().message();
}

TEST(ChatTemplate, RendersBasics) {
  EXPECT_EQ(render("Hello {{ name }}!", {{"name", "W"}}), "Hello W!");
  EXPECT_EQ(render("{% for i in [1, 2, 3] %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}"), "1,2,3");
  EXPECT_EQ(render("{{ none }}{{ undefined_var }}|{{ true }}|{{ 2.0 }}|{{ [1, 'a'] }}"), "|true|2.0|[1, \"a\"]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson }}"), "{\"b\": 1, \"a\": 2}");  // insertion order
  EXPECT_EQ(render("a\n{%- if true %}\n  b\n{% endif %}\nc\n"), "a  b\nc");
}

TEST(ChatTemplate, QwenStyleConversation) {
  const std::string source =
      "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
      "'<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
      "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
      "{%- endif %}{%- endif %}";
  auto t = ChatTemplate::parse(source);
  ASSERT_TRUE(t) << t.status().message();
  ChatTemplateInputs in;
  in.messages = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  in.add_generation_prompt = true;
  in.extra["enable_thinking"] = false;
  EXPECT_EQ(*t->render(in),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, StripWithCharsFollowsPython) {
  // Python's str.strip(chars) (what transformers runs); @huggingface/jinja ignores the argument.
  EXPECT_EQ(render("[{{ '\\n  x \\n'.strip('\\n') }}]"), "[  x ]");
  EXPECT_EQ(render("[{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}]"), "[axx|xxa]");
}

// Python Jinja2 behaviour where @huggingface/jinja fails.
TEST(ChatTemplate, PythonExtensions) {
  EXPECT_EQ(render("{{ (1, 2) | tojson }}"), "[1, 2]");
  EXPECT_EQ(render("{% for c in 'ab' %}{{ c }}.{% endfor %}"), "a.b.");
  EXPECT_EQ(render("{{ '-' * 3 }}{{ 'b' > 'a' }}"), "---true");
  EXPECT_EQ(render("{{ [3, 4, 5] | select('odd') | list | tojson }}{{ [1, 2] | reject('equalto', 1) | list }}"),
            "[3, 5][2]");
  EXPECT_EQ(render("{{ x | default }}|{{ 'a' | trim('a') }}|{{ '\U0001F600' if false else 'ok' }}"), "||ok");
}

TEST(ChatTemplate, ErrorsNameTheConstruct) {
  EXPECT_NE(render("{% include 'x' %}").find("unsupported statement '{% include %}'"), std::string::npos);
  EXPECT_NE(render("line1\n{{ x | wordwrap }}", {{"x", "s"}}).find("line 2: unsupported filter 'wordwrap'"),
            std::string::npos);
  EXPECT_NE(render("{{ 1 is divisibleby }}").find("unsupported test 'is divisibleby'"), std::string::npos);
  EXPECT_NE(render("{{ raise_exception('no system role') }}").find("raise_exception: no system role"),
            std::string::npos);
  EXPECT_NE(render("{{ 'abc'.zfill(5) }}").find("unsupported function method 'zfill'"), std::string::npos);
  EXPECT_NE(render("{% for x in y %}").find("unclosed 'for' block"), std::string::npos);
  EXPECT_NE(render("{{ 'abc }}").find("unterminated string literal"), std::string::npos);
  EXPECT_NE(render("{{ a + 1 }}").find("undefined"), std::string::npos);
}

TEST(ChatTemplate, RejectsBadInputs) {
  auto t = ChatTemplate::parse("{{ messages | length }}");
  ASSERT_TRUE(t);
  ChatTemplateInputs in;
  in.messages = ojson::parse(R"({"role": "user"})");
  EXPECT_EQ(t->render(in).status().code(), StatusCode::kInvalidArgument);
  in.messages = ojson::parse(R"([1])");
  EXPECT_NE(t->render(in).status().message().find("messages[0]"), std::string::npos);
  EXPECT_FALSE(ChatTemplate::parse("\xff{{ x }}"));  // not UTF-8
}

TEST(ChatTemplate, BoundsRecursionAndRange) {
  EXPECT_NE(render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("recursion is too deep"),
            std::string::npos);
  EXPECT_NE(render("{{ range(100000000) | length }}").find("too long"), std::string::npos);
  // A namespace that holds itself (found by the fuzzer: a stack overflow in tojson). Printing it is
  // an error, and the cycle is broken after the render (ASan's leak check runs this test).
  const std::string cycle = "{% set ns = namespace(x=0) %}{% set ns.x = [ns] %}";
  EXPECT_NE(render(cycle + "{{ ns | tojson }}").find("does it contain itself?"), std::string::npos);
  EXPECT_NE(render(cycle + "{{ ns }}").find("does it contain itself?"), std::string::npos);
  EXPECT_EQ(render(cycle + "{{ ns.x | length }}"), "1");
}

// Integers are int64: a result outside it is an error naming the operation (found by the
// chat-template fuzzer as signed overflow), and arithmetic inside it is unchanged.
TEST(ChatTemplate, IntegerOverflowIsAnError) {
  const std::string max = "9223372036854775807", min = "(-9223372036854775807 - 1)";
  EXPECT_NE(render("{{ " + max + " + 1 }}").find("integer overflow in '+'"), std::string::npos);
  EXPECT_NE(render("{{ " + min + " - 1 }}").find("integer overflow in '-'"), std::string::npos);
  EXPECT_NE(render("{{ " + max + " * 2 }}").find("integer overflow in '*'"), std::string::npos);
  EXPECT_NE(render("{{ -" + min + " }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render("{{ " + min + " | abs }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render("{{ " + min + " // -1 }}").find("integer overflow"), std::string::npos);
  EXPECT_EQ(render("{{ " + min + " % -1 }}"), "0");
  EXPECT_NE(render("{{ 10 ** 19 }}").find("does not fit a 64-bit integer"), std::string::npos);
  EXPECT_NE(render("{{ (10.0 ** 300) | int }}").find("int: 1e+300 does not fit a 64-bit integer"), std::string::npos);
  EXPECT_EQ(render("{{ range(" + max + " - 2, " + max + ", 5) | list }}"), "[9223372036854775805]");
  EXPECT_EQ(render("{{ [1, 2, 3][1::" + max + "] }}"), "[2]");
  EXPECT_EQ(render("{{ " + max + " - 1 }} {{ -7 // 2 }} {{ -7 % 2 }} {{ -3 | abs }} {{ 2 ** 10 }}"),
            "9223372036854775806 -4 -1 3 1024");
  // The fuzzer's input: a saturated integer literal plus another one.
  EXPECT_NE(render("{% set ns = namespace(x=0888888888888888888888888888+88888888888) %}{{ ns.x }}")
                .find("integer overflow in '+'"),
            std::string::npos);
}

TEST(ChatTemplate, LoadsFromAModelFolder) {
  const auto dir = std::filesystem::temp_directory_path() / ("tidal_chat_load_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>",
            "chat_template": [{"name": "default", "template": "D{{ bos_token }}"},
                              {"name": "tool_use", "template": "T{{ tools | length }}"}]})";
  auto t = ChatTemplate::load(dir.string());
  ASSERT_TRUE(t) << t.status().message();
  EXPECT_EQ(t->bos_token(), "<s>");
  EXPECT_EQ(t->eos_token(), "</s>");
  ChatTemplateInputs in;
  EXPECT_EQ(*t->render(in), "D<s>");
  in.tools = ojson::parse("[{}, {}]");
  EXPECT_EQ(*t->render(in), "T2");

  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "</s>"})";
  std::ofstream(dir / "chat_template.jinja") << "J{{ eos_token }}\n";
  t = ChatTemplate::load(dir.string());
  ASSERT_TRUE(t) << t.status().message();
  EXPECT_EQ(*t->render(ChatTemplateInputs{}), "J</s>");
  std::filesystem::remove(dir / "chat_template.jinja");
  EXPECT_EQ(ChatTemplate::load(dir.string()).status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tidal
