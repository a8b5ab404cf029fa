// jinja::Node: the syntax tree of a parsed template (statements and expressions in one type).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tidal/tokenizer/jinja/value.h"

namespace tidal::jinja {

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

struct Node {
  enum class Type {
    // Statements. body: the block; alternate: else/elif branch (If), else block (For).
    kText,          // name: the text
    kOutput,        // {{ a }}
    kIf,            // a: test
    kFor,           // a: loop target (Identifier or Tuple), b: iterable, c: inline `if` filter
    kSet,           // a: target; b: value, or body for {% set x %}...{% endset %}
    kMacro,         // name; args: parameters (Identifier or Keyword)
    kCallBlock,     // a: the Call; args: caller parameters
    kFilterBlock,   // a: the filter (Identifier or Call)
    kBreak,
    kContinue,
    kComment,
    // Expressions.
    kLiteral,       // literal
    kIdentifier,    // name
    kArray,         // args: elements
    kTuple,         // args: elements
    kDict,          // args: key, value, key, value, ...
    kMember,        // a: object, b: property; flag: computed ([...])
    kSlice,         // a, b, c: start, stop, step (any may be null)
    kCall,          // a: callee; args
    kFilter,        // a: operand, b: filter (Identifier or Call)
    kTest,          // a: operand; name: test; flag: negated
    kUnary,         // name: "not", "-", "+"; a
    kBinary,        // name: operator; a, b
    kTernary,       // a: condition, b: if true, c: if false
    kSelect,        // a: value, b: condition (`x if c` without else)
    kKeyword,       // name = a (call keyword argument or parameter default)
    kSpread,        // *a
    kKeywordSpread, // **a
  };

  Type type;
  size_t line = 0;
  std::string name;
  Value literal;
  bool flag = false;
  NodePtr a, b, c;
  NodeList args, body, alternate;

  Node(Type t, size_t l) : type(t), line(l) {}
};

}  // namespace tidal::jinja
