// Status and Expected<T>: expected failure is a value, never an exception on the hot path.
//
// Contract: a function that can fail returns Status (no payload) or Expected<T>. Both are
// [[nodiscard]]. Messages are one line, name the file/tensor/field at fault, and are meant to be
// printed to a user as they are.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace tidal {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller passed something malformed (bad flag, bad JSON, bad shape)
  kNotFound,         // a file, tensor or key that must exist does not
  kDataLoss,         // a file exists but is truncated or corrupt
  kUnimplemented,    // a valid request Tidal does not support (unknown arch, dtype)
  kResourceExhausted,
  kInternal,
  kIoError,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code>: <message>", for logs and CLI errors.
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status data_loss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status resource_exhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}

// A value or the Status saying why there is none. Access to value() on an error is a bug (asserts).
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}                       // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).is_ok()); }  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(v_); }
  const T& value() const& { assert(has_value()); return std::get<0>(v_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Status& status() const {
    static const Status kOkStatus;
    return has_value() ? kOkStatus : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tidal

// Propagate a failing Status from an expression returning Status.
#define TIDAL_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::tidal::Status tidal_status_ = (expr);    \
    if (!tidal_status_.is_ok()) return tidal_status_; \
  } while (0)

#define TIDAL_CONCAT_INNER_(a, b) a##b
#define TIDAL_CONCAT_(a, b) TIDAL_CONCAT_INNER_(a, b)
// TIDAL_ASSIGN_OR_RETURN(auto x, make_x()); binds the value or returns the Status.
#define TIDAL_ASSIGN_OR_RETURN(lhs, expr) \
  TIDAL_ASSIGN_OR_RETURN_IMPL_(TIDAL_CONCAT_(tidal_expected_, __LINE__), lhs, expr)
#define TIDAL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.has_value()) return tmp.status();         \
  lhs = std::move(tmp).value()
