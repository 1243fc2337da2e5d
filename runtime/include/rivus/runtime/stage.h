// The stage API: what user code implements, and the registry that names stages for specs.
//
// A pipeline's first stage is a Source, its last a sink, and everything between a transform.
// Transforms and sinks implement Stage; sources implement Source. Each worker process creates
// its own stage object (through the registry's factory), calls open() once, then process() for
// every batch, finish() at end of stream and close() before exiting. A worker that crashes is
// replaced by a new process that creates a new object and calls open() again with the last
// committed position, so a stage must not rely on state it did not commit (see checkpoint()).
//
// Stage objects are used by one thread of one process. The registry is filled at static
// initialisation or early in main(), before any pipeline runs, and is read-only afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rivus/base/status.h"
#include "rivus/runtime/params.h"
#include "rivus/runtime/record.h"

namespace spdlog {
class logger;
}

namespace rivus {

enum class StageRole : std::uint8_t { kSource, kTransform, kSink };

enum class KeyByKind : std::uint8_t {
  kNone,    // round-robin by batch
  kRecord,  // hash of the whole record
  kKey,     // the key hash the upstream stage set on each record
  kField,   // hash of one field of a delimited record
};

// How records are keyed (a stage's `key_by`): routing picks a worker by the key's hash, and
// keyed stages (windows) group by the key's bytes.
struct KeyBySpec {
  KeyByKind kind = KeyByKind::kNone;
  std::uint32_t field = 0;  // 0-based, for kField
  char separator = ',';     // for kField

  // The key's bytes: the whole record, one field (empty if missing), or empty for kNone/kKey.
  std::string_view extract(std::string_view record) const {
    if (kind == KeyByKind::kRecord) return record;
    if (kind != KeyByKind::kField) return {};
    return record_field(record, field, separator).value_or(std::string_view());
  }
};
const char* stage_role_name(StageRole r) noexcept;

// What a stage object learns about where it runs.
struct StageContext {
  std::string pipeline;            // pipeline name
  std::string stage;               // this stage's name in the spec
  std::uint32_t worker_index = 0;  // 0 .. workers-1 within the stage
  std::uint32_t workers = 1;
  std::uint32_t generation = 0;  // 0 for the first process of this slot, +1 per replacement
  std::uint64_t position = 0;    // last committed checkpoint()/position() value (0 at start)
  const Params* params = nullptr;
  spdlog::logger* logger = nullptr;
  std::uint64_t max_record = 0;      // largest record payload the output rings accept
  KeyBySpec key_by;                  // this stage's key_by (keyed stages group by it)
  std::uint64_t state_capacity = 0;  // bytes save_state() may write (0: stage is stateless)
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual Status open(StageContext& ctx) {
    (void)ctx;
    return Status::Ok();
  }
  // Handles a batch of input records. Throwing (RecordError or any std::exception) marks the
  // batch for redoing one record at a time, so that only the records that throw are failed.
  virtual void process(const Batch& batch, Emitter& out) = 0;
  // Called before each commit; the value is committed with the batch and handed to open() of a
  // replacement process as ctx.position. Sinks flush here and return their durable offset.
  virtual std::uint64_t checkpoint() { return 0; }
  // End of stream: emit anything still held (open windows, partial batches).
  virtual void finish(Emitter& out) { (void)out; }
  virtual void close() {}

  // ---- Stages that hold records across batches (windows, batching) -----------------------
  // The smallest seq this stage may still emit for records it holds; ~0 when it holds none.
  // Keeps ordered merges downstream correct.
  virtual std::uint64_t held_seq() const { return ~0ULL; }
  // CLOCK_REALTIME ns at which on_time() should run even if no record arrives; 0 = no timer.
  virtual std::int64_t next_deadline_ns() const { return 0; }
  virtual void on_time(std::int64_t now_ns, Emitter& out) {
    (void)now_ns;
    (void)out;
  }
  // State that must survive a crash, written at every commit into the worker's state page in
  // the segment (double-buffered, committed atomically with the batch). Returns the bytes
  // written; throws std::length_error if `out` is too small. A replacement process gets the
  // last committed bytes through restore_state() right after open().
  virtual std::size_t save_state(std::span<std::byte> out) {
    (void)out;
    return 0;
  }
  virtual void restore_state(std::span<const std::byte> in) { (void)in; }
};

class Source {
 public:
  virtual ~Source() = default;
  // Opens the source positioned at ctx.position (0 at the start of a run).
  virtual Status open(StageContext& ctx) = 0;
  // Emits up to `max_records` records (their seq is assigned by the runtime). Returns false once
  // the source is exhausted and has emitted its last record.
  virtual bool produce(Emitter& out, std::size_t max_records) = 0;
  // The position after every record emitted so far; committed with them. The runtime may call
  // it from inside out.emit() (to commit when a ring is full): it must then count only the
  // records emitted before that call.
  virtual std::uint64_t position() const = 0;
  virtual void close() {}
};

// How much a source will produce, for progress and ETA (StageInfo::size_hint): `total` records,
// or, with `bytes`, `total` bytes of input, against which the source's committed position (a
// byte offset) measures progress. total 0: unknown.
struct SizeHint {
  std::uint64_t total = 0;
  bool bytes = false;
};

struct StageInfo {
  std::string name;  // what `use:` says
  StageRole role = StageRole::kTransform;
  std::string summary;  // one line for `rivus stages`
  std::vector<ParamInfo> params;
  std::uint32_t max_workers = 0;  // 0 = no limit; 1 for stages that own one file, etc.
  std::function<std::unique_ptr<Stage>()> make_stage;    // transforms and sinks
  std::function<std::unique_ptr<Source>()> make_source;  // sources
  // Extra checks of a stage's parameters beyond their types (e.g. a path that must exist);
  // returns a message naming the parameter, or an ok status.
  std::function<Status(const Params&)> check;
  // Checks that depend on the pool's size (e.g. a file each worker owns); after `check`.
  std::function<Status(const Params&, std::uint32_t workers)> check_pool;
  // Stateful stages: bytes of state each worker may keep (reserved twice in the segment).
  std::function<std::uint64_t(const Params&)> state_bytes;
  // Sources: how much the run will produce, known before it starts (the supervisor asks once).
  std::function<SizeHint(const Params&)> size_hint;
  // The stage's batch.records unless the stage's own `batch` sets it (the pipeline-wide batch
  // does not apply); 0 = the pipeline's. For stages whose records take milliseconds each, where
  // big batches would starve all but one worker of a pool.
  std::uint32_t default_batch_records = 0;
};

class StageRegistry {
 public:
  // The process-wide registry holding the built-in stages and everything registered since.
  static StageRegistry& global();

  Status add(StageInfo info);
  const StageInfo* find(const std::string& name) const;
  std::vector<const StageInfo*> list() const;  // sorted by role, then name
  // Registrations that failed at static-initialisation time (RIVUS_REGISTER_STAGE), in order;
  // the CLI reports them. Each names the stage and why.
  const std::vector<std::string>& registration_errors() const { return errors_; }
  void note_registration_error(std::string e) { errors_.push_back(std::move(e)); }

 private:
  std::vector<std::unique_ptr<StageInfo>> stages_;
  std::vector<std::string> errors_;
};

// Registers the built-in stages into `r` (idempotent for the global registry).
void register_builtin_stages(StageRegistry& r);

namespace detail {
struct Registrar {
  explicit Registrar(StageInfo info);
};
}  // namespace detail

}  // namespace rivus

// Registers a stage at static-initialisation time:
//   RIVUS_REGISTER_STAGE(my_stage, rivus::StageInfo{.name = "upper", ...});
#define RIVUS_REGISTER_STAGE(id, ...) \
  static const ::rivus::detail::Registrar rivus_registrar_##id { __VA_ARGS__ }
