// JsonFields: typed, validated reading of a JSON request object with one clear error message.
//
//   JsonFields f(body);                  // body must be an object, else status() is an error
//   f.required("cmd", &cmd);             // missing or wrongly typed -> error naming the field
//   f.optional("timeout_s", &timeout);   // absent or null: `timeout` keeps its value
//   f.reject_unknown();                  // any key not read above -> error
//   if (!f.status().is_ok()) return HttpResponse::from_status(f.status());
//
// The first error wins; later calls are no-ops. Integers accept JSON integers only (and doubles
// with no fractional part); doubles accept any number. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"

namespace tidal::http {

class JsonFields {
 public:
  // Keeps a reference to `object`, which must outlive this reader (temporaries are refused).
  explicit JsonFields(const nlohmann::json& object, std::string where = "request body");
  JsonFields(nlohmann::json&&, std::string = {}) = delete;

  void required(const char* key, std::string* out);
  void required(const char* key, int64_t* out);
  void required(const char* key, nlohmann::json* out);
  void optional(const char* key, std::string* out);
  void optional(const char* key, int64_t* out);
  void optional(const char* key, double* out);
  void optional(const char* key, bool* out);
  void optional(const char* key, std::vector<std::string>* out);
  void optional(const char* key, std::map<std::string, std::string>* out);
  void optional(const char* key, nlohmann::json* out);
  // True when the key is present and not null (marks it as read).
  bool has(const char* key);
  // Fails when the object has keys that no call above asked for.
  void reject_unknown();
  // Records an error about `key` unless one was already recorded (for range checks by the caller).
  void fail(const char* key, const std::string& why);

  const Status& status() const { return status_; }

 private:
  const nlohmann::json* find(const char* key, bool required);
  void type_error(const char* key, const char* expected);

  const nlohmann::json& object_;
  std::string where_;
  std::set<std::string> seen_;
  Status status_;
};

}  // namespace tidal::http
