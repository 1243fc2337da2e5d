#include "rivus/base/status.h"

#include <cstring>

namespace rivus {

const char* status_code_name(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid argument";
    case StatusCode::kNotFound:
      return "not found";
    case StatusCode::kAlreadyExists:
      return "already exists";
    case StatusCode::kCorrupt:
      return "corrupt";
    case StatusCode::kVersionMismatch:
      return "version mismatch";
    case StatusCode::kIoError:
      return "I/O error";
    case StatusCode::kResourceExhausted:
      return "resource exhausted";
    case StatusCode::kFailed:
      return "failed";
    case StatusCode::kInternal:
      return "internal error";
  }
  return "unknown";
}

Status Status::IoError(const std::string& what, int err) {
  return {StatusCode::kIoError, what + ": " + std::strerror(err)};
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

Status Status::with_context(const std::string& context) const {
  if (ok()) return *this;
  return {code_, context + ": " + message_};
}

}  // namespace rivus
