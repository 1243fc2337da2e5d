#include "rivus/base/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace rivus::base {

Status check_writable_file(const std::string& path, const std::string& what) {
  const std::string named = what + " " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(named + " is not a regular file");
    if (::access(path.c_str(), W_OK) != 0) {
      return Status::IoError(named + " cannot be written", errno);
    }
    return Status::Ok();
  }
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::NotFound(named + ": directory " + dir + " does not exist");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::IoError(named + ": directory " + dir + " is not writable", errno);
  }
  return Status::Ok();
}

}  // namespace rivus::base
