#include "rivus/supervisor/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "metrics.h"
#include "rivus/runtime/spec.h"
#include "rivus/supervisor/supervisor.h"

namespace rivus {
namespace {

void print_stages() {
  for (const StageInfo* s : StageRegistry::global().list()) {
    std::printf("%s (%s)%s\n  %s\n", s->name.c_str(), stage_role_name(s->role),
                s->max_workers == 1 ? ", 1 worker" : "", s->summary.c_str());
    for (const ParamInfo& p : s->params) {
      std::printf("    %-10s %-8s %s%s%s\n", p.name.c_str(), param_type_name(p.type), p.doc.c_str(),
                  p.required ? " (required)" : "",
                  (!p.required && !p.default_value.empty()) ? (" [default " + p.default_value + "]").c_str() : "");
    }
  }
}

int cmd_validate(const std::string& path) {
  auto spec = load_spec(path);
  if (!spec.ok()) {
    std::fprintf(stderr, "rivus: %s\n", spec.status().message().c_str());
    return spec.status().code() == StatusCode::kNotFound ? kExitUsage : kExitUsage;
  }
  std::printf("%s: pipeline '%s' is valid (%zu stages, %u workers)\n", path.c_str(),
              spec->name.c_str(), spec->stages.size(), [&] {
                unsigned n = 0;
                for (const auto& s : spec->stages) n += s.workers;
                return n;
              }());
  return kExitOk;
}

int cmd_run(const std::string& path, const std::string& report, bool quiet) {
  auto spec = load_spec(path);
  if (!spec.ok()) {
    std::fprintf(stderr, "rivus: %s\n", spec.status().message().c_str());
    return kExitUsage;
  }
  RunOptions options;
  options.report_path = report;
  options.quiet = quiet;
  RunResult r = run_pipeline(spec.value(), options);
  if (!quiet) print_report_summary(r.report, stderr);
  return r.exit_code;
}

int cmd_clean() {
  int removed = 0;
  for (const SegmentInfo& s : list_segments()) {
    if (s.live) continue;
    if (shm::Segment::remove(s.name).ok()) {
      std::printf("removed %s (pipeline %s, supervisor pid %d is gone)\n", s.name.c_str(),
                  s.pipeline.c_str(), s.pid);
      ++removed;
    }
  }
  if (removed == 0) std::printf("no stale segments\n");
  return kExitOk;
}

}  // namespace

int cli_main(int argc, char** argv) {
  CLI::App app{"rivus: multi-process shared-memory pipelines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rivus 0.1.0");

  std::string spec_path, report_path;
  bool quiet = false;
  auto* run = app.add_subcommand("run", "run a pipeline spec");
  run->add_option("spec", spec_path, "pipeline spec (YAML)")->required();
  run->add_option("--report", report_path, "write the JSON report to this file");
  run->add_flag("--quiet,-q", quiet, "no progress line and no summary");

  std::string validate_path;
  auto* validate = app.add_subcommand("validate", "check a pipeline spec without running it");
  validate->add_option("spec", validate_path, "pipeline spec (YAML)")->required();

  auto* stages = app.add_subcommand("stages", "list the stages a spec can use, with parameters");
  auto* clean = app.add_subcommand("clean", "remove segments whose supervisor is dead");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (*run) return cmd_run(spec_path, report_path, quiet);
    if (*validate) return cmd_validate(validate_path);
    if (*stages) {
      print_stages();
      return kExitOk;
    }
    if (*clean) return cmd_clean();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rivus: internal error: %s\n", e.what());
    return kExitRuntimeFailure;
  }
  return kExitUsage;
}

}  // namespace rivus
