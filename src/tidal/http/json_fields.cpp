#include "tidal/http/json_fields.h"

#include <cmath>

namespace tidal::http {

using nlohmann::json;

JsonFields::JsonFields(const json& object, std::string where)
    : object_(object), where_(std::move(where)) {
  if (!object_.is_object()) status_ = invalid_argument(where_ + " must be a JSON object");
}

const json* JsonFields::find(const char* key, bool required) {
  if (!status_.is_ok()) return nullptr;
  seen_.insert(key);
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) {
    if (required) status_ = invalid_argument(where_ + ": missing required field '" + key + "'");
    return nullptr;
  }
  return &*it;
}

void JsonFields::type_error(const char* key, const char* expected) {
  if (status_.is_ok()) {
    status_ = invalid_argument(where_ + ": field '" + key + "' must be " + expected);
  }
}

void JsonFields::fail(const char* key, const std::string& why) {
  if (status_.is_ok()) status_ = invalid_argument(where_ + ": field '" + key + "' " + why);
}

static bool as_int(const json& v, int64_t* out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e18) {
      *out = static_cast<int64_t>(d);
      return true;
    }
  }
  return false;
}

void JsonFields::required(const char* key, std::string* out) {
  if (const json* v = find(key, true)) {
    if (!v->is_string()) return type_error(key, "a string");
    *out = v->get<std::string>();
  }
}

void JsonFields::required(const char* key, int64_t* out) {
  if (const json* v = find(key, true)) {
    if (!as_int(*v, out)) type_error(key, "an integer");
  }
}

void JsonFields::required(const char* key, json* out) {
  if (const json* v = find(key, true)) *out = *v;
}

void JsonFields::optional(const char* key, std::string* out) {
  if (const json* v = find(key, false)) {
    if (!v->is_string()) return type_error(key, "a string");
    *out = v->get<std::string>();
  }
}

void JsonFields::optional(const char* key, int64_t* out) {
  if (const json* v = find(key, false)) {
    if (!as_int(*v, out)) type_error(key, "an integer");
  }
}

void JsonFields::optional(const char* key, double* out) {
  if (const json* v = find(key, false)) {
    if (!v->is_number()) return type_error(key, "a number");
    *out = v->get<double>();
  }
}

void JsonFields::optional(const char* key, bool* out) {
  if (const json* v = find(key, false)) {
    if (!v->is_boolean()) return type_error(key, "a boolean");
    *out = v->get<bool>();
  }
}

void JsonFields::optional(const char* key, std::vector<std::string>* out) {
  if (const json* v = find(key, false)) {
    if (!v->is_array()) return type_error(key, "an array of strings");
    std::vector<std::string> items;
    for (const auto& e : *v) {
      if (!e.is_string()) return type_error(key, "an array of strings");
      items.push_back(e.get<std::string>());
    }
    *out = std::move(items);
  }
}

void JsonFields::optional(const char* key, std::map<std::string, std::string>* out) {
  if (const json* v = find(key, false)) {
    if (!v->is_object()) return type_error(key, "an object of strings");
    std::map<std::string, std::string> items;
    for (auto it = v->begin(); it != v->end(); ++it) {
      if (!it.value().is_string()) return type_error(key, "an object of strings");
      items[it.key()] = it.value().get<std::string>();
    }
    *out = std::move(items);
  }
}

void JsonFields::optional(const char* key, json* out) {
  if (const json* v = find(key, false)) *out = *v;
}

bool JsonFields::has(const char* key) {
  if (!status_.is_ok()) return false;
  seen_.insert(key);
  auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

void JsonFields::reject_unknown() {
  if (!status_.is_ok()) return;
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (!seen_.count(it.key())) {
      status_ = invalid_argument(where_ + ": unknown field '" + it.key() + "'");
      return;
    }
  }
}

}  // namespace tidal::http
