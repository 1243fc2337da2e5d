#include "rivus/runtime/committed_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace rivus {

CommittedFile::~CommittedFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status CommittedFile::open(const std::string& path, std::uint64_t committed,
                           const std::string& what, unsigned mode) {
  path_ = path;
  what_ = what;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, mode);
  if (fd_ < 0) return Status::IoError(what + ": open " + path, errno);
  offset_ = committed;
  if (::ftruncate(fd_, static_cast<off_t>(offset_)) != 0) {
    return Status::IoError(what + ": truncate " + path, errno);
  }
  return Status::Ok();
}

std::uint64_t CommittedFile::flush() {
  if (fd_ < 0 || buf_.empty()) return offset_;
  std::size_t done = 0;
  while (done < buf_.size()) {
    const ssize_t n =
        ::pwrite(fd_, buf_.data() + done, buf_.size() - done, static_cast<off_t>(offset_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw std::runtime_error(
          Status::IoError(what_ + ": write " + path_, n < 0 ? errno : EIO).message());
    }
    done += static_cast<std::size_t>(n);
  }
  offset_ += buf_.size();
  buf_.clear();
  return offset_;
}

}  // namespace rivus
