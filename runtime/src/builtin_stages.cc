// The built-in stages: sources range and lines, transforms fnv and passthrough, sinks file,
// stdout and discard. `rivus stages` lists them with their parameters; docs/stages.md has more.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

#include "builtin.h"
#include "rivus/runtime/stage.h"

namespace rivus {

std::uint64_t fnv1a64_u64(std::uint64_t x) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < 8; ++i) {
    h ^= (x >> (8 * i)) & 0xff;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t fnv_work(std::uint64_t i, std::uint64_t rounds) noexcept {
  std::uint64_t x = i;
  for (std::uint64_t r = 0; r < rounds; ++r) x = fnv1a64_u64(x);
  return x;
}

namespace {

// Writes all of `data` to `fd`, retrying short writes and EINTR.
Status write_all(int fd, const char* data, std::size_t n, const std::string& what) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("write " + what, errno);
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return Status::Ok();
}

// ---- range ---------------------------------------------------------------------------------

class RangeSource final : public Source {
 public:
  Status open(StageContext& ctx) override {
    start_ = ctx.params->get_int("start", 0);
    count_ = static_cast<std::uint64_t>(ctx.params->get_int("count", 0));
    next_ = ctx.position;
    return Status::Ok();
  }
  bool produce(Emitter& out, std::size_t max_records) override {
    char buf[24];
    for (std::size_t i = 0; i < max_records && next_ < count_; ++i, ++next_) {
      const std::int64_t v = start_ + static_cast<std::int64_t>(next_);
      const auto r = std::to_chars(buf, buf + sizeof buf, v);
      out.emit(Record{std::string_view(buf, static_cast<std::size_t>(r.ptr - buf))});
    }
    return next_ < count_;
  }
  std::uint64_t position() const override { return next_; }

 private:
  std::int64_t start_ = 0;
  std::uint64_t count_ = 0;
  std::uint64_t next_ = 0;
};

// ---- lines ---------------------------------------------------------------------------------

class LinesSource final : public Source {
 public:
  ~LinesSource() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status open(StageContext& ctx) override {
    path_ = ctx.params->get_string("path");
    max_record_ = ctx.max_record;
    if (path_ == "-") {
      fd_ = ::dup(0);
      if (fd_ < 0) return Status::IoError("dup stdin", errno);
      path_ = "<stdin>";
    } else {
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) return Status::IoError("open " + path_, errno);
    }
    offset_ = ctx.position;
    // A replacement resumes at the committed byte offset. A pipe cannot be rewound: there the
    // bytes the previous process read but did not commit are gone (docs/fault-tolerance.md).
    if (offset_ > 0) (void)::lseek(fd_, static_cast<off_t>(offset_), SEEK_SET);
    return Status::Ok();
  }

  bool produce(Emitter& out, std::size_t max_records) override {
    std::size_t emitted = 0;
    while (emitted < max_records) {
      const char* base = buf_.data() + begin_;
      const std::size_t avail = buf_.size() - begin_;
      const auto* nl =
          static_cast<const char*>(std::memchr(base + scanned_, '\n', avail - scanned_));
      if (nl != nullptr) {
        const auto len = static_cast<std::size_t>(nl - base);
        emit_line(out, std::string_view(base, len), len + 1);
        ++emitted;
        continue;
      }
      scanned_ = avail;
      if (eof_) {
        if (avail > 0) emit_line(out, std::string_view(base, avail), avail);  // no final newline
        return false;
      }
      if (emitted > 0) return true;  // commit what we have before a read that may block
      fill();
    }
    return true;
  }

  std::uint64_t position() const override { return offset_; }

 private:
  void emit_line(Emitter& out, std::string_view line, std::size_t consumed) {
    if (line.size() > max_record_) {
      throw std::length_error("line at byte " + std::to_string(offset_) + " of " + path_ + " is " +
                              std::to_string(line.size()) + " bytes, longer than a ring accepts (" +
                              std::to_string(max_record_) + "); raise ring.capacity");
    }
    out.emit(Record{line});
    offset_ += consumed;
    begin_ += consumed;
    scanned_ = 0;
  }

  void fill() {
    if (begin_ > 0) {  // compact: keep only the unconsumed tail
      buf_.erase(0, begin_);
      begin_ = 0;
    }
    const std::size_t old = buf_.size();
    buf_.resize(old + kChunk);
    for (;;) {
      const ssize_t n = ::read(fd_, buf_.data() + old, kChunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        buf_.resize(old);
        throw std::runtime_error("read " + path_ + ": " + std::strerror(errno));
      }
      buf_.resize(old + static_cast<std::size_t>(n));
      if (n == 0) eof_ = true;
      return;
    }
  }

  static constexpr std::size_t kChunk = 256 * 1024;
  std::string path_;
  int fd_ = -1;
  std::uint64_t offset_ = 0;  // bytes consumed by emitted records
  std::uint64_t max_record_ = 0;
  std::string buf_;
  std::size_t begin_ = 0;    // first unconsumed byte in buf_
  std::size_t scanned_ = 0;  // bytes after begin_ known to hold no newline
  bool eof_ = false;
};

// ---- fnv -----------------------------------------------------------------------------------

class FnvStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    rounds_ = static_cast<std::uint64_t>(ctx.params->get_int("rounds", 1000));
    return Status::Ok();
  }
  void process(const Batch& batch, Emitter& out) override {
    static constexpr char kHex[] = "0123456789abcdef";
    char hex[16];
    for (const Record& r : batch) {
      std::uint64_t i = 0;
      const char* b = r.data.data();
      const char* e = b + r.data.size();
      bool negative = false;
      if (b != e && *b == '-') {
        negative = true;
        ++b;
      }
      const auto res = std::from_chars(b, e, i);
      if (b == e || res.ec != std::errc() || res.ptr != e) {
        throw RecordError("fnv: input is not a decimal integer");
      }
      if (negative) i = ~i + 1;  // two's complement of the magnitude, as the u64 of an i64
      std::uint64_t x = fnv_work(i, rounds_);
      for (int k = 15; k >= 0; --k, x >>= 4) hex[k] = kHex[x & 0xf];
      out.emit(r, std::string_view(hex, 16));
    }
  }

 private:
  std::uint64_t rounds_ = 1000;
};

class PassthroughStage final : public Stage {
 public:
  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) out.emit(r);
  }
};

// ---- sinks ---------------------------------------------------------------------------------

// Writes one record per line. Buffered; flushed at every commit (checkpoint), so the committed
// position is the file's length and a replacement truncates back to it.
class FdSink : public Stage {
 public:
  ~FdSink() override {
    if (own_fd_ && fd_ >= 0) ::close(fd_);
  }
  void process(const Batch& batch, Emitter&) override {
    for (const Record& r : batch) {
      buf_.append(r.data);
      buf_.push_back('\n');
    }
    if (buf_.size() >= kFlushBytes) flush();
  }
  std::uint64_t checkpoint() override {
    flush();
    return offset_;
  }
  void close() override { flush(); }

 protected:
  static constexpr std::size_t kFlushBytes = 1 << 20;
  void flush() {
    if (buf_.empty()) return;
    if (Status s = write_all(fd_, buf_.data(), buf_.size(), what_); !s.ok()) {
      throw std::runtime_error(s.message());
    }
    offset_ += buf_.size();
    buf_.clear();
  }
  int fd_ = -1;
  bool own_fd_ = false;
  std::uint64_t offset_ = 0;
  std::string what_;
  std::string buf_;
};

class FileSink final : public FdSink {
 public:
  Status open(StageContext& ctx) override {
    what_ = ctx.params->get_string("path");
    fd_ = ::open(what_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::IoError("open " + what_, errno);
    own_fd_ = true;
    // Restart: drop whatever the previous process wrote after its last commit.
    offset_ = ctx.position;
    if (::ftruncate(fd_, static_cast<off_t>(offset_)) != 0) {
      return Status::IoError("truncate " + what_, errno);
    }
    if (::lseek(fd_, static_cast<off_t>(offset_), SEEK_SET) < 0) {
      return Status::IoError("seek " + what_, errno);
    }
    return Status::Ok();
  }
};

class StdoutSink final : public FdSink {
 public:
  Status open(StageContext& ctx) override {
    fd_ = 1;
    offset_ = ctx.position;
    what_ = "stdout";
    return Status::Ok();
  }
};

class DiscardSink final : public Stage {
 public:
  void process(const Batch&, Emitter&) override {}
};

}  // namespace

void register_builtin_stages(StageRegistry& r) {
  (void)r.add(
      StageInfo{.name = "range",
                .role = StageRole::kSource,
                .summary = "the integers start, start+1, ... (count of them), as decimal text",
                .params = {{"start", ParamType::kInt, "0", "first integer"},
                           {"count", ParamType::kInt, "", "how many integers", true}},
                .max_workers = 1,
                .make_source = [] { return std::make_unique<RangeSource>(); },
                .check =
                    [](const Params& p) {
                      if (p.get_int("count") < 0)
                        return Status::InvalidArgument("count must be >= 0");
                      return Status::Ok();
                    },
                .size_hint =
                    [](const Params& p) {
                      return SizeHint{.total = static_cast<std::uint64_t>(p.get_int("count"))};
                    }});
  (void)r.add(StageInfo{
      .name = "lines",
      .role = StageRole::kSource,
      .summary = "one record per line of a file (without the newline); path '-' reads stdin",
      .params = {{"path", ParamType::kString, "", "file to read, or - for standard input", true}},
      .max_workers = 1,
      .make_source = [] { return std::make_unique<LinesSource>(); },
      .check =
          [](const Params& p) {
            const std::string path = p.get_string("path");
            if (path != "-" && ::access(path.c_str(), R_OK) != 0) {
              return Status::InvalidArgument("path '" + path +
                                             "' cannot be read: " + std::strerror(errno));
            }
            return Status::Ok();
          },
      // A regular file's size: the committed byte offset measures progress against it. Pipes,
      // FIFOs and standard input have no size known in advance.
      .size_hint =
          [](const Params& p) {
            const std::string path = p.get_string("path");
            struct stat st {};
            if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
              return SizeHint{};
            }
            return SizeHint{.total = static_cast<std::uint64_t>(st.st_size), .bytes = true};
          }});
  (void)r.add(StageInfo{
      .name = "fnv",
      .role = StageRole::kTransform,
      .summary = "FNV-1a work: decimal integer i -> work(i, rounds) as 16 lowercase hex digits",
      .params = {{"rounds", ParamType::kInt, "1000", "FNV-1a rounds per record"}},
      .make_stage = [] { return std::make_unique<FnvStage>(); },
      .check =
          [](const Params& p) {
            if (p.get_int("rounds") < 0) return Status::InvalidArgument("rounds must be >= 0");
            return Status::Ok();
          }});
  (void)r.add(StageInfo{.name = "passthrough",
                        .role = StageRole::kTransform,
                        .summary = "every record unchanged",
                        .make_stage = [] { return std::make_unique<PassthroughStage>(); }});
  (void)r.add(
      StageInfo{.name = "file",
                .role = StageRole::kSink,
                .summary = "writes one record per line to a file (truncated at the start of a run)",
                .params = {{"path", ParamType::kString, "", "file to write", true}},
                .max_workers = 1,
                .make_stage = [] { return std::make_unique<FileSink>(); }});
  (void)r.add(StageInfo{.name = "stdout",
                        .role = StageRole::kSink,
                        .summary = "writes one record per line to standard output",
                        .max_workers = 1,
                        .make_stage = [] { return std::make_unique<StdoutSink>(); }});
  (void)r.add(StageInfo{.name = "discard",
                        .role = StageRole::kSink,
                        .summary = "drops every record (for benchmarks and tests)",
                        .make_stage = [] { return std::make_unique<DiscardSink>(); }});
  register_exec_stage(r);
  register_stream_stages(r);
  register_shape_stages(r);
}

}  // namespace rivus
