// Pipelines built in code: `source >> stage >> sink`, run by the supervisor, report returned.
//
//     auto report = (rivus::range(0, n)
//                    >> rivus::stage([](std::int64_t i) { return i * i; }).workers(4)
//                    >> rivus::to_file("squares.txt"))
//                       .name("squares")
//                       .run();
//     if (!report.ok()) std::cerr << report.failure() << "\n";
//
// A Step is one stage with its settings (the entries a YAML spec gives a stage); a Pipeline is a
// list of Steps with the pipeline-wide settings. `>>` joins Steps and Pipelines in any mix and
// flattens them, so partial pipelines compose (`auto prep = parse >> clean; src >> prep >> sink`).
//
// run() turns the pipeline into exactly the spec a YAML file would give (to_yaml() shows it),
// validates it with the same loader, and hands it to run_pipeline(): the same supervision,
// crash isolation, exactly-once commits, metrics and report as `rivus run`. Stages made from
// code (rivus::stage(fn), rivus::stage<MyStage>(), ...) are registered in the global
// StageRegistry under generated names ("fn.1", ...) the first time a pipeline holding them is
// validated or run, so the worker processes, forked from this one, find them.
//
// Threads: build and run pipelines from the main thread of a process that has started no other
// threads (run() forks workers; see supervisor.h). One run at a time per process. Steps and
// Pipelines are plain values: copy them freely; copies share their code stage's registration.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rivus/inspect/report.h"
#include "rivus/runtime/function_stage.h"
#include "rivus/runtime/params.h"
#include "rivus/runtime/spec.h"
#include "rivus/runtime/stage.h"
#include "rivus/supervisor/supervisor.h"

namespace rivus {

class Pipeline;

namespace detail {
// A stage defined in code, registered once under a generated name (pipeline.cc).
struct CodeStage {
  StageInfo info;          // name empty until registered
  std::string kind;        // "fn", "filter", "stage", "source", "sink": prefix of generated names
  std::string registered;  // the name it got in StageRegistry::global()
};
}  // namespace detail

// One stage of a pipeline and its settings. Setters return *this for chaining.
class Step {
 public:
  // A stage registered by name (built-in, RIVUS_REGISTER_STAGE, a plugin): YAML's `use:`.
  explicit Step(std::string use);
  // A stage defined in code, registered when the pipeline is first validated or run.
  explicit Step(StageInfo info, std::string kind = "stage");

  Step& name(std::string name);      // default: the stage's `use`, or "<kind><position>"
  Step& workers(std::uint32_t n);    // process pool size (default 1)
  Step& ordered(bool on = true);     // restore source order at this stage's input
  Step& key_by(const KeyBySpec& k);  // route records by key to this stage's workers
  Step& key_by_record() { return key_by({KeyByKind::kRecord}); }
  Step& key_by_key() { return key_by({KeyByKind::kKey}); }
  Step& key_by_field(std::uint32_t field, char separator = ',') {
    return key_by({KeyByKind::kField, field, separator});
  }
  Step& batch(std::uint32_t records);  // records per batch; bytes and linger as the pipeline's
  Step& batch(const BatchSpec& b);     // all three
  Step& retry(const RetrySpec& r);
  Step& restart(const RestartSpec& r);
  Step& timeout(std::chrono::nanoseconds t);  // per batch; a worker past it is killed
  Step& memory_limit(std::uint64_t bytes);    // address space per worker (RLIMIT_AS)
  Step& cpu_limit(std::chrono::seconds s);    // CPU time per batch (RLIMIT_CPU)
  // A parameter (YAML's `with:`), checked against the stage's declared parameters at run():
  // a number, a bool, a string, a list of strings, or a duration.
  Step& with(const std::string& param, ParamValue value);
  Step& with(const std::string& param, const char* value) {
    return with(param, ParamValue(std::string(value)));
  }
  // One overload per kind of number: a double must not become a bool (a standard conversion
  // beats the user-defined one to ParamValue), nor a bool an integer.
  template <class T>
  requires std::is_same_v<T, bool> Step& with(const std::string& param, T value) {
    return with(param, ParamValue(value));
  }
  template <class T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) Step& with(const std::string& param,
                                                                         T value) {
    return with(param, ParamValue(static_cast<std::int64_t>(value)));
  }
  template <class T>
  requires std::is_floating_point_v<T> Step& with(const std::string& param, T value) {
    return with(param, ParamValue(static_cast<double>(value)));
  }
  template <class Rep, class Period>
  Step& with(const std::string& param, std::chrono::duration<Rep, Period> d) {
    return with(
        param,
        ParamValue(format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(d))));
  }

 private:
  friend class Pipeline;
  std::string use_;                          // registered stages
  std::shared_ptr<detail::CodeStage> code_;  // stages defined in code
  std::optional<std::string> name_;
  std::optional<std::uint32_t> workers_;
  std::optional<bool> ordered_;
  std::optional<KeyBySpec> key_by_;
  std::optional<BatchSpec> batch_;              // batch(BatchSpec)
  std::optional<std::uint32_t> batch_records_;  // batch(records) alone
  std::optional<RetrySpec> retry_;
  std::optional<RestartSpec> restart_;
  std::optional<std::chrono::nanoseconds> timeout_;
  std::optional<std::uint64_t> memory_limit_;
  std::optional<std::chrono::seconds> cpu_limit_;
  std::vector<std::pair<std::string, ParamValue>> with_;  // in the order given; the last wins
};

class Pipeline {
 public:
  Pipeline() = default;
  Pipeline(Step step);  // NOLINT(google-explicit-constructor): lets `step >> step` compose

  Pipeline& name(std::string name);              // default "pipeline"
  Pipeline& ring_capacity(std::uint64_t bytes);  // per ring, a power of two (default 1MiB)
  Pipeline& dead_letter(std::string path);       // default <name>.dead-letter.jsonl
  Pipeline& batch(const BatchSpec& b);           // defaults for every stage
  Pipeline& retry(const RetrySpec& r);
  Pipeline& restart(const RestartSpec& r);
  Pipeline& timeout(std::chrono::nanoseconds t);
  Pipeline& spares(std::uint32_t n);                // pre-forked replacement workers (default 1)
  Pipeline& metrics_listen(std::string host_port);  // serve /metrics while running
  Pipeline& metrics_linger(std::chrono::nanoseconds d);  // keep serving after the run (30s)
  // Fail the run (exit 6) past `max` dead letters in a stage (DeadLetterBudget::kNoLimit: no
  // limit; 0: not one) or past `max_ratio` of its records (default 0.5; 1: no limit).
  Pipeline& dead_letter_budget(std::uint64_t max, double max_ratio);
  Pipeline& drain_timeout(std::chrono::nanoseconds d);  // after a signal (default 30s)

  // Appends (flattening); pipeline-wide settings already set here win over `rest`'s.
  Pipeline& append(const Pipeline& rest);
  std::size_t size() const noexcept { return steps_.size(); }

  // The spec as YAML (JSON, which is YAML): what run() validates and runs. Registers code stages.
  std::string to_yaml() const;
  // Registers code stages, then loads the spec with the same checks as a YAML file.
  Result<PipelineSpec> to_spec() const;
  Status validate() const { return to_spec().status(); }
  // Validates and runs. An invalid pipeline gives exit code 2 (kExitUsage) and its message in
  // failure(), also printed on stderr unless options.quiet.
  Report run(const RunOptions& options = {}) const;

 private:
  std::string document() const;  // the spec document as JSON text

  std::vector<Step> steps_;
  std::optional<std::string> name_;
  std::optional<std::uint64_t> ring_capacity_;
  std::optional<std::string> dead_letter_;
  std::optional<BatchSpec> batch_;
  std::optional<RetrySpec> retry_;
  std::optional<RestartSpec> restart_;
  std::optional<std::chrono::nanoseconds> timeout_;
  std::optional<std::uint32_t> spares_;
  std::optional<std::string> metrics_listen_;
  std::optional<std::chrono::nanoseconds> metrics_linger_;
  std::optional<std::pair<std::uint64_t, double>> dead_letter_budget_;
  std::optional<std::chrono::nanoseconds> drain_timeout_;
};

// Composition: Steps and Pipelines in any mix, flattened left to right.
Pipeline operator>>(Pipeline lhs, const Pipeline& rhs);

// ---- stages defined in code -------------------------------------------------------------------

// A lambda or function as a transform; shapes and codecs: rivus/runtime/function_stage.h.
template <class F, class... Codecs>
requires(!std::same_as<std::remove_cvref_t<F>, StageInfo>) Step stage(F fn, Codecs... codecs) {
  return Step(function_stage_info("", "function stage defined in code", std::move(fn),
                                  std::move(codecs)...),
              "fn");
}

// Passes on, unchanged, the records for which `pred` (same input shapes as stage()) is true.
template <class P, class... Codecs>
Step filter(P pred, Codecs... codecs) {
  return Step(
      filter_stage_info("", "filter defined in code", std::move(pred), std::move(codecs)...),
      "filter");
}

// A Stage class as a transform (S is default-constructed in each worker).
template <class S>
requires std::derived_from<S, Stage> Step stage() {
  StageInfo info;
  info.summary = "stage class defined in code";
  info.make_stage = [] { return std::unique_ptr<Stage>(std::make_unique<S>()); };
  return Step(std::move(info), "stage");
}

// A Stage class as a sink (1 worker unless you set more and the class allows it).
template <class S>
requires std::derived_from<S, Stage> Step sink() {
  StageInfo info;
  info.role = StageRole::kSink;
  info.summary = "sink class defined in code";
  info.make_stage = [] { return std::unique_ptr<Stage>(std::make_unique<S>()); };
  return Step(std::move(info), "sink");
}

// A Source class as the pipeline's source.
template <class S>
requires std::derived_from<S, Source> Step source() {
  StageInfo info;
  info.role = StageRole::kSource;
  info.summary = "source class defined in code";
  info.max_workers = 1;
  info.make_source = [] { return std::unique_ptr<Source>(std::make_unique<S>()); };
  return Step(std::move(info), "source");
}

// Any StageInfo (a name is generated when info.name is empty).
Step stage(StageInfo info);

// ---- registered stages ------------------------------------------------------------------------

// A stage registered by name, as `use:` in YAML; parameters with Step::with().
Step use(std::string name);
// The integers begin, begin+1, ..., end-1 as decimal text (the built-in `range`).
Step range(std::int64_t begin, std::int64_t end);
// One record per line of a file; "-" reads standard input (the built-in `lines`).
Step lines(std::string path);
// One record per line into a file, truncated at the start (the built-in `file`).
Step to_file(std::string path);
Step to_stdout();
Step discard();
// A transform run by a separately built executable that links rivus::worker (external.h).
Step external(std::string program, std::vector<std::string> args = {});

}  // namespace rivus
