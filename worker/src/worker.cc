#include "rivus/worker/worker.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <thread>

#include "rivus/base/clock.h"
#include "rivus/base/log.h"
#include "rivus/base/text.h"
#include "rivus/shm/atomic.h"
#include "rivus/shm/commit.h"
#include "rivus/shm/waiter.h"
#include "rivus/worker/dead_letter.h"

namespace rivus::worker {
namespace {

using shm::counter_add;
using shm::load_acquire;
using shm::load_relaxed;
using shm::RecordHeader;
using shm::ReserveResult;
using shm::SpscRing;
using shm::store_relaxed;
using shm::store_release;
using Clock = std::chrono::steady_clock;

// Thrown by the emitter (never by user code) when a batch's outputs cannot fit in a ring
// without publishing: the batch is redone one record at a time. Deliberately not derived from
// std::exception so a stage's `catch (const std::exception&)` does not swallow it.
struct OutputOverflow {};
// Thrown when the run is aborted while the worker waits inside a stage call.
struct Aborted {};

void histogram_add(shm::Log2Histogram& h, std::uint64_t v) {
  const unsigned b = v == 0 ? 0 : 63 - static_cast<unsigned>(__builtin_clzll(v));
  counter_add(h.buckets[b], 1);
}

class WorkerLoop;

class OutputEmitter final : public Emitter {
 public:
  explicit OutputEmitter(WorkerLoop& loop) : loop_(loop) {}
  void emit(const Record& out) override;

 private:
  WorkerLoop& loop_;
};

struct Gathered {
  std::uint32_t input = 0;  // index into inputs
  std::uint64_t pos = 0;    // ring position of the record
  std::uint64_t end = 0;    // ring position after it
};

class WorkerLoop {
 public:
  WorkerLoop(const shm::Segment& seg, const WorkerPlan& plan)
      : seg_(seg),
        plan_(plan),
        spec_(*plan.stage),
        slot_(seg.worker(plan.slot)),
        stage_entry_(seg.stage(plan.stage_index)),
        emitter_(*this) {}

  int run();

 private:
  friend class OutputEmitter;

  bool is_source() const { return spec_.info->role == StageRole::kSource; }
  bool is_sink() const { return spec_.info->role == StageRole::kSink; }
  shm::RunState run_state() const {
    return static_cast<shm::RunState>(load_acquire(seg_.header().run_state));
  }
  bool aborted() const {
    const auto s = run_state();
    return s == shm::RunState::kAborted || s == shm::RunState::kFailed;
  }

  int fatal(const std::string& why);
  Status open();
  int run_source();
  int run_stage();

  std::size_t gather(std::size_t max_records);
  std::size_t gather_unordered(std::size_t max_records);
  std::size_t gather_ordered(std::size_t max_records);
  void process_gathered();
  void process_one_by_one(std::size_t from);
  void run_stage_call(std::size_t first, std::size_t count);
  void write_dead_letter(const Record& r, DeadLetterReason reason, const std::string& error,
                         std::uint32_t attempts);
  void commit(bool final);
  std::uint64_t input_watermark();
  bool uncommitted() const;
  bool outputs_pending() const;
  bool stateful() const { return ctx_.state_capacity > 0; }
  void restore_committed_state();
  Clock::time_point run_timer();
  void choose_output_for_batch();
  void write_output(const Record& r);
  void wait_for_space(SpscRing::Producer& p, std::uint64_t need);
  void wait_for_input(Clock::time_point deadline);
  void heartbeat() { store_relaxed(slot_.counters.heartbeat_ns, base::monotonic_ns()); }
  void apply_cpu_limit();

  const shm::Segment& seg_;
  const WorkerPlan& plan_;
  const StageSpec& spec_;
  shm::WorkerSlot& slot_;
  shm::StageEntry& stage_entry_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<shm::CommitWriter> committer_;  // made in open(), once the resume point is known
  OutputEmitter emitter_;
  StageContext ctx_;
  std::unique_ptr<Stage> stage_;
  std::unique_ptr<Source> source_;
  std::vector<SpscRing::Consumer> in_;
  std::vector<SpscRing::Producer> out_;
  std::vector<std::uint64_t> processed_;  // per input: position after the last processed record
  std::vector<Record> batch_;
  std::vector<Gathered> where_;
  std::vector<std::uint64_t> marks_;  // per output: write position before a stage call
  std::size_t next_input_ = 0;        // round-robin start for unordered gathering
  std::size_t current_out_ = 0;       // output ring for this batch (round-robin)
  std::uint64_t next_seq_ = 0;        // sources: seq of the next record
  std::uint64_t uncommitted_records_ = 0;
  std::uint64_t uncommitted_bytes_ = 0;
  Clock::time_point first_uncommitted_{};
  bool careful_ = false;
  std::uint64_t careful_budget_ = 0;
  std::int64_t batch_now_ = 0;  // CLOCK_REALTIME for records a source emits
  shm::Waiter waiter_;
  std::uint64_t max_record_ = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen_;  // wait_for_input: tail, watermark
  std::uint64_t sent_to_current_ = 0;      // records routed to current_out_ since it was chosen
  std::uint64_t last_routed_seq_ = ~0ULL;  // seq of the last record routed without a key
  std::uint64_t records_out_ = 0;          // emitted since the last commit
  std::uint64_t bytes_out_ = 0;
};

void OutputEmitter::emit(const Record& out) { loop_.write_output(out); }

int WorkerLoop::fatal(const std::string& why) {
  // The only write to the stage entry from a worker: its last words, read by the supervisor
  // after waitpid() (which orders them).
  base::copy_bounded(why, stage_entry_.failure, sizeof stage_entry_.failure);
  log_->error("{}", why);
  return kExitFatal;
}

Status WorkerLoop::open() {
  for (auto r : plan_.inputs) in_.emplace_back(seg_.ring(r));
  for (auto r : plan_.outputs) out_.emplace_back(seg_.ring(r));
  processed_.resize(in_.size());
  for (std::size_t i = 0; i < in_.size(); ++i) processed_[i] = in_[i].read_position();
  marks_.resize(out_.size());
  max_record_ = std::numeric_limits<std::uint64_t>::max();
  for (auto r : plan_.outputs) max_record_ = std::min(max_record_, seg_.ring(r).max_payload());
  for (auto r : plan_.inputs) max_record_ = std::min(max_record_, seg_.ring(r).max_payload());

  // A replacement resumes where its predecessor committed.
  ctx_.pipeline = plan_.pipeline;
  ctx_.stage = spec_.name;
  ctx_.worker_index = plan_.index_in_stage;
  ctx_.workers = spec_.workers;
  ctx_.generation = load_relaxed(slot_.generation);
  ctx_.position = load_relaxed(slot_.position);
  ctx_.params = &spec_.with;
  ctx_.logger = log_.get();
  ctx_.max_record = max_record_;
  ctx_.key_by = spec_.key_by;
  if (spec_.info->state_bytes) ctx_.state_capacity = seg_.state_bytes_per_worker();
  if (!out_.empty()) {
    const std::uint64_t w = load_relaxed(out_[0].descriptor()->watermark);
    next_seq_ = w == shm::kEndOfStream ? 0 : w;
  }
  committer_.emplace(slot_, next_seq_);
  careful_budget_ = load_relaxed(slot_.careful_budget);
  careful_ = careful_budget_ > 0;

  if (is_source()) {
    source_ = spec_.info->make_source();
    return source_->open(ctx_);
  }
  stage_ = spec_.info->make_stage();
  if (Status s = stage_->open(ctx_); !s.ok()) return s;
  // A replacement picks up the state its predecessor committed with its last batch.
  const std::uint64_t state_bytes = load_relaxed(slot_.state_bytes);
  if (ctx_.state_capacity > 0 && state_bytes > 0 && state_bytes <= ctx_.state_capacity) {
    const std::byte* page = seg_.state_page(plan_.slot, load_relaxed(slot_.state_page) & 1u);
    stage_->restore_state(std::span<const std::byte>(page, state_bytes));
  }
  return Status::Ok();
}

int WorkerLoop::run() {
  log_ = base::logger("worker " + spec_.name + "#" + std::to_string(plan_.index_in_stage));
  try {
    if (Status s = open(); !s.ok()) {
      return fatal("stage '" + spec_.name + "' cannot start: " + s.message());
    }
    store_relaxed(slot_.running_mono_ns, base::monotonic_ns());
    store_release(slot_.state, shm::WorkerState::kRunning);
    const int code = is_source() ? run_source() : run_stage();
    if (source_) source_->close();
    if (stage_) stage_->close();
    return code;
  } catch (const Aborted&) {
    return kExitAborted;
  } catch (const std::bad_alloc&) {
    log_->error("out of memory");
    return kExitOutOfMemory;
  } catch (const std::exception& e) {
    return fatal("stage '" + spec_.name + "': " + e.what());
  }
}

// ---- sources -------------------------------------------------------------------------------

int WorkerLoop::run_source() {
  const std::size_t per_batch = spec_.batch.records;
  for (;;) {
    heartbeat();
    if (aborted()) return kExitAborted;
    if (run_state() == shm::RunState::kDraining) break;  // asked to stop: close the stream
    choose_output_for_batch();
    batch_now_ = base::realtime_ns();
    const auto t0 = Clock::now();
    store_relaxed(slot_.batch_started_ns, base::monotonic_ns());
    apply_cpu_limit();
    const bool more = source_->produce(emitter_, per_batch);
    store_relaxed(slot_.batch_started_ns, 0);
    const auto busy = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
    counter_add(slot_.counters.busy_ns, busy.count());
    counter_add(slot_.counters.batches, 1);
    histogram_add(slot_.batch_ns, static_cast<std::uint64_t>(busy.count()));
    counter_add(slot_.counters.batch_ns_sum, busy.count());
    if (!more) break;
    commit(false);
  }
  commit(true);
  store_release(slot_.state, shm::WorkerState::kExited);
  return kExitOk;
}

// ---- transforms and sinks ------------------------------------------------------------------

bool WorkerLoop::outputs_pending() const {
  for (const auto& p : out_) {
    if (p.unpublished_bytes() > 0) return true;
  }
  return false;
}

// Runs the stage's timer if it is due; returns the steady-clock time of the next one.
Clock::time_point WorkerLoop::run_timer() {
  const std::int64_t due = stage_->next_deadline_ns();
  if (due == 0) return Clock::time_point::max();
  const std::int64_t now = base::realtime_ns();
  if (now >= due) {
    const auto t0 = Clock::now();
    stage_->on_time(now, emitter_);
    counter_add(slot_.counters.busy_ns,
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    if (outputs_pending()) commit(false);
    const std::int64_t next = stage_->next_deadline_ns();
    if (next == 0) return Clock::time_point::max();
    return Clock::now() +
           std::chrono::nanoseconds(std::max<std::int64_t>(0, next - base::realtime_ns()));
  }
  return Clock::now() + std::chrono::nanoseconds(due - now);
}

int WorkerLoop::run_stage() {
  for (;;) {
    heartbeat();
    if (aborted()) return kExitAborted;
    const Clock::time_point timer = run_timer();
    const std::size_t max = careful_ ? 1 : spec_.batch.records;
    const std::size_t n = gather(max);
    if (n > 0) {
      if (!uncommitted()) first_uncommitted_ = Clock::now();
      process_gathered();
      // A stateful stage commits every batch: its state on the page must match its inputs.
      const bool due = careful_ || stateful() || uncommitted_records_ >= spec_.batch.records ||
                       uncommitted_bytes_ >= spec_.batch.bytes ||
                       Clock::now() - first_uncommitted_ >= spec_.batch.linger;
      if (due) commit(false);
      continue;
    }
    const bool all_ended =
        std::all_of(in_.begin(), in_.end(), [](const SpscRing::Consumer& c) { return c.at_end(); });
    if (all_ended) break;
    if (uncommitted() || outputs_pending()) {
      if (!uncommitted() || Clock::now() - first_uncommitted_ >= spec_.batch.linger) {
        commit(false);
        continue;
      }
      wait_for_input(std::min(timer, first_uncommitted_ + spec_.batch.linger));
      continue;
    }
    if (plan_.publish_watermarks && input_watermark() > committer_->watermark()) {
      commit(false);  // nothing to send, but consumers merging by seq need the new watermark
      continue;
    }
    wait_for_input(std::min(timer, Clock::now() + std::chrono::milliseconds(100)));
  }
  store_release(slot_.state, shm::WorkerState::kDraining);
  stage_->finish(emitter_);
  commit(true);
  store_release(slot_.state, shm::WorkerState::kExited);
  return kExitOk;
}

std::size_t WorkerLoop::gather(std::size_t max_records) {
  batch_.clear();
  where_.clear();
  return plan_.merge_in_order ? gather_ordered(max_records) : gather_unordered(max_records);
}

std::size_t WorkerLoop::gather_unordered(std::size_t max_records) {
  std::uint64_t bytes = 0;
  const std::size_t n = in_.size();
  for (std::size_t k = 0; k < n && batch_.size() < max_records; ++k) {
    const std::size_t i = (next_input_ + k) % n;
    SpscRing::Consumer& c = in_[i];
    c.refresh();
    while (batch_.size() < max_records && bytes < spec_.batch.bytes) {
      const RecordHeader* h = c.peek();
      if (h == nullptr) break;
      const std::uint64_t pos = c.read_position();
      c.advance(h);
      batch_.push_back(Record{SpscRing::Consumer::bytes(h), h->seq, h->key, h->time_ns});
      where_.push_back({static_cast<std::uint32_t>(i), pos, c.read_position()});
      bytes += h->length;
    }
    if (c.corrupt())
      throw std::runtime_error("input ring " + std::to_string(plan_.inputs[i]) + " is corrupt");
  }
  next_input_ = (next_input_ + 1) % std::max<std::size_t>(n, 1);
  return batch_.size();
}

// Merges the inputs by seq. Every input ring is in seq order (the planner makes every worker
// upstream of an ordered stage merge too), so a record may be taken once every other input
// either has a record with a seq at least as large or has promised (watermark) that it will
// publish nothing smaller.
std::size_t WorkerLoop::gather_ordered(std::size_t max_records) {
  for (auto& c : in_) c.refresh();
  std::uint64_t bytes = 0;
  while (batch_.size() < max_records && bytes < spec_.batch.bytes) {
    std::size_t best = in_.size();
    std::uint64_t best_seq = 0;
    for (std::size_t i = 0; i < in_.size(); ++i) {
      const RecordHeader* h = in_[i].peek();
      if (h != nullptr && (best == in_.size() || h->seq < best_seq)) {
        best = i;
        best_seq = h->seq;
      }
    }
    if (best == in_.size()) break;
    bool safe = true;
    for (std::size_t i = 0; i < in_.size() && safe; ++i) {
      if (i == best || in_[i].peek() != nullptr || in_[i].at_end()) continue;
      safe = in_[i].watermark() >= best_seq;
    }
    if (!safe) break;
    SpscRing::Consumer& c = in_[best];
    const RecordHeader* h = c.peek();
    const std::uint64_t pos = c.read_position();
    c.advance(h);
    batch_.push_back(Record{SpscRing::Consumer::bytes(h), h->seq, h->key, h->time_ns});
    where_.push_back({static_cast<std::uint32_t>(best), pos, c.read_position()});
    bytes += h->length;
  }
  return batch_.size();
}

void WorkerLoop::process_gathered() {
  const std::size_t n = batch_.size();
  std::uint64_t bytes = 0;
  for (const Record& r : batch_) bytes += r.data.size();
  counter_add(slot_.counters.records_in, n);
  counter_add(slot_.counters.bytes_in, bytes);
  if (is_sink()) {
    counter_add(slot_.counters.records_out, n);
    counter_add(slot_.counters.bytes_out, bytes);
    const std::int64_t now = base::realtime_ns();
    std::uint64_t latency_sum = 0;
    for (const Record& r : batch_) {
      const auto latency = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - r.time_ns));
      histogram_add(slot_.latency_ns, latency);
      latency_sum += latency;
    }
    counter_add(slot_.counters.latency_ns_sum, latency_sum);
  }
  if (!uncommitted()) choose_output_for_batch();
  if (careful_) {
    process_one_by_one(0);
  } else {
    for (std::size_t j = 0; j < out_.size(); ++j) marks_[j] = out_[j].write_position();
    try {
      run_stage_call(0, n);
      for (std::size_t i = 0; i < n; ++i) processed_[where_[i].input] = where_[i].end;
    } catch (const OutputOverflow&) {
      for (std::size_t j = 0; j < out_.size(); ++j) out_[j].truncate_to(marks_[j]);
      process_one_by_one(0);
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception&) {
      // Find the records that fail: undo this batch's outputs (and state) and redo it record
      // by record.
      for (std::size_t j = 0; j < out_.size(); ++j) out_[j].truncate_to(marks_[j]);
      restore_committed_state();
      process_one_by_one(0);
    }
  }
  uncommitted_records_ += n;
  uncommitted_bytes_ += bytes;
  counter_add(slot_.counters.batches, 1);
}

void WorkerLoop::run_stage_call(std::size_t first, std::size_t count) {
  const auto t0 = Clock::now();
  store_relaxed(slot_.inflight_records, uncommitted_records_ + count);
  store_relaxed(slot_.batch_started_ns, base::monotonic_ns());
  apply_cpu_limit();
  struct Done {
    WorkerLoop& w;
    Clock::time_point t0;
    ~Done() {
      store_relaxed(w.slot_.batch_started_ns, 0);
      const auto busy = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
      counter_add(w.slot_.counters.busy_ns, busy.count());
      histogram_add(w.slot_.batch_ns, static_cast<std::uint64_t>(busy.count()));
      counter_add(w.slot_.counters.batch_ns_sum, busy.count());
    }
  } done{*this, t0};
  stage_->process(Batch(std::span<const Record>(batch_.data() + first, count)), emitter_);
}

// The slow path: each record alone, so that only the records that fail are retried and
// dead-lettered. In careful mode (after a crash) every record is committed on its own and
// announced in the slot first, so that a record that kills its worker can be identified.
void WorkerLoop::process_one_by_one(std::size_t from) {
  const RetrySpec& retry = spec_.retry;
  for (std::size_t i = from; i < batch_.size(); ++i) {
    const Record& rec = batch_[i];
    if (careful_) {
      store_relaxed(slot_.current_ring, plan_.inputs[where_[i].input]);
      store_relaxed(slot_.current_pos, where_[i].pos);
      store_release(slot_.careful, 1u);
    }
    for (std::uint32_t attempt = 0;; ++attempt) {
      for (std::size_t j = 0; j < out_.size(); ++j) marks_[j] = out_[j].write_position();
      try {
        run_stage_call(i, 1);
        break;
      } catch (const OutputOverflow&) {
        for (std::size_t j = 0; j < out_.size(); ++j) out_[j].truncate_to(marks_[j]);
        bool pending = false;
        for (auto& p : out_) pending |= p.unpublished_bytes() > 0;
        if (pending) {
          commit(false);  // publish what earlier records produced, then try this one again
          --attempt;
          continue;
        }
        counter_add(slot_.counters.errors, 1);
        write_dead_letter(rec, DeadLetterReason::kTooLarge,
                          "the record's outputs exceed what an output ring holds", attempt + 1);
        break;
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        for (std::size_t j = 0; j < out_.size(); ++j) out_[j].truncate_to(marks_[j]);
        restore_committed_state();
        counter_add(slot_.counters.errors, 1);
        if (attempt < retry.max_retries) {
          counter_add(slot_.counters.retries, 1);
          const double factor = std::pow(retry.backoff, static_cast<double>(attempt));
          const auto delay = std::chrono::nanoseconds(
              static_cast<std::int64_t>(static_cast<double>(retry.delay.count()) * factor));
          std::this_thread::sleep_for(
              std::min<std::chrono::nanoseconds>(delay, std::chrono::seconds(60)));
          if (aborted()) throw Aborted{};
          continue;
        }
        write_dead_letter(rec, DeadLetterReason::kError, e.what(), attempt + 1);
        break;
      }
    }
    processed_[where_[i].input] = where_[i].end;
    if (stateful() && !careful_) commit(false);  // keeps the committed state one record behind
    if (careful_) {
      commit(false);
      careful_budget_ = careful_budget_ > 0 ? careful_budget_ - 1 : 0;
      store_relaxed(slot_.careful_budget, careful_budget_);
      store_relaxed(slot_.careful, 0u);
      if (careful_budget_ == 0) {
        careful_ = false;
        store_relaxed(slot_.suspect_attempts, 0u);
      }
    }
  }
}

void WorkerLoop::write_dead_letter(const Record& r, DeadLetterReason reason,
                                   const std::string& error, std::uint32_t attempts) {
  DeadLetter d;
  d.pipeline = plan_.pipeline;
  d.stage = spec_.name;
  d.worker = plan_.index_in_stage;
  d.seq = r.seq;
  d.record = r.data;
  d.reason = reason;
  d.error = error;
  d.attempts = attempts;
  if (Status s = append_dead_letter(plan_.dead_letter_path, d); !s.ok()) {
    // Not committed past: the worker fails before its next commit, so the record stays in its
    // input ring instead of being lost, and the run fails (exit code 3) saying why.
    throw std::runtime_error("the record seq " + std::to_string(r.seq) +
                             " could not be dead-lettered: " + s.message());
  }
  counter_add(slot_.counters.dead_letters, 1);
  log_->warn("record seq {} dead-lettered after {} attempt(s): {}", r.seq, attempts, error);
}

bool WorkerLoop::uncommitted() const { return uncommitted_records_ > 0; }

// Puts a stateful stage back to its last committed state (after a failed stage call).
void WorkerLoop::restore_committed_state() {
  if (!stateful()) return;
  const std::uint64_t n = load_relaxed(slot_.state_bytes);
  const std::byte* page = seg_.state_page(plan_.slot, load_relaxed(slot_.state_page) & 1u);
  stage_->restore_state(std::span<const std::byte>(page, n <= ctx_.state_capacity ? n : 0));
}

std::uint64_t WorkerLoop::input_watermark() {
  std::uint64_t w = shm::kEndOfStream;
  for (std::size_t i = 0; i < in_.size(); ++i) {
    SpscRing::Consumer& c = in_[i];
    std::uint64_t wi = c.at_end() ? shm::kEndOfStream : c.watermark();
    // Records gathered but not processed yet (slow path) hold the watermark back.
    for (std::size_t k = 0; k < where_.size(); ++k) {
      if (where_[k].input == i && where_[k].end > processed_[i]) {
        wi = std::min(wi, batch_[k].seq);
        break;
      }
    }
    if (const RecordHeader* h = c.peek()) wi = std::min(wi, h->seq);
    w = std::min(w, wi);
  }
  if (stage_) w = std::min(w, stage_->held_seq());
  return w;
}

// One commit (shm/commit.h): every record of the batch, the stage's position and its state
// become final together, in a way the supervisor can finish if this process dies half-way.
void WorkerLoop::commit(bool final) {
  shm::StageCommit stage = committer_->committed();
  if (source_) {
    stage.position = source_->position();
  } else if (stage_) {
    stage.position = stage_->checkpoint();
  }
  if (ctx_.state_capacity > 0 && stage_) {
    // Double buffering: write the page the committed state is not in.
    stage.state_page = (stage.state_page & 1u) ^ 1u;
    stage.state_bytes = stage_->save_state(
        std::span<std::byte>(seg_.state_page(plan_.slot, stage.state_page), ctx_.state_capacity));
  }
  const std::uint64_t w = final ? shm::kEndOfStream : (is_source() ? next_seq_ : input_watermark());
  counter_add(slot_.counters.records_out, records_out_);
  counter_add(slot_.counters.bytes_out, bytes_out_);
  records_out_ = 0;
  bytes_out_ = 0;
  committer_->prepare(in_, processed_, out_, w, stage);
  const bool released = committer_->apply(in_, processed_, out_, [&](std::size_t j) {
    shm::notify(seg_.worker(out_[j].descriptor()->consumer_worker).input_bell);
  });
  if (released) {
    for (auto& c : in_) shm::notify(seg_.worker(c.descriptor()->producer_worker).space_bell);
  }
  uncommitted_records_ = 0;
  uncommitted_bytes_ = 0;
  if (!uncommitted()) current_out_ = out_.empty() ? 0 : (current_out_ + 1) % out_.size();
  sent_to_current_ = 0;
}

// Round-robin by batch, skipping to the emptiest ring so a slow worker in a pool gets less.
void WorkerLoop::choose_output_for_batch() {
  if (out_.size() <= 1 || plan_.route.kind != KeyByKind::kNone) return;
  std::size_t best = current_out_;
  std::uint64_t best_free = out_[best].free_bytes();
  for (std::size_t k = 1; k < out_.size(); ++k) {
    const std::size_t j = (current_out_ + k) % out_.size();
    const std::uint64_t f = out_[j].free_bytes();
    if (f > best_free) {
      best = j;
      best_free = f;
    }
  }
  current_out_ = best;
}

void WorkerLoop::write_output(const Record& rec) {
  if (out_.empty()) return;  // a sink's emitter goes nowhere
  Record r = rec;
  if (is_source()) {
    r.seq = next_seq_;  // counted once the record is in the ring (a commit may come first)
    if (r.time_ns == 0) r.time_ns = batch_now_;
  }
  if (plan_.route.kind == KeyByKind::kNone && sent_to_current_ >= plan_.route_batch &&
      r.seq != last_routed_seq_) {
    // The downstream stage's batch is full: the next one goes to the emptiest ring. Never
    // between two outputs of one input record (they share its seq): an ordered merge downstream
    // keeps records of equal seq in ring order, so they must stay on one ring.
    current_out_ = (current_out_ + 1) % out_.size();
    choose_output_for_batch();
    sent_to_current_ = 0;
  }
  std::size_t j = current_out_;
  switch (plan_.route.kind) {
    case KeyByKind::kNone:
      ++sent_to_current_;
      last_routed_seq_ = r.seq;
      break;
    case KeyByKind::kRecord:
      r.key = hash_bytes(r.data);
      j = r.key % out_.size();
      break;
    case KeyByKind::kField:
      r.key = hash_bytes(plan_.route.extract(r.data));
      j = r.key % out_.size();
      break;
    case KeyByKind::kKey:
      j = r.key % out_.size();
      break;
  }
  SpscRing::Producer& p = out_[j];
  const auto len = static_cast<std::uint32_t>(r.data.size());
  if (r.data.size() > max_record_) {
    throw RecordError("output record of " + std::to_string(r.data.size()) +
                      " bytes is larger than a ring accepts (" + std::to_string(max_record_) + ")");
  }
  for (;;) {
    RecordHeader* h = nullptr;
    const ReserveResult res = p.try_reserve(len, r.seq, r.key, r.time_ns, &h);
    if (res == ReserveResult::kOk) {
      if (len) std::memcpy(SpscRing::Producer::payload(h), r.data.data(), len);
      p.commit(h, len);
      if (is_source()) ++next_seq_;
      ++records_out_;  // published to the slot's counters at the next commit (one store per batch)
      bytes_out_ += len;
      return;
    }
    const std::uint64_t need = 2 * shm::framed_size(len);
    if (p.unpublished_bytes() + need > p.descriptor()->capacity) {
      // A source may commit between any two records (its position counts only the records
      // emitted before this one), so it publishes what it has and goes on.
      if (is_source()) {
        commit(false);
        continue;
      }
      throw OutputOverflow{};
    }
    wait_for_space(p, need);
  }
}

void WorkerLoop::wait_for_space(SpscRing::Producer& p, std::uint64_t need) {
  const auto t0 = Clock::now();
  // Time blocked on a full ring is not the stage's: hide it from the hang detector.
  const std::int64_t started = load_relaxed(slot_.batch_started_ns);
  store_relaxed(slot_.batch_started_ns, 0);
  shm::WorkerSlot& consumer = seg_.worker(p.descriptor()->consumer_worker);
  for (;;) {
    shm::notify(consumer.input_bell);
    if (waiter_.wait(
            slot_.space_bell, [&] { return p.free_bytes() >= need; },
            Clock::now() + std::chrono::milliseconds(100))) {
      break;
    }
    heartbeat();
    if (aborted()) throw Aborted{};
  }
  const auto blocked = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
  counter_add(slot_.counters.blocked_ns, blocked.count());
  if (started != 0) store_relaxed(slot_.batch_started_ns, started + blocked.count());
}

// Sleeps until some input ring's tail or watermark moves past what the last gather() saw (or
// the deadline). The snapshot is the consumers' cached values, which gather() refreshed when it
// came back empty, so a record published since then ends the wait at once. Records gather() saw
// but could not take (an ordered merge waiting for another ring) do not end it: waking on them
// would spin.
void WorkerLoop::wait_for_input(Clock::time_point deadline) {
  const auto t0 = Clock::now();
  seen_.resize(in_.size());
  for (std::size_t i = 0; i < in_.size(); ++i)
    seen_[i] = {in_[i].cached_tail(), in_[i].watermark()};
  waiter_.wait(
      slot_.input_bell,
      [&] {
        for (std::size_t i = 0; i < in_.size(); ++i) {
          in_[i].refresh();
          if (in_[i].cached_tail() != seen_[i].first || in_[i].watermark() != seen_[i].second) {
            return true;
          }
        }
        return false;
      },
      deadline);
  counter_add(slot_.counters.idle_ns,
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
}

void WorkerLoop::apply_cpu_limit() {
  if (spec_.limits.cpu.count() <= 0) return;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const auto used = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1;
  const auto limit = std::chrono::duration_cast<std::chrono::seconds>(spec_.limits.cpu).count();
  rlimit rl{static_cast<rlim_t>(used + std::max<long>(1, limit)), RLIM_INFINITY};
  setrlimit(RLIMIT_CPU, &rl);
}

}  // namespace

int run_worker(const shm::Segment& seg, const WorkerPlan& plan) {
  WorkerLoop loop(seg, plan);
  return loop.run();
}

}  // namespace rivus::worker
