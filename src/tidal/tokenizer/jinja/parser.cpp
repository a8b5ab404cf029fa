#include "tidal/tokenizer/jinja/parser.h"

#include <cstdlib>
#include <initializer_list>
#include <set>

namespace tidal::jinja {
namespace {

using T = Node::Type;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

  NodeList program() {
    NodeList body;
    while (pos_ < tokens_.size()) body.push_back(any());
    return body;
  }

 private:
  const std::vector<Token>& tokens_;
  size_t pos_ = 0;

  [[noreturn]] void error(const std::string& what) const {
    const size_t line = pos_ < tokens_.size() ? tokens_[pos_].line
                                              : (tokens_.empty() ? 1 : tokens_.back().line);
    fail("line " + std::to_string(line) + ": " + what);
  }
  size_t line() const { return pos_ < tokens_.size() ? tokens_[pos_].line : 0; }
  NodePtr node(T type) const { return std::make_unique<Node>(type, line()); }
  bool is(TokenType type, size_t ahead = 0) const {
    return pos_ + ahead < tokens_.size() && tokens_[pos_ + ahead].type == type;
  }
  bool is_identifier(std::string_view name, size_t ahead = 0) const {
    return is(TokenType::kIdentifier, ahead) && tokens_[pos_ + ahead].value == name;
  }
  bool is_statement(std::initializer_list<std::string_view> names) const {
    if (!is(TokenType::kOpenStatement) || !is(TokenType::kIdentifier, 1)) return false;
    for (auto n : names) {
      if (tokens_[pos_ + 1].value == n) return true;
    }
    return false;
  }
  const Token& expect(TokenType type, const char* what) {
    if (!is(type)) {
      error(std::string("expected ") + what +
            (pos_ < tokens_.size() ? ", got '" + tokens_[pos_].value + "'" : ", got the end of the template"));
    }
    return tokens_[pos_++];
  }
  void expect_identifier(const char* name) {
    if (!is_identifier(name)) error(std::string("expected '") + name + "'");
    ++pos_;
  }
  // Parses statements until one of `names` opens a statement; fails at the end of input.
  NodeList block_until(std::initializer_list<std::string_view> names, const char* opener) {
    NodeList body;
    while (!is_statement(names)) {
      if (pos_ >= tokens_.size()) error(std::string("unclosed '") + opener + "' block");
      body.push_back(any());
    }
    return body;
  }
  void end_tag(const char* name) {
    expect(TokenType::kOpenStatement, "'{%'");
    expect_identifier(name);
    expect(TokenType::kCloseStatement, "'%}'");
  }

  NodePtr any() {
    const Token& t = tokens_[pos_];
    switch (t.type) {
      case TokenType::kComment: { auto n = node(T::kComment); ++pos_; return n; }
      case TokenType::kText: { auto n = node(T::kText); n->name = t.value; ++pos_; return n; }
      case TokenType::kOpenStatement: return statement();
      case TokenType::kOpenExpression: {
        auto n = node(T::kOutput);
        ++pos_;
        n->a = expression();
        expect(TokenType::kCloseExpression, "'}}'");
        return n;
      }
      default: error("unexpected '" + t.value + "'");
    }
  }

  NodePtr statement() {
    expect(TokenType::kOpenStatement, "'{%'");
    if (!is(TokenType::kIdentifier)) error("expected a statement name after '{%'");
    const std::string name = tokens_[pos_].value;
    ++pos_;
    if (name == "set") return set_statement();
    if (name == "if") {
      auto n = if_statement();
      end_tag("endif");
      return n;
    }
    if (name == "for") {
      auto n = for_statement();
      end_tag("endfor");
      return n;
    }
    if (name == "macro") {
      auto n = node(T::kMacro);
      auto id = primary();
      if (id->type != T::kIdentifier) error("expected a macro name");
      n->name = id->name;
      n->args = arguments(true);
      expect(TokenType::kCloseStatement, "'%}'");
      n->body = block_until({"endmacro"}, "macro");
      end_tag("endmacro");
      return n;
    }
    if (name == "call") {
      auto n = node(T::kCallBlock);
      if (is(TokenType::kOpenParen)) n->args = arguments(true);
      auto callee = primary();
      if (callee->type != T::kIdentifier) error("expected a macro name after 'call'");
      auto call = node(T::kCall);
      call->a = std::move(callee);
      call->args = arguments(false);
      n->a = std::move(call);
      expect(TokenType::kCloseStatement, "'%}'");
      n->body = block_until({"endcall"}, "call");
      end_tag("endcall");
      return n;
    }
    if (name == "filter") {
      auto n = node(T::kFilterBlock);
      auto f = primary();
      if (f->type == T::kIdentifier && is(TokenType::kOpenParen)) f = call(std::move(f));
      n->a = std::move(f);
      expect(TokenType::kCloseStatement, "'%}'");
      n->body = block_until({"endfilter"}, "filter");
      end_tag("endfilter");
      return n;
    }
    if (name == "break" || name == "continue") {
      auto n = node(name == "break" ? T::kBreak : T::kContinue);
      expect(TokenType::kCloseStatement, "'%}'");
      return n;
    }
    --pos_;
    error("unsupported statement '{% " + name + " %}'");
  }

  NodePtr set_statement() {
    auto n = node(T::kSet);
    n->a = expression_sequence(false);
    if (is(TokenType::kEquals)) {
      ++pos_;
      n->b = expression_sequence(false);
    } else {
      expect(TokenType::kCloseStatement, "'%}' or '='");
      n->body = block_until({"endset"}, "set");
      expect(TokenType::kOpenStatement, "'{%'");
      expect_identifier("endset");
    }
    expect(TokenType::kCloseStatement, "'%}'");
    return n;
  }

  NodePtr if_statement() {
    auto n = node(T::kIf);
    n->a = expression();
    expect(TokenType::kCloseStatement, "'%}'");
    n->body = block_until({"elif", "else", "endif"}, "if");
    if (is_statement({"elif"})) {
      pos_ += 2;
      n->alternate.push_back(if_statement());
    } else if (is_statement({"else"})) {
      pos_ += 2;
      expect(TokenType::kCloseStatement, "'%}'");
      n->alternate = block_until({"endif"}, "if");
    }
    return n;
  }

  NodePtr for_statement() {
    auto n = node(T::kFor);
    n->a = expression_sequence(true);
    if (n->a->type != T::kIdentifier && n->a->type != T::kTuple) error("expected a loop variable after 'for'");
    if (!is_identifier("in")) error("expected 'in' after the loop variable");
    ++pos_;
    auto iterable = expression();
    if (iterable->type == T::kSelect) {  // {% for x in xs if cond %}
      n->b = std::move(iterable->a);
      n->c = std::move(iterable->b);
    } else {
      n->b = std::move(iterable);
    }
    expect(TokenType::kCloseStatement, "'%}'");
    n->body = block_until({"endfor", "else"}, "for");
    if (is_statement({"else"})) {
      pos_ += 2;
      expect(TokenType::kCloseStatement, "'%}'");
      n->alternate = block_until({"endfor"}, "for");
    }
    return n;
  }

  NodePtr expression_sequence(bool primary_only) {
    auto first = primary_only ? primary() : expression();
    if (!is(TokenType::kComma)) return first;
    auto tuple = node(T::kTuple);
    tuple->args.push_back(std::move(first));
    while (is(TokenType::kComma)) {
      ++pos_;
      tuple->args.push_back(primary_only ? primary() : expression());
    }
    return tuple;
  }

  NodePtr expression() {
    auto a = logical_or();
    if (!is_identifier("if")) return a;
    ++pos_;
    auto test = logical_or();
    if (is_identifier("else")) {
      ++pos_;
      auto n = node(T::kTernary);
      n->a = std::move(test);
      n->b = std::move(a);
      n->c = expression();
      return n;
    }
    auto n = node(T::kSelect);
    n->a = std::move(a);
    n->b = std::move(test);
    return n;
  }

  NodePtr binary(NodePtr left, std::string op, NodePtr right) {
    auto n = std::make_unique<Node>(T::kBinary, left->line);
    n->name = std::move(op);
    n->a = std::move(left);
    n->b = std::move(right);
    return n;
  }

  NodePtr logical_or() {
    auto left = logical_and();
    while (is_identifier("or")) { ++pos_; left = binary(std::move(left), "or", logical_and()); }
    return left;
  }
  NodePtr logical_and() {
    auto left = logical_not();
    while (is_identifier("and")) { ++pos_; left = binary(std::move(left), "and", logical_not()); }
    return left;
  }
  NodePtr logical_not() {
    if (!is_identifier("not")) return comparison();
    auto n = node(T::kUnary);
    ++pos_;
    n->name = "not";
    n->a = logical_not();
    return n;
  }
  NodePtr comparison() {
    auto left = additive();
    while (true) {
      std::string op;
      if (is_identifier("not") && is_identifier("in", 1)) { op = "not in"; pos_ += 2; }
      else if (is_identifier("in")) { op = "in"; ++pos_; }
      else if (is(TokenType::kComparison)) { op = tokens_[pos_++].value; }
      else break;
      left = binary(std::move(left), op, additive());
    }
    return left;
  }
  NodePtr additive() {
    auto left = multiplicative();
    while (is(TokenType::kAdditive)) {
      const std::string op = tokens_[pos_++].value;
      left = binary(std::move(left), op, multiplicative());
    }
    return left;
  }
  NodePtr multiplicative() {
    auto left = power();
    while (is(TokenType::kMultiplicative)) {
      const std::string op = tokens_[pos_++].value;
      left = binary(std::move(left), op, power());
    }
    return left;
  }
  NodePtr power() {
    auto left = test();
    while (is(TokenType::kPower)) { ++pos_; left = binary(std::move(left), "**", test()); }
    return left;
  }
  NodePtr test() {
    auto operand = filter();
    while (is_identifier("is")) {
      ++pos_;
      auto n = node(T::kTest);
      if (is_identifier("not")) { n->flag = true; ++pos_; }
      auto name = primary();
      if (name->type != T::kIdentifier) error("expected a test name after 'is'");
      n->name = name->name;
      n->a = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr filter() {
    auto operand = unary_sign();
    while (is(TokenType::kPipe)) {
      ++pos_;
      auto n = node(T::kFilter);
      auto f = primary();
      if (f->type != T::kIdentifier) error("expected a filter name after '|'");
      if (is(TokenType::kOpenParen)) f = call(std::move(f));
      n->a = std::move(operand);
      n->b = std::move(f);
      operand = std::move(n);
    }
    return operand;
  }
  NodePtr unary_sign() {
    if ((is(TokenType::kUnary) || is(TokenType::kAdditive)) &&
        (tokens_[pos_].value == "-" || tokens_[pos_].value == "+")) {
      auto n = node(T::kUnary);
      n->name = tokens_[pos_++].value;
      n->a = unary_sign();
      return n;
    }
    auto member = member_chain(primary());
    if (is(TokenType::kOpenParen)) return call(std::move(member));
    return member;
  }
  NodePtr call(NodePtr callee) {
    auto n = node(T::kCall);
    n->a = std::move(callee);
    n->args = arguments(false);
    NodePtr expr = member_chain(std::move(n));
    if (is(TokenType::kOpenParen)) expr = call(std::move(expr));
    return expr;
  }
  // (a, b=1, *c, **d). Parameters (macro/caller) allow only names and name=default.
  NodeList arguments(bool parameters) {
    expect(TokenType::kOpenParen, "'('");
    NodeList args;
    std::set<std::string> names;
    bool saw_keyword = false;
    while (!is(TokenType::kCloseParen)) {
      if (pos_ >= tokens_.size()) error("unclosed '('");
      const bool kw_spread = is(TokenType::kPower);
      const bool spread = is(TokenType::kMultiplicative) && tokens_[pos_].value == "*";
      if (parameters && (kw_spread || spread)) error("argument unpacking in a parameter list");
      NodePtr arg;
      if (kw_spread || spread) {
        arg = node(kw_spread ? T::kKeywordSpread : T::kSpread);
        ++pos_;
        arg->a = expression();
      } else {
        arg = expression();
        if (is(TokenType::kEquals)) {
          ++pos_;
          if (arg->type != T::kIdentifier) error("expected a name before '=' in an argument list");
          auto kw = node(T::kKeyword);
          kw->name = arg->name;
          kw->a = expression();
          arg = std::move(kw);
        }
        if (parameters) {
          if (arg->type != T::kIdentifier && arg->type != T::kKeyword) error("expected a parameter name");
          if (!names.insert(arg->name).second) error("duplicate parameter '" + arg->name + "'");
        }
        if (arg->type == T::kKeyword) saw_keyword = true;
        else if (saw_keyword) error("positional argument after a keyword argument");
      }
      args.push_back(std::move(arg));
      if (is(TokenType::kComma)) ++pos_;
      else if (!is(TokenType::kCloseParen)) error("expected ',' or ')' in an argument list");
    }
    ++pos_;
    return args;
  }
  NodePtr member_chain(NodePtr object) {
    while (is(TokenType::kDot) || is(TokenType::kOpenBracket)) {
      const bool computed = is(TokenType::kOpenBracket);
      ++pos_;
      auto n = node(T::kMember);
      n->flag = computed;
      if (computed) {
        n->b = subscript();
        expect(TokenType::kCloseBracket, "']'");
      } else {
        n->b = primary();
        if (n->b->type != T::kIdentifier &&
            !(n->b->type == T::kLiteral && n->b->literal.is_int())) {
          error("expected a name after '.'");
        }
      }
      n->a = std::move(object);
      object = std::move(n);
    }
    return object;
  }
  NodePtr subscript() {
    NodeList parts;
    bool is_slice = false;
    while (!is(TokenType::kCloseBracket)) {
      if (pos_ >= tokens_.size()) error("unclosed '['");
      if (is(TokenType::kColon)) {
        parts.push_back(nullptr);
        ++pos_;
        is_slice = true;
      } else {
        parts.push_back(expression());
        if (is(TokenType::kColon)) { ++pos_; is_slice = true; }
      }
    }
    if (parts.empty()) error("empty subscript '[]'");
    if (!is_slice) return std::move(parts[0]);
    if (parts.size() > 3) error("a slice takes at most 3 parts");
    auto n = node(T::kSlice);
    parts.resize(3);
    n->a = std::move(parts[0]);
    n->b = std::move(parts[1]);
    n->c = std::move(parts[2]);
    return n;
  }
  NodePtr primary() {
    if (pos_ >= tokens_.size()) error("unexpected end of the template");
    const Token& t = tokens_[pos_++];
    switch (t.type) {
      case TokenType::kNumber: {
        auto n = std::make_unique<Node>(T::kLiteral, t.line);
        if (t.value.find('.') != std::string::npos) n->literal = Value::floating(std::strtod(t.value.c_str(), nullptr));
        else n->literal = Value::integer(std::strtoll(t.value.c_str(), nullptr, 10));
        return n;
      }
      case TokenType::kString: {
        auto n = std::make_unique<Node>(T::kLiteral, t.line);
        std::string s = t.value;
        while (is(TokenType::kString)) s += tokens_[pos_++].value;  // adjacent literals concatenate
        n->literal = Value::string(std::move(s));
        return n;
      }
      case TokenType::kIdentifier: {
        auto n = std::make_unique<Node>(T::kIdentifier, t.line);
        n->name = t.value;
        return n;
      }
      case TokenType::kOpenParen: {
        auto e = expression_sequence(false);
        expect(TokenType::kCloseParen, "')'");
        return e;
      }
      case TokenType::kOpenBracket: {
        auto n = std::make_unique<Node>(T::kArray, t.line);
        while (!is(TokenType::kCloseBracket)) {
          if (pos_ >= tokens_.size()) error("unclosed '['");
          n->args.push_back(expression());
          if (is(TokenType::kComma)) ++pos_;
        }
        ++pos_;
        return n;
      }
      case TokenType::kOpenCurly: {
        auto n = std::make_unique<Node>(T::kDict, t.line);
        while (!is(TokenType::kCloseCurly)) {
          if (pos_ >= tokens_.size()) error("unclosed '{'");
          n->args.push_back(expression());
          expect(TokenType::kColon, "':' in a dict literal");
          n->args.push_back(expression());
          if (is(TokenType::kComma)) ++pos_;
        }
        ++pos_;
        return n;
      }
      default:
        --pos_;
        error("unexpected '" + t.value + "'");
    }
  }
};

}  // namespace

NodeList parse(const std::vector<Token>& tokens) { return Parser(tokens).program(); }

}  // namespace tidal::jinja
