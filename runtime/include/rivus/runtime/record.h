// Records, batches and emitters: what a stage sees.
//
// A Record is a view: its bytes live in a shared-memory ring (or, for a replayed record, in a
// worker's buffer) and stay valid only during the process() call that received it. A Batch is
// the records a worker read in one turn, in the order it will commit them. An Emitter writes a
// stage's outputs straight into the output rings (no intermediate copy); outputs become visible
// downstream only when the worker commits the batch, atomically with the input they came from.
//
// Used by one worker process, one thread; nothing here is shared between processes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace rivus {

struct Record {
  std::string_view data;
  std::uint64_t seq = 0;     // position in the source's output; outputs inherit their input's
  std::uint64_t key = 0;     // key hash for routing; 0 when unset
  std::int64_t time_ns = 0;  // event time (CLOCK_REALTIME ns set by the source unless changed)
};

class Batch {
 public:
  Batch() = default;
  explicit Batch(std::span<const Record> records) : records_(records) {}
  std::size_t size() const noexcept { return records_.size(); }
  bool empty() const noexcept { return records_.empty(); }
  const Record& operator[](std::size_t i) const noexcept { return records_[i]; }
  auto begin() const noexcept { return records_.begin(); }
  auto end() const noexcept { return records_.end(); }
  std::span<const Record> records() const noexcept { return records_; }

 private:
  std::span<const Record> records_;
};

class Emitter {
 public:
  virtual ~Emitter() = default;
  // Emits `data` as an output of input record `from` (inherits its seq, key and time).
  void emit(const Record& from, std::string_view data) {
    emit(Record{data, from.seq, from.key, from.time_ns});
  }
  // Emits a record with every field chosen by the stage (seq must not go below the input's).
  virtual void emit(const Record& out) = 0;
  // Sets the routing key of the next records emitted from `from` (stage-defined keys).
  void emit_keyed(const Record& from, std::string_view data, std::uint64_t key_hash) {
    emit(Record{data, from.seq, key_hash, from.time_ns});
  }
};

// Thrown by a stage for one record it cannot handle (bad input): the record is counted as an
// error, retried as the stage's retry policy says, then sent to the dead-letter file. Other
// exceptions derived from std::exception are treated the same way.
class RecordError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Field `index` (0-based) of a record whose fields are separated by `separator`; nullopt when the
// record has fewer fields. The one field extractor: key_by routing and the window stage's
// field/time_field use it.
constexpr std::optional<std::string_view> record_field(std::string_view record, std::uint32_t index,
                                                       char separator) {
  std::size_t start = 0;
  for (std::uint32_t f = 0; f < index; ++f) {
    const std::size_t at = record.find(separator, start);
    if (at == std::string_view::npos) return std::nullopt;
    start = at + 1;
  }
  const std::size_t end = record.find(separator, start);
  return record.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

// FNV-1a 64 over bytes: the key hash Rivus uses for key_by routing.
constexpr std::uint64_t hash_bytes(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace rivus
