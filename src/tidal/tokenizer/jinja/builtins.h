// The built-in operators, filters, tests and methods of the template engine, with the semantics of
// the reference renderer (@huggingface/jinja) and, where it has none, of Python's Jinja2.
// Each throws jinja::Error naming the filter/test/method and the operand type it cannot handle.
#pragma once

#include <string_view>

#include "tidal/tokenizer/jinja/value.h"

namespace tidal::jinja {

// `object.key` / `object[key]`: items of objects and namespaces, indexes of arrays and strings
// (negative from the end), methods of strings ("strip", "split", ...), objects ("items", "get",
// ...). Undefined when absent.
Value get_member(const Value& object, const Value& key);

// `a op b` for every operator but "and"/"or" (which short-circuit in the interpreter).
Value binary_op(std::string_view op, const Value& a, const Value& b);

// `operand | name(args)`; `operand | name` passes empty args.
Value apply_filter(std::string_view name, const Value& operand, const CallArgs& args);

// `operand is name`. Throws for an unknown test.
bool apply_test(std::string_view name, const Value& operand, const Value* arg = nullptr);

// The number of UTF-16 code units of `s` (what the reference's `length` counts).
int64_t utf16_length(std::string_view s);

}  // namespace tidal::jinja
