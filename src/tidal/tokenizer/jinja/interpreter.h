// jinja::Interpreter: renders a parsed template. Scoping follows the reference renderer: `for` and
// macro bodies get their own scope, `if` does not; `set` writes the current scope; a namespace is
// shared. Throws jinja::Error (named construct, line) on a render error.
#pragma once

#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "tidal/tokenizer/jinja/node.h"
#include "tidal/tokenizer/jinja/value.h"

namespace tidal::jinja {

class Interpreter {
 public:
  // `globals` are visible to the whole template (messages, tools, bos_token, ...).
  explicit Interpreter(const Object& globals);
  // Empties every namespace() of the render: `{% set ns.x = ns %}` makes a reference cycle that
  // would otherwise outlive the render.
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;  // namespace() captures `this`
  Interpreter& operator=(const Interpreter&) = delete;
  std::string render(const NodeList& program);

 private:
  struct Scope {
    Scope* parent = nullptr;
    std::unordered_map<std::string, Value> vars;
    Value lookup(const std::string& name) const;
  };
  enum class Flow { kNormal, kBreak, kContinue };

  Scope& new_scope(Scope* parent);
  Flow exec_block(const NodeList& body, Scope& scope, std::string& out);
  Flow exec(const Node& node, Scope& scope, std::string& out);
  void exec_for(const Node& node, Scope& scope, std::string& out);
  void exec_set(const Node& node, Scope& scope, std::string& out);
  Value eval(const Node& node, Scope& scope);
  Value eval_call(const Node& node, Scope& scope);
  Value eval_filter(const Value& operand, const Node& filter, Scope& scope);
  CallArgs eval_args(const NodeList& args, Scope& scope);
  Value make_macro(const Node& node, const NodeList& params, const NodeList& body, Scope& scope,
                   const std::string& name);
  void assign(const Node& target, const Value& value, Scope& scope);
  [[noreturn]] void error(const Node& node, const std::string& what) const;

  std::deque<Scope> scopes_;  // every scope of the render (stable addresses for closures)
  Scope* globals_;
  Value pending_caller_;      // `caller` for the macro a {% call %} block is invoking
  size_t depth_ = 0;          // nested macro calls, bounded
  std::vector<Value> namespaces_;  // every namespace() made by the render
};

}  // namespace tidal::jinja
