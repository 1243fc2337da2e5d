// `rivus run`, `validate`, `stages` and `clean`: the subcommands that load specs and stages.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "rivus/base/text.h"
#include "rivus/embed/plugin.h"
#include "rivus/inspect/segments.h"
#include "rivus/runtime/spec.h"
#include "rivus/shm/segment.h"
#include "rivus/supervisor/supervisor.h"

namespace rivus::cli {
namespace {

int fail(const Status& s, int code) {
  print_error(s.message());
  return code;
}

// Loads --plugin libraries and reports any stage registration that failed; 0 if all is well.
int prepare_registry(const std::vector<std::string>& plugins) {
  if (Status s = load_plugins(plugins); !s.ok()) return fail(s, kExitUsage);
  const auto& errors = StageRegistry::global().registration_errors();
  if (!errors.empty()) return fail(Status::InvalidArgument(errors.front()), kExitUsage);
  return kExitOk;
}

void print_stages() {
  for (const StageInfo* s : StageRegistry::global().list()) {
    std::printf("%s (%s)%s\n  %s\n", s->name.c_str(), stage_role_name(s->role),
                s->max_workers == 1 ? ", 1 worker" : "", s->summary.c_str());
    for (const ParamInfo& p : s->params) {
      std::string extra;
      if (p.required)
        extra = " (required)";
      else if (!p.default_value.empty())
        extra = " [default " + p.default_value + "]";
      std::printf("    %-10s %-9s %s%s\n", p.name.c_str(), param_type_name(p.type), p.doc.c_str(),
                  extra.c_str());
    }
  }
}

struct RunArgs {
  std::string spec;
  std::string report;
  bool quiet = false;
  std::vector<std::string> plugins;
};

int cmd_validate(const RunArgs& a) {
  if (int rc = prepare_registry(a.plugins); rc != kExitOk) return rc;
  auto spec = load_spec(a.spec);
  if (!spec.ok()) hand_to_python(spec.status());  // returns only if it could not
  if (!spec.ok()) return fail(spec.status(), kExitUsage);
  unsigned workers = 0;
  for (const auto& s : spec->stages) workers += s.workers;
  std::printf("%s: pipeline '%s' is valid (%zu stages, %u workers)\n", a.spec.c_str(),
              spec->name.c_str(), spec->stages.size(), workers);
  return kExitOk;
}

// A run that cannot start still leaves the report it was asked for (status "invalid"), so that
// a script that reads it always finds one.
void write_invalid_report(const std::string& path, const std::string& why) {
  if (path.empty()) return;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << Report::not_run("", "invalid", kExitUsage, why).to_json(2) << "\n";
  if (!out) print_error("cannot write report " + path);
}

int cmd_run(const RunArgs& a) {
  if (Status s = load_plugins(a.plugins); !s.ok()) {
    write_invalid_report(a.report, s.message());
    return fail(s, kExitUsage);
  }
  if (int rc = prepare_registry({}); rc != kExitOk) {
    write_invalid_report(a.report, StageRegistry::global().registration_errors().front());
    return rc;
  }
  auto spec = load_spec(a.spec);
  if (!spec.ok()) hand_to_python(spec.status());  // returns only if it could not
  if (!spec.ok()) {
    write_invalid_report(a.report, spec.status().message());
    return fail(spec.status(), kExitUsage);
  }
  RunOptions options;
  options.report_path = a.report;
  options.quiet = a.quiet;
  options.summary = !a.quiet;  // printed when the run ends, before metrics.linger
  return run_pipeline(spec.value(), options).exit_code();
}

int cmd_clean() {
  int removed = 0;
  int failed = 0;
  for (const inspect::SegmentInfo& s : inspect::list_segments()) {
    if (s.live) continue;
    const Status st = shm::Segment::remove(s.name);
    if (st.ok()) {
      std::printf("removed %s (pipeline %s, supervisor pid %d is gone)\n",
                  base::printable(s.name).c_str(), base::printable(s.pipeline).c_str(), s.pid);
      ++removed;
    } else if (st.code() != StatusCode::kNotFound) {  // gone meanwhile: nothing to say
      print_error("cannot remove stale " + s.name + ": " + st.message());
      ++failed;
    }
  }
  if (removed == 0 && failed == 0) std::printf("no stale segments\n");
  // Another user's stale segment (EPERM in the sticky /dev/shm) is not ours to remove: say so.
  return failed > 0 ? kExitRuntimeFailure : kExitOk;
}

}  // namespace

void add_run_commands(CLI::App& app, int& rc) {
  static RunArgs run_args, validate_args, stages_args;
  auto* run = app.add_subcommand("run", "run a pipeline spec");
  run->add_option("spec", run_args.spec, "pipeline spec (YAML)")->required();
  run->add_option("--report", run_args.report, "write the JSON report to this file");
  run->add_flag("--quiet,-q", run_args.quiet, "no progress line and no summary");
  run->add_option("--plugin", run_args.plugins, "load stages from a shared library (repeatable)");
  run->callback([&rc] { rc = cmd_run(run_args); });

  auto* validate = app.add_subcommand("validate", "check a pipeline spec without running it");
  validate->add_option("spec", validate_args.spec, "pipeline spec (YAML)")->required();
  validate->add_option("--plugin", validate_args.plugins, "load stages from a shared library");
  validate->callback([&rc] { rc = cmd_validate(validate_args); });

  auto* stages = app.add_subcommand("stages", "list the stages a spec can use, with parameters");
  stages->add_option("--plugin", stages_args.plugins, "load stages from a shared library");
  stages->callback([&rc] {
    rc = prepare_registry(stages_args.plugins);
    if (rc == kExitOk) print_stages();
  });

  auto* clean = app.add_subcommand("clean", "remove segments whose supervisor is dead");
  clean->callback([&rc] { rc = cmd_clean(); });
}

}  // namespace rivus::cli
