#include "tidal/tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tidal/tokenizer/utf8.h"

namespace tidal::jinja {

void fail(std::string message) { throw Error{std::move(message)}; }

int64_t int_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail("integer overflow in '+'");
  return r;
}
int64_t int_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) fail("integer overflow in '-'");
  return r;
}
int64_t int_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail("integer overflow in '*'");
  return r;
}
int64_t int_neg(int64_t a) { return int_sub(0, a); }
int64_t int_from_double(double d, const char* what) {
  // [-2^63, 2^63): both bounds are exact doubles.
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
    fail(std::string(what) + ": " + Value::floating(d).to_string() + " does not fit a 64-bit integer");
  }
  return static_cast<int64_t>(d);
}

const Value* Object::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Object::set(const std::string& key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) { v = std::move(value); return; }
  }
  items.emplace_back(key, std::move(value));
}

const Value* CallArgs::get(size_t i, std::string_view name) const {
  if (i < positional.size()) return &positional[i];
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value Value::array(Array a, bool is_tuple) {
  Value v;
  v.kind_ = Kind::kArray;
  v.is_tuple_ = is_tuple;
  v.array_ = std::make_shared<Array>(std::move(a));
  return v;
}

Value Value::object(Object o) {
  Value v;
  v.kind_ = Kind::kObject;
  v.object_ = std::make_shared<Object>(std::move(o));
  return v;
}

Value Value::name_space(Object o) {
  Value v = object(std::move(o));
  v.kind_ = Kind::kNamespace;
  return v;
}

Value Value::function(Function f) {
  Value v;
  v.kind_ = Kind::kFunction;
  v.function_ = std::make_shared<const Function>(std::move(f));
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return null();
    case nlohmann::ordered_json::value_t::boolean: return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return j.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX) ? integer(j.get<int64_t>())
                                                                   : floating(j.get<double>());
    case nlohmann::ordered_json::value_t::number_float: {
      const double f = j.get<double>();
      // JSON.parse gives the reference a JS number: 1.0 is then an integer.
      if (std::isfinite(f) && f == std::trunc(f) && std::fabs(f) < 9007199254740992.0) {
        return integer(static_cast<int64_t>(f));
      }
      return floating(f);
    }
    case nlohmann::ordered_json::value_t::string: return string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      a.reserve(j.size());
      for (const auto& e : j) a.push_back(from_json(e));
      return array(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      o.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) o.set(it.key(), from_json(it.value()));
      return object(std::move(o));
    }
    default: return Value();
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNull: return false;
    case Kind::kBool:
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return f_ != 0 && !std::isnan(f_);
    case Kind::kString: return !s_.empty();
    case Kind::kArray: return !array_->empty();
    case Kind::kObject: return !object_->items.empty();
    case Kind::kNamespace:
    case Kind::kFunction: return true;
  }
  return false;
}

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNull: return "none";
    case Kind::kBool: return "boolean";
    case Kind::kInt: return "integer";
    case Kind::kFloat: return "float";
    case Kind::kString: return "string";
    case Kind::kArray: return is_tuple_ ? "tuple" : "array";
    case Kind::kObject: return "object";
    case Kind::kNamespace: return "namespace";
    case Kind::kFunction: return "function";
  }
  return "?";
}

// ECMAScript Number::toString(x) from the shortest round-trip digits.
static std::string js_number(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x < 0 ? "-Infinity" : "Infinity";
  if (x == 0) return "0";
  std::string out;
  if (x < 0) { out = "-"; x = -x; }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) {
    if (sci[i] != '.') digits += sci[i];
  }
  const int n = std::stoi(sci.substr(e_pos + 1)) + 1;  // decimal point position
  const int k = static_cast<int>(digits.size());
  if (k <= n && n <= 21) {
    out += digits + std::string(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, static_cast<size_t>(n)) + "." + digits.substr(static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0." + std::string(static_cast<size_t>(-n), '0') + digits;
  } else {
    const int e = n - 1;
    out += digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += std::string("e") + (e < 0 ? "-" : "+") + std::to_string(std::abs(e));
  }
  return out;
}

std::string format_float(double f) {
  if (f == 0 && std::signbit(f)) return "-0.0";
  if (std::isfinite(f) && f == std::trunc(f) && std::fabs(f) < 1e21) return js_number(f) + ".0";
  return js_number(f);
}

std::string Value::to_string() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNull: return "";
    case Kind::kBool: return i_ ? "true" : "false";
    case Kind::kInt: return std::to_string(i_);
    case Kind::kFloat: return format_float(f_);
    case Kind::kString: return s_;
    case Kind::kArray:
    case Kind::kObject:
    case Kind::kNamespace: return to_json(*this, {}, /*undefined_as_null=*/false);
    case Kind::kFunction: return "[function]";
  }
  return "";
}

namespace {

// JSON.stringify of a string: escapes quote, backslash and control characters only.
void append_json_string(std::string_view s, bool ensure_ascii, std::string& out) {
  out += '"';
  size_t pos = 0;
  while (pos < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {
      ++pos;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      continue;
    }
    const size_t start = pos;
    const uint32_t cp = utf8::next_code_point(s, pos);
    if (!ensure_ascii) {
      out.append(s.substr(start, pos - start));
      continue;
    }
    // UTF-16 code units, as JSON.stringify + the reference's escaping (and Python's json.dumps).
    char buf[16];
    if (cp > 0xffff) {
      const uint32_t v = cp - 0x10000;
      std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
    } else {
      std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
    }
    out += buf;
  }
  out += '"';
}

}  // namespace

constexpr int kMaxJsonDepth = 256;

std::string to_json(const Value& v, const JsonOptions& options, bool undefined_as_null, int depth) {
  std::string item_sep = options.indent && *options.indent > 0 ? "," : ", ";
  std::string key_sep = ": ";
  if (options.separators) std::tie(item_sep, key_sep) = *options.separators;
  switch (v.kind()) {
    case Value::Kind::kNull: return "null";
    case Value::Kind::kUndefined: return undefined_as_null ? "null" : "undefined";
    case Value::Kind::kBool: return v.as_bool() ? "true" : "false";
    case Value::Kind::kInt: return std::to_string(v.as_int());
    case Value::Kind::kFloat: {
      const double f = v.as_number();
      return std::isfinite(f) ? js_number(f) : "null";  // JSON.stringify
    }
    case Value::Kind::kString: {
      std::string out;
      append_json_string(v.as_string(), options.ensure_ascii, out);
      return out;
    }
    case Value::Kind::kArray:
    case Value::Kind::kObject:
    case Value::Kind::kNamespace: {
      // A namespace can hold itself ({% set ns.x = ns %}): the reference throws on the cycle too.
      if (depth >= kMaxJsonDepth) {
        fail("tojson: value nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (does it contain itself?)");
      }
      const int64_t indent = options.indent.value_or(0);
      const std::string indent_unit = indent > 0 ? std::string(static_cast<size_t>(indent), ' ') : "";
      std::string base = "\n";
      for (int d = 0; d < depth; ++d) base += indent_unit;
      const std::string child = base + indent_unit;
      std::vector<std::string> core;
      if (v.is_array()) {
        for (const Value& e : v.as_array()) core.push_back(to_json(e, options, undefined_as_null, depth + 1));
        std::string out = "[";
        if (indent > 0 && !core.empty()) {
          out += child;
          for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep + child : "") + core[i];
          out += base;
        } else {
          for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep : "") + core[i];
        }
        return out + "]";
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& kv : v.as_object().items) entries.push_back(&kv);
      if (options.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      for (const auto* kv : entries) {
        std::string key;
        append_json_string(kv->first, options.ensure_ascii, key);
        std::string e = key + key_sep + to_json(kv->second, options, undefined_as_null, depth + 1);
        core.push_back(indent > 0 ? child + e : e);
      }
      std::string out = "{";
      for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep : "") + core[i];
      if (indent > 0 && !core.empty()) out += base;
      return out + "}";
    }
    case Value::Kind::kFunction: fail("tojson: cannot convert a function to JSON");
  }
  return "null";
}

bool strict_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.as_number() == b.as_number();
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNull: return true;
    case Value::Kind::kBool: return a.as_bool() == b.as_bool();
    case Value::Kind::kString: return a.as_string() == b.as_string();
    case Value::Kind::kArray: return &a.as_array() == &b.as_array();
    case Value::Kind::kObject:
    case Value::Kind::kNamespace: return &a.as_object() == &b.as_object();
    default: return false;
  }
}

bool loose_equal(const Value& a, const Value& b) {
  const bool a_nullish = a.is_null() || a.is_undefined();
  const bool b_nullish = b.is_null() || b.is_undefined();
  if (a_nullish || b_nullish) return a_nullish && b_nullish;
  const bool a_num = a.is_number() || a.is_bool();
  const bool b_num = b.is_number() || b.is_bool();
  if (a_num && b_num) return a.as_number() == b.as_number();
  return strict_equal(a, b);
}

}  // namespace tidal::jinja
