// The byte format of the stateful stages' state pages (window, batch): fixed-width little-endian
// integers and length-prefixed byte strings, written whole at each commit and read back by a
// replacement worker (docs/streams.md, "Crash safety"). Private to the runtime room.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rivus::detail {

class Writer {
 public:
  void u64(std::uint64_t v) { out_.append(reinterpret_cast<const char*>(&v), 8); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v) {
    std::uint64_t b;
    std::memcpy(&b, &v, 8);
    u64(b);
  }
  void str(std::string_view s) {
    u64(s.size());
    out_.append(s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u64(std::uint64_t* v) {
    if (in_.size() < 8) return false;
    std::memcpy(v, in_.data(), 8);
    in_.remove_prefix(8);
    return true;
  }
  bool i64(std::int64_t* v) {
    std::uint64_t u;
    if (!u64(&u)) return false;
    *v = static_cast<std::int64_t>(u);
    return true;
  }
  bool f64(double* v) {
    std::uint64_t u;
    if (!u64(&u)) return false;
    std::memcpy(v, &u, 8);
    return true;
  }
  bool str(std::string* s) {
    std::uint64_t n;
    if (!u64(&n) || in_.size() < n) return false;
    s->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }

 private:
  std::string_view in_;
};

}  // namespace rivus::detail
