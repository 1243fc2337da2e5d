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
#include <string>
#include <vector>

#include "rivus/runtime/params.h"
#include "rivus/runtime/record.h"
#include "rivus/shm/status.h"

namespace spdlog {
class logger;
}

namespace rivus {

enum class StageRole : std::uint8_t { kSource, kTransform, kSink };
const char* stage_role_name(StageRole r) noexcept;

// What a stage object learns about where it runs.
struct StageContext {
  std::string pipeline;          // pipeline name
  std::string stage;             // this stage's name in the spec
  std::uint32_t worker_index = 0;  // 0 .. workers-1 within the stage
  std::uint32_t workers = 1;
  std::uint32_t generation = 0;  // 0 for the first process of this slot, +1 per replacement
  std::uint64_t position = 0;    // last committed checkpoint()/position() value (0 at start)
  const Params* params = nullptr;
  spdlog::logger* logger = nullptr;
  std::uint64_t max_record = 0;  // largest record payload the output rings accept
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
};

class Source {
 public:
  virtual ~Source() = default;
  // Opens the source positioned at ctx.position (0 at the start of a run).
  virtual Status open(StageContext& ctx) = 0;
  // Emits up to `max_records` records (their seq is assigned by the runtime). Returns false once
  // the source is exhausted and has emitted its last record.
  virtual bool produce(Emitter& out, std::size_t max_records) = 0;
  // The position after every record emitted so far; committed with them.
  virtual std::uint64_t position() const = 0;
  // How many records the whole run will produce, if known (progress and ETA); 0 if not.
  virtual std::uint64_t size_hint() const { return 0; }
  virtual void close() {}
};

struct StageInfo {
  std::string name;       // what `use:` says
  StageRole role = StageRole::kTransform;
  std::string summary;    // one line for `rivus stages`
  std::vector<ParamInfo> params;
  std::uint32_t max_workers = 0;  // 0 = no limit; 1 for stages that own one file, etc.
  std::function<std::unique_ptr<Stage>()> make_stage;    // transforms and sinks
  std::function<std::unique_ptr<Source>()> make_source;  // sources
  // Extra checks of a stage's parameters beyond their types (e.g. a path that must exist);
  // returns a message naming the parameter, or an ok status.
  std::function<Status(const Params&)> check;
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
  static const ::rivus::detail::Registrar rivus_registrar_##id{__VA_ARGS__}
