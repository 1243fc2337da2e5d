// Status and Result<T>: the error vocabulary of every Rivus component.
//
// Factories and fallible operations return a Status (or a Result<T> that holds either a value or
// a non-ok Status) instead of throwing. Messages carry context: which file, which stage, which
// errno. Exceptions from third-party libraries are caught where Rivus calls the library and turned
// into a Status there. Both types are cheap to move and safe to use from any thread.
//
// Propagation: RIVUS_RETURN_IF_ERROR(expr) returns the Status of `expr` (a Status or a Result)
// from the enclosing function if it is not ok; RIVUS_ASSIGN_OR_RETURN(lhs, expr) evaluates a
// Result once and either moves its value into `lhs` or returns its Status.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace rivus {

enum class StatusCode : std::uint8_t {
  kOk = 0,
  kInvalidArgument,    // the caller (or a user's spec) asked for something that makes no sense
  kNotFound,           // a named thing (segment, stage, file) does not exist
  kAlreadyExists,      // create-only found the name taken
  kCorrupt,            // bytes that should follow a format do not
  kVersionMismatch,    // a segment of another layout version
  kIoError,            // a system call failed; the message names it and the errno
  kResourceExhausted,  // no room: ring, segment, shm filesystem
  kFailed,             // a run or a stage failed (restart intensity, fatal worker error)
  kInternal,           // a bug in Rivus
};

const char* status_code_name(StatusCode code) noexcept;

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status Corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
  static Status VersionMismatch(std::string m) {
    return {StatusCode::kVersionMismatch, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status Failed(std::string m) { return {StatusCode::kFailed, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  // An I/O error naming the operation and the errno (as text).
  static Status IoError(const std::string& what, int err);

  bool ok() const noexcept { return code_ == StatusCode::kOk; }
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  std::string to_string() const;

  // Prefixes the message with context ("stage hash: " + message), keeping the code.
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

namespace detail {
inline const Status& status_of(const Status& s) { return s; }
template <class T>
const Status& status_of(const Result<T>& r) {
  return r.status();
}
}  // namespace detail

}  // namespace rivus

#define RIVUS_STATUS_CONCAT_INNER(a, b) a##b
#define RIVUS_STATUS_CONCAT(a, b) RIVUS_STATUS_CONCAT_INNER(a, b)

// Returns the Status of `expr` (a Status or a Result<T>) if it is not ok.
#define RIVUS_RETURN_IF_ERROR(expr)                                         \
  do {                                                                      \
    const auto& rivus_status_or_ = (expr);                                  \
    if (!::rivus::detail::status_of(rivus_status_or_).ok()) {               \
      return ::rivus::Status(::rivus::detail::status_of(rivus_status_or_)); \
    }                                                                       \
  } while (0)

// `lhs = value of expr`, or returns the Status of `expr` if it is not ok. `lhs` may declare a
// variable (`RIVUS_ASSIGN_OR_RETURN(auto seg, Segment::create(...))`).
#define RIVUS_ASSIGN_OR_RETURN(lhs, expr) \
  RIVUS_ASSIGN_OR_RETURN_IMPL(RIVUS_STATUS_CONCAT(rivus_result_, __LINE__), lhs, expr)
#define RIVUS_ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                                \
  if (!result.ok()) return result.status();            \
  lhs = std::move(result).value()
