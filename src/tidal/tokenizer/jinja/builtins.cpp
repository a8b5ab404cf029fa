#include "tidal/tokenizer/jinja/builtins.h"

#include <unicode/unistr.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "tidal/tokenizer/jinja/lexer.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal::jinja {

int64_t utf16_length(std::string_view s) {
  int64_t n = 0;
  for (size_t pos = 0; pos < s.size();) n += utf8::next_code_point(s, pos) > 0xffff ? 2 : 1;
  return n;
}

namespace {

std::vector<std::string> code_points(std::string_view s) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < s.size();) {
    const size_t start = pos;
    utf8::next_code_point(s, pos);
    out.emplace_back(s.substr(start, pos - start));
  }
  return out;
}

std::string icu_case(const std::string& s, bool upper) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  if (upper) u.toUpper(); else u.toLower();
  std::string out;
  u.toUTF8String(out);
  return out;
}

bool is_word_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// JavaScript's value.replace(/\b\w/g, upper): the first ASCII word character of each word.
std::string title_case(const std::string& s) {
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i) {
    if (is_word_byte(out[i]) && (i == 0 || !is_word_byte(out[i - 1])) && out[i] >= 'a' && out[i] <= 'z') {
      out[i] = static_cast<char>(out[i] - 'a' + 'A');
    }
  }
  return out;
}

// Python str.strip(chars): chars is a set of code points.
std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  const auto set_vec = code_points(chars);
  const std::set<std::string> set(set_vec.begin(), set_vec.end());
  auto cps = code_points(s);
  size_t b = 0, e = cps.size();
  if (left) while (b < e && set.count(cps[b])) ++b;
  if (right) while (e > b && set.count(cps[e - 1])) --e;
  std::string out;
  for (size_t i = b; i < e; ++i) out += cps[i];
  return out;
}

std::string strip(const Value& self, const CallArgs& args, bool left, bool right) {
  const Value* chars = args.get(0, "chars");
  if (chars == nullptr || chars->is_null() || chars->is_undefined()) {
    return std::string(js_trim(self.as_string(), left, right));
  }
  if (!chars->is_string()) fail("strip: chars must be a string");
  return strip_chars(self.as_string(), chars->as_string(), left, right);
}

const Value& require_string(const Value* v, const char* what) {
  if (v == nullptr || !v->is_string()) fail(std::string(what) + " must be a string");
  return *v;
}

Value string_split(const std::string& s, const CallArgs& args) {
  const Value* sep = args.get(0, "sep");
  const Value* max_value = args.get(1, "maxsplit");
  int64_t maxsplit = -1;
  if (max_value != nullptr) {
    if (!max_value->is_int()) fail("split: maxsplit must be an integer");
    maxsplit = max_value->as_int();
  }
  Array out;
  if (sep == nullptr || sep->is_null()) {
    const std::string_view text = js_trim(s, true, false);
    size_t pos = 0;
    while (pos < text.size()) {
      size_t start = pos, len = 0;
      // skip whitespace
      while (start < text.size()) {
        size_t p = start;
        if (!is_js_space(utf8::next_code_point(text, p))) break;
        start = p;
      }
      if (start >= text.size()) break;
      if (maxsplit != -1 && static_cast<int64_t>(out.size()) >= maxsplit) {
        out.push_back(Value::string(std::string(text.substr(start))));
        break;
      }
      size_t end = start;
      while (end < text.size()) {
        size_t p = end;
        if (is_js_space(utf8::next_code_point(text, p))) break;
        end = p;
      }
      (void)len;
      out.push_back(Value::string(std::string(text.substr(start, end - start))));
      pos = end;
    }
    return Value::array(std::move(out));
  }
  if (!sep->is_string()) fail("split: sep must be a string or none");
  const std::string& d = sep->as_string();
  if (d.empty()) fail("split: empty separator");
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t hit = s.find(d, start);
    if (hit == std::string::npos) { parts.push_back(s.substr(start)); break; }
    parts.push_back(s.substr(start, hit - start));
    start = hit + d.size();
  }
  if (maxsplit != -1 && static_cast<int64_t>(parts.size()) > maxsplit) {
    std::string rest;
    for (size_t i = static_cast<size_t>(maxsplit); i < parts.size(); ++i) rest += (i > static_cast<size_t>(maxsplit) ? d : "") + parts[i];
    parts.resize(static_cast<size_t>(maxsplit));
    parts.push_back(rest);
  }
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return Value::array(std::move(out));
}

std::string string_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (count == 0) return s;
  std::string out;
  int64_t remaining = count < 0 ? INT64_MAX : count;
  if (from.empty()) {  // inserted between code points (and at both ends)
    for (const std::string& cp : code_points(s)) {
      if (remaining > 0) { out += to; --remaining; }
      out += cp;
    }
    if (remaining > 0) out += to;
    return out;
  }
  size_t start = 0;
  while (remaining > 0) {
    const size_t hit = s.find(from, start);
    if (hit == std::string::npos) break;
    out.append(s, start, hit - start);
    out += to;
    start = hit + from.size();
    --remaining;
  }
  out.append(s, start, std::string::npos);
  return out;
}

bool starts_or_ends(const std::string& s, const Value* pattern, bool starts, const char* name) {
  if (pattern == nullptr) fail(std::string(name) + "() needs an argument");
  auto test = [&](const std::string& p) {
    if (p.size() > s.size()) return false;
    return starts ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0;
  };
  if (pattern->is_string()) return test(pattern->as_string());
  if (pattern->is_array()) {
    for (const Value& p : pattern->as_array()) {
      if (!p.is_string()) fail(std::string(name) + "(): tuple elements must be strings");
      if (test(p.as_string())) return true;
    }
    return false;
  }
  fail(std::string(name) + "(): argument must be a string or a tuple of strings");
}

// Compares for sort/dictsort: none and undefined only equal themselves; numbers (and booleans)
// numerically; strings case-insensitively unless case_sensitive.
int compare_values(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_null() && b.is_null()) return 0;
  if (a.is_undefined() && b.is_undefined()) return 0;
  if (a.is_null() || b.is_null() || a.is_undefined() || b.is_undefined()) {
    fail(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
  }
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
    const double x = a.as_number(), y = b.as_number();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const std::string x = case_sensitive ? a.as_string() : icu_case(a.as_string(), false);
    const std::string y = case_sensitive ? b.as_string() : icu_case(b.as_string(), false);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  fail(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
}

bool bool_arg(const CallArgs& args, size_t i, const char* name, bool fallback) {
  const Value* v = args.get(i, name);
  if (v == nullptr) return fallback;
  if (!v->is_bool()) fail(std::string(name) + " must be a boolean");
  return v->as_bool();
}

Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (v.is_object() || v.is_namespace()) {
      const Value* f = v.as_object().find(part);
      v = f ? *f : Value();
    } else if (v.is_array()) {
      char* end = nullptr;
      const long long idx = std::strtoll(part.c_str(), &end, 10);
      if (end == part.c_str() || idx < 0 || idx >= static_cast<long long>(v.as_array().size())) return Value();
      v = v.as_array()[static_cast<size_t>(idx)];
    } else {
      return Value();
    }
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Value dictsort(const Value& obj, const CallArgs& args) {
  const bool case_sensitive = bool_arg(args, 0, "case_sensitive", false);
  const Value* by = args.get(1, "by");
  const bool by_value = by != nullptr && by->is_string() && by->as_string() == "value";
  if (by != nullptr && (!by->is_string() || (by->as_string() != "key" && by->as_string() != "value"))) {
    fail("dictsort: by must be 'key' or 'value'");
  }
  const bool reverse = bool_arg(args, 2, "reverse", false);
  Array items;
  for (const auto& [k, v] : obj.as_object().items) items.push_back(Value::array({Value::string(k), v}));
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    const int c = compare_values(a.as_array()[by_value ? 1 : 0], b.as_array()[by_value ? 1 : 0], case_sensitive);
    return reverse ? c > 0 : c < 0;
  });
  return Value::array(std::move(items));
}

Value object_items(const Value& obj) {
  Array items;
  for (const auto& [k, v] : obj.as_object().items) items.push_back(Value::array({Value::string(k), v}));
  return Value::array(std::move(items));
}

// A method bound to `self`.
Value method(const Value& self, std::string_view name) {
  const std::string n(name);
  if (self.is_string()) {
    if (n == "length") return Value::integer(utf16_length(self.as_string()));
    static const std::set<std::string> kNames = {"upper", "lower", "strip", "lstrip", "rstrip", "title",
                                                 "capitalize", "startswith", "endswith", "split", "replace"};
    if (!kNames.count(n)) return Value();
    return Value::function([self, n](const CallArgs& args) -> Value {
      const std::string& s = self.as_string();
      if (n == "upper") return Value::string(icu_case(s, true));
      if (n == "lower") return Value::string(icu_case(s, false));
      if (n == "strip") return Value::string(strip(self, args, true, true));
      if (n == "lstrip") return Value::string(strip(self, args, true, false));
      if (n == "rstrip") return Value::string(strip(self, args, false, true));
      if (n == "title") return Value::string(title_case(s));
      if (n == "capitalize") {
        auto cps = code_points(s);
        if (cps.empty()) return Value::string("");
        std::string out = icu_case(cps[0], true);
        for (size_t i = 1; i < cps.size(); ++i) out += cps[i];
        return Value::string(out);
      }
      if (n == "startswith" || n == "endswith") {
        return Value::boolean(starts_or_ends(s, args.get(0, "prefix"), n == "startswith", n.c_str()));
      }
      if (n == "split") return string_split(s, args);
      // replace(old, new, count=None)
      const Value& from = require_string(args.get(0, "old"), "replace: old");
      const Value& to = require_string(args.get(1, "new"), "replace: new");
      const Value* count = args.get(2, "count");
      if (count != nullptr && !count->is_int() && !count->is_null()) fail("replace: count must be an integer");
      return Value::string(string_replace(s, from.as_string(), to.as_string(),
                                          count != nullptr && count->is_int() ? count->as_int() : -1));
    });
  }
  if (self.is_object()) {
    if (n == "get") {
      return Value::function([self](const CallArgs& args) -> Value {
        const Value* key = args.get(0, "key");
        if (key == nullptr || !key->is_string()) fail("get: the key must be a string");
        if (const Value* v = self.as_object().find(key->as_string())) return *v;
        const Value* fallback = args.get(1, "default");
        return fallback ? *fallback : Value::null();
      });
    }
    if (n == "items") return Value::function([self](const CallArgs&) { return object_items(self); });
    if (n == "keys" || n == "values") {
      const bool keys = n == "keys";
      return Value::function([self, keys](const CallArgs&) {
        Array out;
        for (const auto& [k, v] : self.as_object().items) out.push_back(keys ? Value::string(k) : v);
        return Value::array(std::move(out));
      });
    }
    if (n == "dictsort") return Value::function([self](const CallArgs& args) { return dictsort(self, args); });
    return Value();
  }
  if (self.is_array() && n == "length") return Value::integer(static_cast<int64_t>(self.as_array().size()));
  return Value();
}

std::string concat_text(const Value& v) {
  if (v.is_int() || v.is_float()) {
    // JavaScript's Number#toString of the raw number: 2.0 prints as "2".
    const double f = v.as_number();
    if (v.is_int()) return std::to_string(v.as_int());
    std::string s = format_float(f);
    if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
    return s;
  }
  if (v.is_string() || v.is_bool()) return v.to_string();
  fail(std::string("cannot concatenate a string and ") + v.type_name());
}

Value select_or_reject(const Value& operand, const CallArgs& args, bool select, bool by_attribute) {
  if (!operand.is_array()) fail(std::string(select ? "select" : "reject") + ": operand must be an array");
  size_t i = 0;
  std::string attr;
  if (by_attribute) {
    const Value* a = args.get(i++, "attribute");
    if (a == nullptr || !a->is_string()) fail("selectattr/rejectattr: the attribute must be a string");
    attr = a->as_string();
  }
  const Value* test = args.get(i++, "test");
  if (test != nullptr && !test->is_string()) fail("select/reject: the test name must be a string");
  const Value* test_arg = args.get(i, "value");
  Array out;
  for (const Value& item : operand.as_array()) {
    Value v = item;
    if (by_attribute) {
      if (!item.is_object() && !item.is_namespace()) fail("selectattr/rejectattr: items must be objects");
      const Value* f = item.as_object().find(attr);
      v = f ? *f : Value();
      // The reference treats a falsy attribute as failing every test.
      if (!v.truthy() && test != nullptr) {
        if (!select) out.push_back(item);
        continue;
      }
    }
    const bool ok = test ? apply_test(test->as_string(), v, test_arg) : v.truthy();
    if (ok == select) out.push_back(item);
  }
  return Value::array(std::move(out));
}

}  // namespace

Value get_member(const Value& object, const Value& key) {
  if (object.is_object() || object.is_namespace()) {
    if (!key.is_string()) fail(std::string("cannot index an object with ") + key.type_name());
    if (const Value* v = object.as_object().find(key.as_string())) return *v;
    return object.is_object() ? method(object, key.as_string()) : Value();
  }
  if (object.is_array() || object.is_string()) {
    if (key.is_int()) {
      int64_t i = key.as_int();
      if (object.is_array()) {
        const auto n = static_cast<int64_t>(object.as_array().size());
        if (i < 0) i += n;
        return i >= 0 && i < n ? object.as_array()[static_cast<size_t>(i)] : Value();
      }
      auto cps = code_points(object.as_string());
      const auto n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      return i >= 0 && i < n ? Value::string(cps[static_cast<size_t>(i)]) : Value();
    }
    if (key.is_string()) return method(object, key.as_string());
    fail(std::string("cannot index ") + object.type_name() + " with " + key.type_name());
  }
  if (!key.is_string()) fail(std::string("cannot index ") + object.type_name() + " with " + key.type_name());
  return Value();
}

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (op == "==") return Value::boolean(loose_equal(a, b));
  if (op == "!=") return Value::boolean(!loose_equal(a, b));
  const std::string o(op);
  if (a.is_undefined() || b.is_undefined()) {
    if (b.is_undefined() && (op == "in" || op == "not in")) return Value::boolean(op == "not in");
    fail("cannot apply '" + o + "' to an undefined value");
  }
  if (a.is_null() || b.is_null()) fail("cannot apply '" + o + "' to none");
  if (op == "~") return Value::string(a.to_string() + b.to_string());
  if (op == "**" && (a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
    const double x = a.as_number(), y = b.as_number();
    if (x == 0 && y < 0) fail("0 cannot be raised to a negative power");
    const double r = std::pow(x, y);
    if (!std::isfinite(r)) fail("'**' result is not a finite number");
    if (a.is_float() || b.is_float() || y < 0) return Value::floating(r);
    return Value::integer(int_from_double(r, "'**' result"));
  }
  if (a.is_number() && b.is_number()) {
    const bool is_float = a.is_float() || b.is_float();
    if (op == "+" || op == "-" || op == "*") {
      if (!is_float) {
        const int64_t x = a.as_int(), y = b.as_int();
        return Value::integer(op == "+" ? int_add(x, y) : op == "-" ? int_sub(x, y) : int_mul(x, y));
      }
      const double x = a.as_number(), y = b.as_number();
      return Value::floating(op == "+" ? x + y : op == "-" ? x - y : x * y);
    }
    if (op == "/") {
      if (b.as_number() == 0) fail("division by zero");
      return Value::floating(a.as_number() / b.as_number());
    }
    if (op == "//" || op == "%") {
      if (b.as_number() == 0) fail(o + " by zero");
      if (!is_float) {
        const int64_t x = a.as_int(), y = b.as_int();
        if (y == -1) return Value::integer(op == "%" ? 0 : int_neg(x));  // INT64_MIN / -1 overflows
        if (op == "%") return Value::integer(x % y);  // JavaScript remainder, as the reference
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value::integer(q);
      }
      const double x = a.as_number(), y = b.as_number();
      return Value::floating(op == "%" ? std::fmod(x, y) : std::floor(x / y));
    }
    const double x = a.as_number(), y = b.as_number();
    if (op == "<") return Value::boolean(x < y);
    if (op == ">") return Value::boolean(x > y);
    if (op == "<=") return Value::boolean(x <= y);
    if (op == ">=") return Value::boolean(x >= y);
  }
  if (a.is_array() && b.is_array() && op == "+") {
    Array out = a.as_array();
    out.insert(out.end(), b.as_array().begin(), b.as_array().end());
    return Value::array(std::move(out));
  }
  if (b.is_array() && (op == "in" || op == "not in")) {
    bool found = false;
    for (const Value& e : b.as_array()) {
      if (strict_equal(e, a)) { found = true; break; }
    }
    return Value::boolean(found == (op == "in"));
  }
  if ((a.is_string() || b.is_string()) && op == "+") return Value::string(concat_text(a) + concat_text(b));
  if (a.is_string() && b.is_string()) {
    if (op == "in") return Value::boolean(b.as_string().find(a.as_string()) != std::string::npos);
    if (op == "not in") return Value::boolean(b.as_string().find(a.as_string()) == std::string::npos);
    const int c = a.as_string().compare(b.as_string());
    if (op == "<") return Value::boolean(c < 0);
    if (op == ">") return Value::boolean(c > 0);
    if (op == "<=") return Value::boolean(c <= 0);
    if (op == ">=") return Value::boolean(c >= 0);
  }
  if (a.is_string() && b.is_object() && (op == "in" || op == "not in")) {
    return Value::boolean((b.as_object().find(a.as_string()) != nullptr) == (op == "in"));
  }
  if (op == "*" && ((a.is_string() && b.is_int()) || (a.is_int() && b.is_string()))) {
    const std::string& s = a.is_string() ? a.as_string() : b.as_string();
    const int64_t n = a.is_int() ? a.as_int() : b.as_int();
    std::string out;
    for (int64_t i = 0; i < n && out.size() < (1u << 24); ++i) out += s;
    return Value::string(out);
  }
  fail("unsupported operator '" + o + "' between " + a.type_name() + " and " + b.type_name());
}

bool apply_test(std::string_view name, const Value& v, const Value* arg) {
  const std::string n(name);
  if (n == "boolean") return v.is_bool();
  if (n == "callable") return v.is_function();
  if (n == "odd" || n == "even") {
    if (!v.is_int()) fail("test '" + n + "' needs an integer, got " + v.type_name());
    return (v.as_int() % 2 != 0) == (n == "odd");
  }
  if (n == "false") return v.is_bool() && !v.as_bool();
  if (n == "true") return v.is_bool() && v.as_bool();
  if (n == "none") return v.is_null();
  if (n == "string") return v.is_string();
  if (n == "number") return v.is_number();
  if (n == "integer") return v.is_int();
  if (n == "float") return v.is_float();
  if (n == "iterable") return v.is_array() || v.is_string();
  if (n == "mapping") return v.is_object();
  if (n == "sequence") return v.is_array() || v.is_object() || v.is_string();
  if (n == "lower") return v.is_string() && icu_case(v.as_string(), false) == v.as_string();
  if (n == "upper") return v.is_string() && icu_case(v.as_string(), true) == v.as_string();
  if (n == "defined") return !v.is_undefined();
  if (n == "undefined") return v.is_undefined();
  if (n == "equalto" || n == "eq" || n == "sameas") return arg != nullptr && strict_equal(v, *arg);
  fail("unsupported test 'is " + n + "'");
}

Value apply_filter(std::string_view name, const Value& v, const CallArgs& args) {
  const std::string n(name);
  if (n == "safe") return v;
  if (n == "tojson") {
    JsonOptions options;
    if (const Value* indent = args.get(0, "indent"); indent && !indent->is_null()) {
      if (!indent->is_int()) fail("tojson: indent must be an integer");
      options.indent = indent->as_int();
    }
    options.ensure_ascii = bool_arg(args, 99, "ensure_ascii", false);
    options.sort_keys = bool_arg(args, 99, "sort_keys", false);
    if (const Value* sep = args.get(99, "separators"); sep && !sep->is_null()) {
      if (!sep->is_array() || sep->as_array().size() != 2 || !sep->as_array()[0].is_string() ||
          !sep->as_array()[1].is_string()) {
        fail("tojson: separators must be a tuple of two strings");
      }
      options.separators = {sep->as_array()[0].as_string(), sep->as_array()[1].as_string()};
    }
    return Value::string(to_json(v, options));
  }
  if (n == "default" || n == "d") {
    const Value* fallback = args.get(0, "default_value");
    const bool boolean = bool_arg(args, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !v.truthy())) return fallback ? *fallback : Value::string("");
    return v;
  }
  if (n == "select" || n == "reject") return select_or_reject(v, args, n == "select", false);
  if (n == "selectattr" || n == "rejectattr") return select_or_reject(v, args, n == "selectattr", true);
  if (n == "join") {
    const Value* sep = args.get(0, "d");
    if (sep != nullptr && !sep->is_string()) fail("join: the separator must be a string");
    const std::string d = sep ? sep->as_string() : "";
    std::string out;
    if (v.is_string()) {
      auto cps = code_points(v.as_string());
      for (size_t i = 0; i < cps.size(); ++i) out += (i ? d : "") + cps[i];
      return Value::string(out);
    }
    if (!v.is_array()) fail(std::string("join: cannot join ") + v.type_name());
    for (size_t i = 0; i < v.as_array().size(); ++i) {
      const Value& e = v.as_array()[i];
      out += (i ? d : "") + (e.is_number() ? concat_text(e) : e.to_string());
    }
    return Value::string(out);
  }
  if (n == "int" || n == "float") {
    const Value* fallback = args.get(0, "default");
    if (v.is_string()) {
      const std::string s(js_trim(v.as_string(), true, true));
      char* end = nullptr;
      if (n == "int") {
        const long long i = std::strtoll(s.c_str(), &end, 10);
        if (end == s.c_str()) return fallback ? *fallback : Value::integer(0);
        return Value::integer(i);
      }
      const double f = std::strtod(s.c_str(), &end);
      if (end == s.c_str()) return fallback ? *fallback : Value::floating(0);
      return Value::floating(f);
    }
    if (v.is_number()) {
      if (n == "float") return Value::floating(v.as_number());
      return v.is_int() ? v : Value::integer(int_from_double(std::floor(v.as_number()), "int"));
    }
    if (v.is_bool()) return n == "int" ? Value::integer(v.as_bool()) : Value::floating(v.as_bool());
    fail("filter '" + n + "' cannot convert " + v.type_name());
  }
  if (n == "length" || n == "count") {
    if (v.is_string()) return Value::integer(utf16_length(v.as_string()));
    if (v.is_array()) return Value::integer(static_cast<int64_t>(v.as_array().size()));
    if (v.is_object()) return Value::integer(static_cast<int64_t>(v.as_object().items.size()));
    fail(std::string("length: ") + v.type_name() + " has no length");
  }
  if (n == "string") {
    if (v.is_undefined() || v.is_null()) fail(std::string("string: cannot convert ") + v.type_name());
    return Value::string(v.is_array() || v.is_object() ? to_json(v, {}, false) : v.to_string());
  }
  if (v.is_array()) {
    const Array& a = v.as_array();
    if (n == "list") return v;
    if (n == "first") return a.empty() ? Value() : a.front();
    if (n == "last") return a.empty() ? Value() : a.back();
    if (n == "reverse") return Value::array(Array(a.rbegin(), a.rend()));
    if (n == "unique") {
      Array out;
      for (const Value& e : a) {
        bool seen = false;
        for (const Value& o : out) seen = seen || strict_equal(o, e);
        if (!seen) out.push_back(e);
      }
      return Value::array(std::move(out));
    }
    if (n == "sort") {
      const bool reverse = bool_arg(args, 0, "reverse", false);
      const bool case_sensitive = bool_arg(args, 1, "case_sensitive", false);
      const Value* attr = args.get(2, "attribute");
      Array out = a;
      std::stable_sort(out.begin(), out.end(), [&](const Value& x, const Value& y) {
        auto key = [&](const Value& e) {
          if (attr == nullptr || attr->is_null()) return e;
          return attribute_path(e, attr->is_int() ? std::to_string(attr->as_int()) : attr->to_string());
        };
        const int c = compare_values(key(x), key(y), case_sensitive);
        return reverse ? c > 0 : c < 0;
      });
      return Value::array(std::move(out));
    }
    if (n == "map") {
      const Value* attr = args.get(99, "attribute");
      if (attr == nullptr || !attr->is_string()) fail("map: only map(attribute=...) is supported");
      const Value* fallback = args.get(99, "default");
      Array out;
      for (const Value& e : a) {
        if (!e.is_object() && !e.is_namespace()) fail("map: items must be objects");
        Value r = attribute_path(e, attr->as_string());
        out.push_back(r.is_undefined() && fallback ? *fallback : r);
      }
      return Value::array(std::move(out));
    }
  }
  if (v.is_string()) {
    const std::string& s = v.as_string();
    if (n == "upper" || n == "lower") return Value::string(icu_case(s, n == "upper"));
    if (n == "title" || n == "capitalize") return get_member(v, Value::string(n)).as_function()(CallArgs{});
    if (n == "trim") return Value::string(strip(v, args, true, true));
    if (n == "replace") return get_member(v, Value::string("replace")).as_function()(args);
    if (n == "indent") {
      const Value* width = args.get(0, "width");
      if (width != nullptr && !width->is_int()) fail("indent: width must be an integer");
      const std::string pad(static_cast<size_t>(std::max<int64_t>(0, width ? width->as_int() : 4)), ' ');
      const bool first = bool_arg(args, 1, "first", false);
      const bool blank = bool_arg(args, 2, "blank", false);
      std::string out;
      size_t start = 0, line = 0;
      while (true) {
        const size_t nl = s.find('\n', start);
        const std::string part = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
        if (line > 0) out += '\n';
        out += ((line == 0 && !first) || (part.empty() && !blank)) ? part : pad + part;
        if (nl == std::string::npos) break;
        start = nl + 1;
        ++line;
      }
      return Value::string(out);
    }
  }
  if (v.is_number() && n == "abs") {
    return v.is_int() ? Value::integer(v.as_int() < 0 ? int_neg(v.as_int()) : v.as_int())
                      : Value::floating(std::fabs(v.as_number()));
  }
  if (v.is_bool() && n == "bool") return v;
  if (v.is_object()) {
    if (n == "items") return object_items(v);
    if (n == "dictsort") return dictsort(v, args);
  }
  fail("unsupported filter '" + n + "' for " + v.type_name());
}

}  // namespace tidal::jinja
