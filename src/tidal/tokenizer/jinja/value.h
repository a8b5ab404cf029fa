// jinja::Value: the runtime value of the chat-template engine (see chat_template.h).
//
// The semantics follow @huggingface/jinja, the reference renderer Tidal is tested against:
// integers and floats are distinct, objects keep insertion order, `{{ none }}` prints nothing,
// booleans print as "true"/"false", and tojson writes JSON.stringify-style text with Python's
// default separators (", " and ": ").
//
// Arrays, objects and namespaces are shared by reference (a namespace is mutated by `set ns.x`);
// everything else is a plain value. Not thread-safe: a Value graph belongs to one render.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tidal::jinja {

// A render error: thrown inside the engine, turned into a Status at the ChatTemplate boundary.
// NOTE: exceptions are confined to the template engine (not a hot path); no API lets one escape.
struct Error {
  std::string message;
};
[[noreturn]] void fail(std::string message);

// Integer arithmetic of templates: a result outside int64 is an error naming the operation, never
// undefined behaviour (templates are untrusted input).
int64_t int_add(int64_t a, int64_t b);
int64_t int_sub(int64_t a, int64_t b);
int64_t int_mul(int64_t a, int64_t b);
int64_t int_neg(int64_t a);
// A finite double's value as int64 (truncated); out of range or not finite -> error naming `what`.
int64_t int_from_double(double d, const char* what);

class Value;
using Array = std::vector<Value>;

// An insertion-ordered string -> Value map (linear lookup: template objects are small).
struct Object {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
};

// Arguments of a call: positionals, then keyword arguments in call order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // Positional i, else keyword `name`, else nullopt.
  const Value* get(size_t i, std::string_view name) const;
};
using Function = std::function<Value(const CallArgs&)>;

class Value {
 public:
  enum class Kind { kUndefined, kNull, kBool, kInt, kFloat, kString, kArray, kObject, kNamespace, kFunction };

  Value() = default;  // undefined
  static Value null() { Value v; v.kind_ = Kind::kNull; return v; }
  static Value boolean(bool b) { Value v; v.kind_ = Kind::kBool; v.i_ = b; return v; }
  static Value integer(int64_t i) { Value v; v.kind_ = Kind::kInt; v.i_ = i; return v; }
  static Value floating(double f) { Value v; v.kind_ = Kind::kFloat; v.f_ = f; return v; }
  static Value string(std::string s) { Value v; v.kind_ = Kind::kString; v.s_ = std::move(s); return v; }
  static Value array(Array a, bool is_tuple = false);
  static Value object(Object o);
  static Value name_space(Object o);
  static Value function(Function f);
  // JSON -> Value (object order kept). Integral numbers, also those written as 1.0, become
  // integers, as JSON.parse does for the reference.
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_tuple() const { return kind_ == Kind::kArray && is_tuple_; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return i_; }
  double as_number() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(i_); }
  const std::string& as_string() const { return s_; }
  const Array& as_array() const { return *array_; }
  Object& as_object() const { return *object_; }  // object or namespace
  const Function& as_function() const { return *function_; }

  // Python truthiness (empty string/array/object, 0, none and undefined are false).
  bool truthy() const;
  // The text `{{ value }}` prints (JSON for arrays/objects, "" for none/undefined).
  std::string to_string() const;
  // The type name used in error messages ("string", "array", ...).
  const char* type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool is_tuple_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Object> object_;
  std::shared_ptr<const Function> function_;
};

struct JsonOptions {
  std::optional<int64_t> indent;
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::optional<std::pair<std::string, std::string>> separators;  // (item, key)
};
// The `tojson` filter. `undefined_as_null` false writes "undefined" (as the reference's
// to-string of containers does).
std::string to_json(const Value& v, const JsonOptions& options = {}, bool undefined_as_null = true,
                    int depth = 0);

// Number formatting as the reference prints numbers (JavaScript's Number#toString; floats with an
// integral value print as "2.0").
std::string format_float(double f);

// Loose equality of `==` (numbers by value, bool as 0/1, none == undefined, strings by bytes,
// containers by identity).
bool loose_equal(const Value& a, const Value& b);
// Strict equality used by `in` and `unique` (same kind and value).
bool strict_equal(const Value& a, const Value& b);

}  // namespace tidal::jinja
