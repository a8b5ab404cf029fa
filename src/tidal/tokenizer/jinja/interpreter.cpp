#include "tidal/tokenizer/jinja/interpreter.h"

#include <cstdio>
#include <ctime>

#include "tidal/tokenizer/jinja/builtins.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal::jinja {
namespace {

using T = Node::Type;

constexpr size_t kMaxCallDepth = 200;
constexpr int64_t kMaxRange = 1'000'000;

Value range_function(const CallArgs& args) {
  if (args.positional.empty() || args.positional.size() > 3) fail("range() takes 1 to 3 arguments");
  for (const Value& v : args.positional) {
    if (!v.is_int()) fail("range() arguments must be integers");
  }
  int64_t start = 0, stop = 0, step = 1;
  if (args.positional.size() == 1) {
    stop = args.positional[0].as_int();
  } else {
    start = args.positional[0].as_int();
    stop = args.positional[1].as_int();
    if (args.positional.size() == 3) step = args.positional[2].as_int();
  }
  if (step == 0) fail("range() step must not be zero");
  Array out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange) fail("range() is too long");
    out.push_back(Value::integer(i));
    if (__builtin_add_overflow(i, step, &i)) break;  // the next value is past any int64 stop
  }
  return Value::array(std::move(out));
}

Value namespace_function(const CallArgs& args) {
  if (args.positional.size() > 1) fail("namespace() takes at most 1 positional argument");
  Object o;
  if (args.positional.size() == 1) {
    const Value& src = args.positional[0];
    if (src.is_object()) {
      o = src.as_object();
    } else if (src.is_array()) {
      for (const Value& pair : src.as_array()) {
        if (!pair.is_array() || pair.as_array().size() != 2 || !pair.as_array()[0].is_string()) {
          fail("namespace() expects an object or [key, value] pairs");
        }
        o.set(pair.as_array()[0].as_string(), pair.as_array()[1]);
      }
    } else {
      fail(std::string("namespace(): ") + src.type_name() + " is not iterable");
    }
  }
  for (const auto& [k, v] : args.keyword) o.set(k, v);
  return Value::name_space(std::move(o));
}

// The reference's strftime: %Y %m %d %b %B %H %M %% (English month names), local time.
Value strftime_now_function(const CallArgs& args) {
  if (args.positional.empty() || !args.positional[0].is_string()) fail("strftime_now() needs a format string");
  static const char* kMonths[] = {"January", "February", "March", "April", "May", "June", "July",
                                  "August", "September", "October", "November", "December"};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  auto pad2 = [](int n) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%02d", n);
    return std::string(buf);
  };
  const std::string& f = args.positional[0].as_string();
  std::string out;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%' || i + 1 >= f.size()) { out += f[i]; continue; }
    const char c = f[++i];
    switch (c) {
      case 'Y': out += std::to_string(tm.tm_year + 1900); break;
      case 'm': out += pad2(tm.tm_mon + 1); break;
      case 'd': out += pad2(tm.tm_mday); break;
      case 'b': out += std::string(kMonths[tm.tm_mon]).substr(0, 3); break;
      case 'B': out += kMonths[tm.tm_mon]; break;
      case 'H': out += pad2(tm.tm_hour); break;
      case 'M': out += pad2(tm.tm_min); break;
      case '%': out += '%'; break;
      default: out += '%'; out += c;
    }
  }
  return Value::string(out);
}

// Python slicing of n items: the indexes start, start+step, ... before stop.
std::vector<size_t> slice_indexes(int64_t n, const Value& start_v, const Value& stop_v, const Value& step_v) {
  for (const Value* v : {&start_v, &stop_v, &step_v}) {
    if (!v->is_undefined() && !v->is_null() && !v->is_int()) fail("slice indexes must be integers");
  }
  const int64_t step = step_v.is_int() ? step_v.as_int() : 1;
  if (step == 0) fail("slice step cannot be zero");
  int64_t start, stop;
  if (step > 0) {
    start = start_v.is_int() ? start_v.as_int() : 0;
    stop = stop_v.is_int() ? stop_v.as_int() : n;
    start = start < 0 ? std::max<int64_t>(n + start, 0) : std::min(start, n);
    stop = stop < 0 ? std::max<int64_t>(n + stop, 0) : std::min(stop, n);
  } else {
    start = start_v.is_int() ? start_v.as_int() : n - 1;
    stop = stop_v.is_int() ? stop_v.as_int() : -1 - n;  // "to the beginning"
    start = start < 0 ? std::max<int64_t>(n + start, -1) : std::min(start, n - 1);
    stop = stop < 0 ? std::max<int64_t>(n + stop, -1) : std::min(stop, n - 1);
  }
  std::vector<size_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    out.push_back(static_cast<size_t>(i));
    if (__builtin_add_overflow(i, step, &i)) break;  // past either end
  }
  return out;
}

}  // namespace

Value Interpreter::Scope::lookup(const std::string& name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  return Value();
}

Interpreter::Interpreter(const Object& globals) {
  globals_ = &new_scope(nullptr);
  auto& vars = globals_->vars;
  vars["true"] = vars["True"] = Value::boolean(true);
  vars["false"] = vars["False"] = Value::boolean(false);
  vars["none"] = vars["None"] = Value::null();
  vars["range"] = Value::function(range_function);
  vars["namespace"] = Value::function([this](const CallArgs& args) {
    return namespaces_.emplace_back(namespace_function(args));
  });
  vars["strftime_now"] = Value::function(strftime_now_function);
  vars["raise_exception"] = Value::function([](const CallArgs& args) -> Value {
    fail("raise_exception: " + (args.positional.empty() ? std::string() : args.positional[0].to_string()));
  });
  for (const auto& [k, v] : globals.items) vars[k] = v;
}

Interpreter::~Interpreter() {
  for (Value& ns : namespaces_) ns.as_object().items.clear();
}

Interpreter::Scope& Interpreter::new_scope(Scope* parent) {
  scopes_.emplace_back();
  scopes_.back().parent = parent;
  return scopes_.back();
}

void Interpreter::error(const Node& node, const std::string& what) const {
  fail("line " + std::to_string(node.line) + ": " + what);
}

std::string Interpreter::render(const NodeList& program) {
  std::string out;
  exec_block(program, *globals_, out);
  return out;
}

Interpreter::Flow Interpreter::exec_block(const NodeList& body, Scope& scope, std::string& out) {
  for (const NodePtr& n : body) {
    const Flow flow = exec(*n, scope, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Node& node, Scope& scope, std::string& out) {
  try {
    switch (node.type) {
      case T::kText: out += node.name; return Flow::kNormal;
      case T::kComment: return Flow::kNormal;
      case T::kOutput: {
        const Value v = eval(*node.a, scope);
        if (!v.is_null() && !v.is_undefined()) out += v.to_string();
        return Flow::kNormal;
      }
      case T::kIf:
        return exec_block(eval(*node.a, scope).truthy() ? node.body : node.alternate, scope, out);
      case T::kFor: exec_for(node, scope, out); return Flow::kNormal;
      case T::kSet: exec_set(node, scope, out); return Flow::kNormal;
      case T::kMacro:
        scope.vars[node.name] = make_macro(node, node.args, node.body, scope, node.name);
        return Flow::kNormal;
      case T::kCallBlock: {
        // The caller is a macro over the block body; the callee sees it as `caller`.
        const Value caller = make_macro(node, node.args, node.body, scope, "caller");
        const Node& call = *node.a;
        const Value fn = eval(*call.a, scope);
        if (!fn.is_function()) error(node, "'call' needs a macro, got " + std::string(fn.type_name()));
        CallArgs args = eval_args(call.args, scope);
        pending_caller_ = caller;
        const Value v = fn.as_function()(args);
        pending_caller_ = Value();
        out += v.to_string();
        return Flow::kNormal;
      }
      case T::kFilterBlock: {
        std::string body;
        exec_block(node.body, scope, body);
        const Value v = eval_filter(Value::string(body), *node.a, scope);
        if (!v.is_null() && !v.is_undefined()) out += v.to_string();
        return Flow::kNormal;
      }
      case T::kBreak: return Flow::kBreak;
      case T::kContinue: return Flow::kContinue;
      default: {
        const Value v = eval(node, scope);
        if (!v.is_null() && !v.is_undefined()) out += v.to_string();
        return Flow::kNormal;
      }
    }
  } catch (Error& e) {
    if (e.message.rfind("line ", 0) != 0) e.message = "line " + std::to_string(node.line) + ": " + e.message;
    throw;
  }
}

void Interpreter::assign(const Node& target, const Value& value, Scope& scope) {
  if (target.type == T::kIdentifier) {
    scope.vars[target.name] = value;
  } else if (target.type == T::kTuple) {
    if (!value.is_array()) error(target, std::string("cannot unpack ") + value.type_name());
    if (value.as_array().size() != target.args.size()) {
      error(target, "cannot unpack " + std::to_string(value.as_array().size()) + " values into " +
                        std::to_string(target.args.size()) + " names");
    }
    for (size_t i = 0; i < target.args.size(); ++i) {
      if (target.args[i]->type != T::kIdentifier) error(target, "can only unpack into names");
      scope.vars[target.args[i]->name] = value.as_array()[i];
    }
  } else if (target.type == T::kMember && !target.flag && target.b->type == T::kIdentifier) {
    const Value object = eval(*target.a, scope);
    if (!object.is_namespace()) error(target, "can only assign attributes of a namespace()");
    object.as_object().set(target.b->name, value);
  } else {
    error(target, "unsupported assignment target");
  }
}

void Interpreter::exec_set(const Node& node, Scope& scope, std::string& /*out*/) {
  Value value;
  if (node.b) {
    value = eval(*node.b, scope);
  } else {
    std::string body;
    exec_block(node.body, scope, body);
    value = Value::string(std::move(body));
  }
  assign(*node.a, value, scope);
}

void Interpreter::exec_for(const Node& node, Scope& parent, std::string& out) {
  Scope& scope = new_scope(&parent);
  Value iterable = eval(*node.b, scope);
  Array all;
  if (iterable.is_array()) {
    all = iterable.as_array();
  } else if (iterable.is_object()) {
    for (const auto& [k, v] : iterable.as_object().items) all.push_back(Value::string(k));
  } else if (iterable.is_string()) {
    const std::string& s = iterable.as_string();
    for (size_t pos = 0; pos < s.size();) {
      const size_t start = pos;
      utf8::next_code_point(s, pos);
      all.push_back(Value::string(s.substr(start, pos - start)));
    }
  } else {
    error(node, std::string("cannot loop over ") + iterable.type_name());
  }
  Array items;
  if (node.c) {
    for (const Value& item : all) {
      Scope& item_scope = new_scope(&scope);
      assign(*node.a, item, item_scope);
      if (eval(*node.c, item_scope).truthy()) items.push_back(item);
    }
  } else {
    items = std::move(all);
  }
  bool ran = false;
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    Object loop;
    loop.set("index", Value::integer(i + 1));
    loop.set("index0", Value::integer(i));
    loop.set("revindex", Value::integer(n - i));
    loop.set("revindex0", Value::integer(n - i - 1));
    loop.set("first", Value::boolean(i == 0));
    loop.set("last", Value::boolean(i == n - 1));
    loop.set("length", Value::integer(n));
    loop.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value());
    loop.set("nextitem", i < n - 1 ? items[static_cast<size_t>(i + 1)] : Value());
    scope.vars["loop"] = Value::object(std::move(loop));
    assign(*node.a, items[static_cast<size_t>(i)], scope);
    const Flow flow = exec_block(node.body, scope, out);
    if (flow == Flow::kBreak) break;
    if (flow == Flow::kContinue) continue;
    ran = true;
  }
  if (!ran) exec_block(node.alternate, scope, out);
}

Value Interpreter::make_macro(const Node& node, const NodeList& params, const NodeList& body, Scope& scope,
                              const std::string& name) {
  const Node* where = &node;
  const NodeList* p = &params;
  const NodeList* b = &body;
  Scope* defined_in = &scope;
  return Value::function([this, where, p, b, defined_in, name](const CallArgs& args) -> Value {
    if (depth_ >= kMaxCallDepth) error(*where, "macro '" + name + "' recursion is too deep");
    Scope& s = new_scope(defined_in);
    if (!pending_caller_.is_undefined()) {
      s.vars["caller"] = pending_caller_;
      pending_caller_ = Value();
    }
    std::vector<std::pair<std::string, Value>> keyword = args.keyword;
    std::vector<const Node*> defaults;
    for (size_t i = 0; i < p->size(); ++i) {
      const Node& param = *(*p)[i];
      Value v;
      bool bound = false;
      if (i < args.positional.size()) {
        v = args.positional[i];
        bound = true;
      } else {
        for (auto it = keyword.begin(); it != keyword.end(); ++it) {
          if (it->first == param.name) { v = it->second; keyword.erase(it); bound = true; break; }
        }
      }
      if (!bound && param.type == T::kKeyword) defaults.push_back(&param);
      s.vars[param.name] = v;
    }
    Array varargs;
    for (size_t i = p->size(); i < args.positional.size(); ++i) varargs.push_back(args.positional[i]);
    s.vars["varargs"] = Value::array(std::move(varargs));
    Object kwargs;
    for (auto& [k, v] : keyword) kwargs.set(k, v);
    s.vars["kwargs"] = Value::object(std::move(kwargs));
    for (const Node* d : defaults) s.vars[d->name] = eval(*d->a, s);
    ++depth_;
    std::string out;
    try {
      exec_block(*b, s, out);
    } catch (...) {
      --depth_;
      throw;
    }
    --depth_;
    return Value::string(std::move(out));
  });
}

CallArgs Interpreter::eval_args(const NodeList& args, Scope& scope) {
  CallArgs out;
  for (const NodePtr& a : args) {
    if (a->type == T::kSpread) {
      const Value v = eval(*a->a, scope);
      if (!v.is_array()) error(*a, std::string("cannot unpack ") + v.type_name() + " with '*'");
      for (const Value& e : v.as_array()) out.positional.push_back(e);
    } else if (a->type == T::kKeywordSpread) {
      const Value v = eval(*a->a, scope);
      if (!v.is_object()) error(*a, std::string("'**' needs a mapping, got ") + v.type_name());
      for (const auto& [k, e] : v.as_object().items) out.keyword.emplace_back(k, e);
    } else if (a->type == T::kKeyword) {
      for (const auto& [k, e] : out.keyword) {
        if (k == a->name) error(*a, "keyword argument '" + k + "' given twice");
      }
      out.keyword.emplace_back(a->name, eval(*a->a, scope));
    } else {
      out.positional.push_back(eval(*a, scope));
    }
  }
  return out;
}

Value Interpreter::eval_filter(const Value& operand, const Node& filter, Scope& scope) {
  if (filter.type == T::kIdentifier) return apply_filter(filter.name, operand, CallArgs{});
  if (filter.type == T::kCall && filter.a->type == T::kIdentifier) {
    return apply_filter(filter.a->name, operand, eval_args(filter.args, scope));
  }
  error(filter, "unsupported filter expression");
}

Value Interpreter::eval_call(const Node& node, Scope& scope) {
  CallArgs args = eval_args(node.args, scope);
  const Value fn = eval(*node.a, scope);
  if (!fn.is_function()) {
    std::string what = node.a->type == T::kIdentifier ? "'" + node.a->name + "'"
                       : node.a->type == T::kMember && !node.a->flag && node.a->b->type == T::kIdentifier
                           ? "method '" + node.a->b->name + "'"
                           : std::string("expression");
    error(node, "unsupported function " + what + " (got " + fn.type_name() + ")");
  }
  return fn.as_function()(args);
}

Value Interpreter::eval(const Node& node, Scope& scope) {
  switch (node.type) {
    case T::kLiteral: return node.literal;
    case T::kIdentifier: return scope.lookup(node.name);
    case T::kArray:
    case T::kTuple: {
      Array a;
      for (const NodePtr& e : node.args) a.push_back(eval(*e, scope));
      return Value::array(std::move(a), node.type == T::kTuple);
    }
    case T::kDict: {
      Object o;
      for (size_t i = 0; i + 1 < node.args.size(); i += 2) {
        const Value key = eval(*node.args[i], scope);
        if (!key.is_string()) error(node, std::string("dict keys must be strings, got ") + key.type_name());
        o.set(key.as_string(), eval(*node.args[i + 1], scope));
      }
      return Value::object(std::move(o));
    }
    case T::kMember: {
      const Value object = eval(*node.a, scope);
      if (!node.flag) {
        return get_member(object, node.b->type == T::kIdentifier ? Value::string(node.b->name) : node.b->literal);
      }
      if (node.b->type == T::kSlice) {
        const Node& sl = *node.b;
        const Value start = sl.a ? eval(*sl.a, scope) : Value();
        const Value stop = sl.b ? eval(*sl.b, scope) : Value();
        const Value step = sl.c ? eval(*sl.c, scope) : Value();
        if (object.is_array()) {
          Array out;
          for (size_t i : slice_indexes(static_cast<int64_t>(object.as_array().size()), start, stop, step)) {
            out.push_back(object.as_array()[i]);
          }
          return Value::array(std::move(out));
        }
        if (object.is_string()) {
          std::vector<std::string> cps;
          const std::string& s = object.as_string();
          for (size_t pos = 0; pos < s.size();) {
            const size_t b = pos;
            utf8::next_code_point(s, pos);
            cps.push_back(s.substr(b, pos - b));
          }
          std::string out;
          for (size_t i : slice_indexes(static_cast<int64_t>(cps.size()), start, stop, step)) out += cps[i];
          return Value::string(std::move(out));
        }
        error(node, std::string("cannot slice ") + object.type_name());
      }
      return get_member(object, eval(*node.b, scope));
    }
    case T::kCall: return eval_call(node, scope);
    case T::kFilter: return eval_filter(eval(*node.a, scope), *node.b, scope);
    case T::kTest: {
      const bool r = apply_test(node.name, eval(*node.a, scope));
      return Value::boolean(node.flag ? !r : r);
    }
    case T::kUnary: {
      const Value v = eval(*node.a, scope);
      if (node.name == "not") return Value::boolean(!v.truthy());
      const bool negate = node.name == "-";
      if (v.is_float()) return Value::floating(negate ? -v.as_number() : v.as_number());
      if (v.is_int() || v.is_bool()) return Value::integer(negate ? int_neg(v.as_int()) : v.as_int());
      error(node, "unary '" + node.name + "' needs a number, got " + v.type_name());
    }
    case T::kBinary: {
      if (node.name == "and" || node.name == "or") {
        Value left = eval(*node.a, scope);
        if (left.truthy() == (node.name == "or")) return left;
        return eval(*node.b, scope);
      }
      const Value left = eval(*node.a, scope);
      const Value right = eval(*node.b, scope);
      return binary_op(node.name, left, right);
    }
    case T::kTernary:
      return eval(*node.a, scope).truthy() ? eval(*node.b, scope) : eval(*node.c, scope);
    case T::kSelect:
      return eval(*node.b, scope).truthy() ? eval(*node.a, scope) : Value();
    default: error(node, "unexpected construct in an expression");
  }
}

}  // namespace tidal::jinja
