#include "rivus/worker/dead_letter.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "rivus/base/files.h"
#include "rivus/base/process.h"

namespace rivus::worker {

const char* dead_letter_reason_name(DeadLetterReason r) noexcept {
  switch (r) {
    case DeadLetterReason::kError:
      return "error";
    case DeadLetterReason::kCrash:
      return "crash";
    case DeadLetterReason::kTimeout:
      return "timeout";
    case DeadLetterReason::kTooLarge:
      return "too-large";
  }
  return "unknown";
}

std::string json_bytes(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() + 2);
  out.push_back('"');
  for (unsigned char c : bytes) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

namespace {
std::string utc_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000);
  return buf;
}
std::string text(std::string_view s) { return json_bytes(s); }
}  // namespace

std::string to_json_line(const DeadLetter& d) {
  std::string s = "{\"time\":\"" + utc_now() + "\"";
  s += ",\"pipeline\":" + text(d.pipeline);
  s += ",\"stage\":" + text(d.stage);
  s += ",\"worker\":" + std::to_string(d.worker);
  s += ",\"seq\":" + std::to_string(d.seq);
  s += ",\"reason\":" + text(dead_letter_reason_name(d.reason));
  s += ",\"error\":" + text(d.error);
  if (d.signal != 0) {
    s += ",\"signal\":" + std::to_string(d.signal);
    s += ",\"signal_name\":" + text(base::signal_name(d.signal));
  } else {
    s += ",\"signal\":null";
  }
  s += d.exit_code >= 0 ? ",\"exit_code\":" + std::to_string(d.exit_code) : ",\"exit_code\":null";
  s += ",\"attempts\":" + std::to_string(d.attempts);
  s += ",\"record\":" + json_bytes(d.record);
  s += "}\n";
  return s;
}

Status append_dead_letter(const std::string& path, const DeadLetter& d) {
  const std::string line = to_json_line(d);
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("open dead-letter file " + path, errno);
  const ssize_t w = ::write(fd, line.data(), line.size());
  const int err = errno;
  ::close(fd);
  if (w != static_cast<ssize_t>(line.size())) {
    return Status::IoError("write dead-letter file " + path, w < 0 ? err : EIO);
  }
  return Status::Ok();
}

Status check_dead_letter_path(const std::string& path) {
  return base::check_writable_file(path, "dead-letter file");
}

}  // namespace rivus::worker
