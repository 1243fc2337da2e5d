// The stream stages: `window` (tumbling, sliding, hopping and session windows over counts,
// processing time or event time, with aggregations) and `batch` (n records or linger time).
// Both keep their state in the worker's state page, committed with every batch, so a worker
// killed mid-window is replaced without losing or double-counting a record; window's side output
// of late records (late_path) is committed the way the `file` sink is.

#include <cstring>
#include <optional>

#include "batcher.h"
#include "builtin.h"
#include "rivus/base/clock.h"
#include "rivus/base/files.h"
#include "rivus/runtime/committed_file.h"
#include "window.h"

namespace rivus {
namespace {

void emit_result(const WindowResult& w, const std::string& text, Emitter& out) {
  out.emit(Record{text, w.seq, 0, w.time_ns});
}

// `late_path` with `{worker}` replaced by the worker's index in its pool.
std::string late_file_name(std::string path, std::uint32_t worker) {
  const std::string mark = "{worker}";
  for (auto at = path.find(mark); at != std::string::npos; at = path.find(mark, at)) {
    path.replace(at, mark.size(), std::to_string(worker));
  }
  return path;
}

std::size_t copy_state(const std::string& s, std::span<std::byte> out, const char* what) {
  if (s.size() > out.size()) {
    throw std::length_error(std::string(what) + " state needs " + std::to_string(s.size()) +
                            " bytes but state_size allows " + std::to_string(out.size()) +
                            "; raise state_size");
  }
  std::memcpy(out.data(), s.data(), s.size());
  return s.size();
}

class WindowStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    auto c = window_config_from_params(*ctx.params, ctx.key_by);
    if (!c.ok()) return c.status();
    op_.emplace(c.value());
    const std::string path = ctx.params->get_string("late_path");
    if (!path.empty()) {
      return late_.open(late_file_name(path, ctx.worker_index), ctx.position, "late_path");
    }
    return Status::Ok();
  }
  void process(const Batch& batch, Emitter& out) override {
    const std::int64_t now = base::realtime_ns();
    for (const Record& r : batch) {
      if (!op_->add(r, now, closed_) && late_.is_open()) {
        late_.append(r.data);
        late_.append("\n");
      }
    }
    flush(out);
  }
  // The late file's length is this stage's committed position, as a `file` sink's is.
  std::uint64_t checkpoint() override { return late_.flush(); }
  void on_time(std::int64_t now, Emitter& out) override {
    op_->advance(now, closed_);
    flush(out);
  }
  void finish(Emitter& out) override {
    op_->finish(closed_);
    flush(out);
  }
  std::int64_t next_deadline_ns() const override { return op_->next_deadline(); }
  std::uint64_t held_seq() const override { return op_->held_seq(); }
  std::size_t save_state(std::span<std::byte> out) override {
    return copy_state(op_->save(), out, "window");
  }
  void restore_state(std::span<const std::byte> in) override {
    WindowOperator fresh(op_->config());
    if (!in.empty()) {
      Status s =
          fresh.restore(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()));
      if (!s.ok()) throw std::runtime_error(s.message());
    }
    op_.emplace(std::move(fresh));
    late_.discard();  // the records after the last commit are redone, late ones with them
  }

 private:
  void flush(Emitter& out) {
    for (const WindowResult& w : closed_) emit_result(w, w.render(op_->config()), out);
    closed_.clear();
  }

  std::optional<WindowOperator> op_;
  std::vector<WindowResult> closed_;
  CommittedFile late_;  // late_path's records, exactly once
};

class BatchStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    const auto n = ctx.params->get_int("records", 100);
    // A group must fit in an output ring and, with the state's own fields, in the state page.
    constexpr std::uint64_t kStateOverhead = 64;
    std::uint64_t most = ctx.max_record;
    if (ctx.state_capacity > kStateOverhead) {
      most = std::min(most, ctx.state_capacity - kStateOverhead);
    }
    batcher_.emplace(static_cast<std::uint64_t>(n), ctx.params->get_duration("linger").count(),
                     ctx.params->get_string("join", ","), most);
    return Status::Ok();
  }
  void process(const Batch& batch, Emitter& out) override {
    const std::int64_t now = base::realtime_ns();
    WindowResult w;
    for (const Record& r : batch) {
      if (batcher_->add(r, now, &w)) emit_result(w, w.value, out);
    }
  }
  void on_time(std::int64_t now, Emitter& out) override {
    WindowResult w;
    if (batcher_->advance(now, &w)) emit_result(w, w.value, out);
  }
  void finish(Emitter& out) override {
    WindowResult w;
    if (batcher_->finish(&w)) emit_result(w, w.value, out);
  }
  std::int64_t next_deadline_ns() const override { return batcher_->next_deadline(); }
  std::uint64_t held_seq() const override { return batcher_->held_seq(); }
  std::size_t save_state(std::span<std::byte> out) override {
    return copy_state(batcher_->save(), out, "batch");
  }
  void restore_state(std::span<const std::byte> in) override {
    Status s =
        batcher_->restore(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()));
    if (!in.empty() && !s.ok()) throw std::runtime_error(s.message());
  }

 private:
  std::optional<Batcher> batcher_;
};

std::uint64_t state_size(const Params& p) { return p.get_size("state_size", 4 << 20); }

}  // namespace

void register_stream_stages(StageRegistry& r) {
  (void)r.add(StageInfo{
      .name = "window",
      .role = StageRole::kTransform,
      .summary = "groups records into tumbling, sliding or session windows and aggregates each",
      .params =
          {{"window", ParamType::kString, "tumbling", "tumbling, sliding or session"},
           {"size", ParamType::kString, "", "window size: a record count (100) or a duration (5s)"},
           {"window_size", ParamType::kString, "", "alias of size (Rivusio's name)"},
           {"step", ParamType::kString, "",
            "sliding: distance between window starts (count or duration); larger than size gives "
            "hopping windows"},
           {"gap", ParamType::kDuration, "0", "session: a pause this long closes the session"},
           {"time", ParamType::kString, "",
            "processing or event (time windows); default processing"},
           {"time_field", ParamType::kInt, "-1",
            "event time: read it from this field (else the record's time)"},
           {"time_unit", ParamType::kString, "ms", "unit of time_field: ns, us, ms or s"},
           {"delay", ParamType::kDuration, "0",
            "event time: watermark = largest event time seen - delay"},
           {"allowed_lateness", ParamType::kDuration, "0",
            "event time: keep windows open this long after the watermark passes their end"},
           {"late_path", ParamType::kString, "",
            "write late records to this file, one per line, exactly once (else they are only "
            "counted); {worker} becomes the worker's index, required when workers > 1"},
           {"emit_partial", ParamType::kBool, "true", "emit windows still open at end of stream"},
           {"aggregate", ParamType::kString, "collect",
            "count, sum, min, max, mean, first, last or collect"},
           {"field", ParamType::kInt, "-1",
            "aggregate this field (0-based) instead of the whole record"},
           {"separator", ParamType::kString, ",", "field separator (field, time_field, output)"},
           {"join", ParamType::kString, ",", "collect: text between records"},
           {"format", ParamType::kString, "value", "value ([key,]aggregate) or json"},
           {"state_size", ParamType::kSize, "4MiB", "largest window state a worker may hold"}},
      .make_stage = [] { return std::make_unique<WindowStage>(); },
      .check = [](const Params& p) -> Status {
        auto c = window_config_from_params(p, KeyBySpec{});
        if (!c.ok()) return c.status();
        const std::string late = p.get_string("late_path");
        if (late.empty()) return Status::Ok();
        return base::check_writable_file(late_file_name(late, 0), "late_path");
      },
      .check_pool = [](const Params& p, std::uint32_t workers) -> Status {
        const std::string late = p.get_string("late_path");
        if (workers > 1 && !late.empty() && late.find("{worker}") == std::string::npos) {
          return Status::InvalidArgument(
              "late_path '" + late + "' would be shared by " + std::to_string(workers) +
              " workers; put {worker} in it (one file per worker, e.g. late-{worker}.txt)");
        }
        return Status::Ok();
      },
      .state_bytes = state_size});
  (void)r.add(StageInfo{.name = "batch",
                        .role = StageRole::kTransform,
                        .summary = "joins records into one record per `records` records or per "
                                   "`linger`, whichever comes first",
                        .params = {{"records", ParamType::kInt, "100", "records per group"},
                                   {"linger", ParamType::kDuration, "1s",
                                    "longest a group waits after its first record"},
                                   {"join", ParamType::kString, ",", "text between records"},
                                   {"state_size", ParamType::kSize, "4MiB",
                                    "largest pending group a worker may hold"}},
                        .max_workers = 0,
                        .make_stage = [] { return std::make_unique<BatchStage>(); },
                        .check = [](const Params& p) -> Status {
                          if (p.get_int("records") < 1)
                            return Status::InvalidArgument("records must be >= 1");
                          if (p.get_duration("linger").count() <= 0)
                            return Status::InvalidArgument("linger must be > 0");
                          return Status::Ok();
                        },
                        .state_bytes = state_size});
}

}  // namespace rivus
