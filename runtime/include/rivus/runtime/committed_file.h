// A file a stage appends to exactly once: what it adds is held in memory until the stage's next
// commit, written then, and the file's length is what the stage commits as its position
// (Stage::checkpoint()). A replacement process, or a batch redone after an error, starts from the
// committed length. window's late_path and the Python package's collecting sink use it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rivus/base/status.h"

namespace rivus {

class CommittedFile {
 public:
  CommittedFile() = default;
  CommittedFile(const CommittedFile&) = delete;
  CommittedFile& operator=(const CommittedFile&) = delete;
  ~CommittedFile();

  // Opens (creating with `mode`) and cuts `path` to `committed` bytes (0 at the start of a run).
  // Messages start with `what` ("late_path: open late.txt: ...").
  Status open(const std::string& path, std::uint64_t committed, const std::string& what,
              unsigned mode = 0644);
  bool is_open() const noexcept { return fd_ >= 0; }
  void append(std::string_view bytes) { buf_.append(bytes); }
  void discard() noexcept { buf_.clear(); }  // what was appended since the last flush()
  // Writes what is held; returns the file's length. Throws std::runtime_error if the file cannot
  // take it, which stops the stage before the commit that would have claimed those bytes.
  std::uint64_t flush();

 private:
  int fd_ = -1;
  std::string path_;
  std::string what_;
  std::uint64_t offset_ = 0;
  std::string buf_;
};

}  // namespace rivus
