// Report: what one run did, as `rivus run --report FILE` writes it and `rivus report FILE` reads
// it: status and exit code, per-stage totals, crashes and dead letters, the events and a time
// series (docs/metrics.md, "The run report").
//
// run_pipeline() and Pipeline::run() return one; from_json() reads a report file back. Typed
// accessors cover what programs usually check; to_json() is the whole document, and
// render_html_report() (html_report.h) draws it. A Report is an immutable value: copies share
// the document, and any thread may read it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rivus/base/status.h"

namespace rivus {

// The "schema" every report carries; `rivus report` reads only this one (and the reports of
// earlier versions, which had none).
inline constexpr const char* kReportSchema = "rivus.report/1";

struct StageReport {
  std::string name;
  std::string use;
  std::uint64_t workers = 0;
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
  std::uint64_t errors = 0;
  std::uint64_t retries = 0;
  std::uint64_t dead_letters = 0;
  std::uint64_t restarts = 0;
  std::uint64_t crashes = 0;
  bool failed = false;
};

class Report {
 public:
  Report();  // an empty report: exit code 0, no stages
  // A run that never started: `status` ("failed", "invalid"), its exit code and why.
  static Report not_run(const std::string& pipeline, const std::string& status, int exit_code,
                        const std::string& reason);
  // Reads a report file's text. Errors (InvalidArgument) say what the text is instead: "is not
  // a JSON report: ..." or "is not a Rivus report (expected a JSON object)".
  static Result<Report> from_json(std::string_view text);

  int exit_code() const noexcept;  // as `rivus run` would exit (docs/cli.md)
  bool ok() const noexcept;
  std::string pipeline() const;
  std::string status() const;   // "finished", "failed", "interrupted", "aborted", "invalid"
  std::string failure() const;  // why it failed; empty when ok()
  double elapsed_s() const;
  std::vector<StageReport> stages() const;
  std::optional<StageReport> stage(std::string_view name) const;
  std::uint64_t records_in(std::string_view stage) const;   // 0 for an unknown stage
  std::uint64_t records_out(std::string_view stage) const;  // 0 for an unknown stage
  std::uint64_t dead_letters() const;                       // records dead-lettered in the run
  std::uint64_t restarts() const;

  // The whole report as JSON text, indented by `indent` spaces (-1: one line).
  std::string to_json(int indent = 2) const;
  // The per-stage table `rivus run` prints at the end.
  std::string summary() const;
  void print_summary(std::FILE* out) const;

  // The parsed document, for the renderers of this room (inspect/src/report_document.h).
  struct Document;
  const Document& document() const noexcept { return *doc_; }

 private:
  explicit Report(std::shared_ptr<const Document> doc);
  std::shared_ptr<const Document> doc_;
};

}  // namespace rivus
