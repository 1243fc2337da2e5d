// What a run tells about itself: a metrics sample a second (the report's time series), the
// progress line on a terminal, the events, and the report at the end; and the Report type that
// holds it (rivus/supervisor/report.h).
#include "rivus/supervisor/report.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "report_document.h"
#include "rivus/inspect/snapshot.h"
#include "rivus/shm/atomic.h"
#include "supervisor_core.h"

namespace rivus {

using nlohmann::json;

// ---- the supervisor's side -------------------------------------------------------------------

namespace supervisor {

void Supervisor::sample(bool force) {
  const auto now = Clock::now();
  if (!force && now - last_sample_ < std::chrono::seconds(1)) return;
  last_sample_ = now;
  const inspect::PipelineSnapshot snap = inspect::take_snapshot(*seg_);
  json stages = json::object();
  for (const auto& s : snap.stages) {
    stages[s.name] = {{"records_in", s.totals.records_in},
                      {"records_out", s.totals.records_out},
                      {"errors", s.totals.errors},
                      {"restarts", s.restarts}};
  }
  series_.push_back({{"t", since_start()}, {"stages", stages}});
}

void Supervisor::progress(bool final) {
  if (!tty_) return;
  const auto now = Clock::now();
  if (!final && now - last_progress_ < std::chrono::milliseconds(250)) return;
  last_progress_ = now;
  const inspect::PipelineSnapshot snap = inspect::take_snapshot(*seg_);
  const auto& sink = snap.stages.back();
  const std::uint64_t done = sink.totals.records_in;
  const double t = since_start();
  const double rate = t > 0 ? static_cast<double>(done) / t : 0;
  const std::uint64_t total = snap.stages.front().total_hint;
  char line[200];
  if (total > 0) {
    const double pct = 100.0 * static_cast<double>(done) / static_cast<double>(total);
    const double eta = rate > 0 ? static_cast<double>(total - std::min(done, total)) / rate : 0;
    std::snprintf(line, sizeof line, "\r%s: %llu/%llu records (%.1f%%), %.0f/s, ETA %.0fs   ",
                  spec_.name.c_str(), static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total), pct, rate, eta);
  } else {
    std::snprintf(line, sizeof line, "\r%s: %llu records, %.0f/s   ", spec_.name.c_str(),
                  static_cast<unsigned long long>(done), rate);
  }
  std::fputs(line, stderr);
  if (final) std::fputs("\n", stderr);
}

void Supervisor::event(json e) {
  e["t"] = since_start();
  events_.push_back(std::move(e));
}

Report Supervisor::build_report(Outcome outcome, int exit_code) {
  const inspect::PipelineSnapshot snap = inspect::take_snapshot(*seg_);
  const double elapsed = since_start();
  json stages = json::array();
  std::uint64_t dead_letters = 0;
  for (std::size_t s = 0; s < snap.stages.size(); ++s) {
    const auto& st = snap.stages[s];
    const auto& c = st.totals;
    dead_letters += c.dead_letters;
    std::map<std::string, std::uint64_t> by_signal;
    json workers = json::array();
    std::uint64_t crashes = 0;
    std::uint64_t lost_ns = 0;
    for (const auto& w : st.workers) {
      crashes += w.crashes;
      lost_ns += w.lost_ns;
      workers.push_back({{"index", w.index},
                         {"pid", w.pid},
                         {"restarts", w.restarts},
                         {"crashes", w.crashes},
                         {"records_in", w.counters.records_in},
                         {"records_out", w.counters.records_out},
                         {"errors", w.counters.errors},
                         {"busy_s", static_cast<double>(w.counters.busy_ns) / 1e9},
                         {"state", inspect::worker_state_name(w.state)}});
    }
    for (const auto& e : events_) {
      if (e["type"] == "crash" && e["stage"] == st.name) {
        by_signal[e["signal"].is_null() ? "exit " + e["exit_code"].dump()
                                        : e["signal"].get<std::string>()]++;
      }
    }
    json j = {
        {"name", st.name},
        {"use", st.use},
        {"workers", st.workers.size()},
        {"records_in", c.records_in},
        {"records_out", c.records_out},
        {"bytes_in", c.bytes_in},
        {"bytes_out", c.bytes_out},
        {"batches", c.batches},
        {"errors", c.errors},
        {"retries", c.retries},
        {"dead_letters", c.dead_letters},
        {"restarts", st.restarts},
        {"restarts_from_spare", stages_[s].from_spare},
        {"crashes", crashes},
        {"crashes_by_cause", by_signal},
        {"time_lost_s", static_cast<double>(lost_ns) / 1e9},
        {"busy_s", static_cast<double>(c.busy_ns) / 1e9},
        {"idle_s", static_cast<double>(c.idle_ns) / 1e9},
        {"blocked_s", static_cast<double>(c.blocked_ns) / 1e9},
        {"elapsed_s", elapsed},
        {"rate_per_s",
         elapsed > 0 ? static_cast<double>(std::max(c.records_in, c.records_out)) / elapsed : 0},
        {"state",
         st.state == static_cast<std::uint32_t>(shm::StageState::kFailed) ? "failed" : "ok"},
        {"workers_detail", workers}};
    if (inspect::histogram_count(st.latency_ns) > 0) {
      j["latency_ms"] = {{"p50", inspect::histogram_quantile(st.latency_ns, 0.5) / 1e6},
                         {"p95", inspect::histogram_quantile(st.latency_ns, 0.95) / 1e6},
                         {"p99", inspect::histogram_quantile(st.latency_ns, 0.99) / 1e6}};
    }
    stages.push_back(std::move(j));
  }
  json report = {{"pipeline", spec_.name},
                 {"spec", spec_.file},
                 {"status", outcome_name(outcome)},
                 {"exit_code", exit_code},
                 {"elapsed_s", elapsed},
                 {"supervisor_pid", self_},
                 {"stages", stages},
                 {"dead_letters", {{"path", spec_.dead_letter_path}, {"count", dead_letters}}},
                 {"restarts", snap.total_restarts},
                 {"events", events_},
                 {"series", series_}};
  report["failure"] =
      failed_stage_ >= 0
          ? json{{"stage", spec_.stages[static_cast<std::size_t>(failed_stage_)].name},
                 {"reason", failure_}}
          : json(nullptr);
  return make_report(exit_code, std::move(report));
}

Report make_report(int exit_code, json document) {
  auto doc = std::make_shared<Report::Document>();
  doc->exit_code = exit_code;
  doc->json = std::move(document);
  return Report(std::move(doc));
}

Report with_exit_code(const Report& r, int exit_code) {
  return make_report(exit_code, json::parse(r.to_json(-1)));
}

}  // namespace supervisor

// ---- Report ------------------------------------------------------------------------------------

namespace {

std::uint64_t u64(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return 0;
  return it->is_number_unsigned() || it->get<std::int64_t>() >= 0 ? it->get<std::uint64_t>() : 0;
}

std::string text(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Report::Report() : doc_(std::make_shared<Document>()) {}

Report::Report(std::shared_ptr<const Document> doc) : doc_(std::move(doc)) {}

Report Report::not_run(const std::string& pipeline, const std::string& status, int exit_code,
                       const std::string& reason) {
  return supervisor::make_report(exit_code,
                                 {{"pipeline", pipeline},
                                  {"status", status},
                                  {"exit_code", exit_code},
                                  {"failure", {{"stage", nullptr}, {"reason", reason}}}});
}

Result<Report> Report::from_json(std::string_view text_in) {
  json j;
  try {
    j = json::parse(text_in);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("is not a JSON report: ") + e.what());
  }
  if (!j.is_object()) {
    return Status::InvalidArgument("is not a Rivus report (expected a JSON object)");
  }
  const auto code = j.find("exit_code");
  const int exit_code =
      code != j.end() && code->is_number_integer() ? code->get<int>() : kExitRuntimeFailure;
  return supervisor::make_report(exit_code, std::move(j));
}

int Report::exit_code() const noexcept { return doc_->exit_code; }

bool Report::ok() const noexcept { return doc_->exit_code == kExitOk; }

std::string Report::pipeline() const { return text(doc_->json, "pipeline"); }

std::string Report::status() const { return text(doc_->json, "status"); }

std::string Report::failure() const {
  const auto it = doc_->json.find("failure");
  if (it == doc_->json.end() || !it->is_object()) return {};
  return text(*it, "reason");
}

double Report::elapsed_s() const {
  const auto it = doc_->json.find("elapsed_s");
  return it != doc_->json.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::vector<StageReport> Report::stages() const {
  std::vector<StageReport> out;
  const auto it = doc_->json.find("stages");
  if (it == doc_->json.end() || !it->is_array()) return out;
  for (const json& s : *it) {
    if (!s.is_object()) continue;
    StageReport r;
    r.name = text(s, "name");
    r.use = text(s, "use");
    r.workers = u64(s, "workers");
    r.records_in = u64(s, "records_in");
    r.records_out = u64(s, "records_out");
    r.errors = u64(s, "errors");
    r.retries = u64(s, "retries");
    r.dead_letters = u64(s, "dead_letters");
    r.restarts = u64(s, "restarts");
    r.crashes = u64(s, "crashes");
    r.failed = text(s, "state") == "failed";
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<StageReport> Report::stage(std::string_view name) const {
  for (StageReport& s : stages()) {
    if (s.name == name) return std::move(s);
  }
  return std::nullopt;
}

std::uint64_t Report::records_in(std::string_view stage_name) const {
  const auto s = stage(stage_name);
  return s ? s->records_in : 0;
}

std::uint64_t Report::records_out(std::string_view stage_name) const {
  const auto s = stage(stage_name);
  return s ? s->records_out : 0;
}

std::uint64_t Report::dead_letters() const {
  const auto it = doc_->json.find("dead_letters");
  return it != doc_->json.end() && it->is_object() ? u64(*it, "count") : 0;
}

std::uint64_t Report::restarts() const { return u64(doc_->json, "restarts"); }

std::string Report::to_json(int indent) const { return doc_->json.dump(indent); }

void Report::print_summary(std::FILE* out) const {
  const json& report = doc_->json;
  const auto code = report.find("exit_code");
  std::fprintf(out, "pipeline %s: %s in %.2fs (exit code %d)\n",
               text(report, "pipeline").empty() ? "?" : text(report, "pipeline").c_str(),
               text(report, "status").empty() ? "?" : text(report, "status").c_str(), elapsed_s(),
               code != report.end() && code->is_number_integer() ? code->get<int>() : 0);
  if (const std::string why = failure(); !why.empty())
    std::fprintf(out, "  failure: %s\n", why.c_str());
  if (!report.contains("stages")) return;
  std::fprintf(out, "  %-16s %8s %12s %12s %8s %8s %8s %12s\n", "stage", "workers", "in", "out",
               "errors", "dead", "restarts", "rate/s");
  const auto stage_list = report.find("stages");
  if (!stage_list->is_array()) return;
  for (const json& s : *stage_list) {
    if (!s.is_object()) continue;
    const auto rate = s.find("rate_per_s");
    std::fprintf(out, "  %-16s %8llu %12llu %12llu %8llu %8llu %8llu %12.0f\n",
                 text(s, "name").c_str(), static_cast<unsigned long long>(u64(s, "workers")),
                 static_cast<unsigned long long>(u64(s, "records_in")),
                 static_cast<unsigned long long>(u64(s, "records_out")),
                 static_cast<unsigned long long>(u64(s, "errors")),
                 static_cast<unsigned long long>(u64(s, "dead_letters")),
                 static_cast<unsigned long long>(u64(s, "restarts")),
                 rate != s.end() && rate->is_number() ? rate->get<double>() : 0.0);
  }
}

std::string Report::summary() const {
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  if (f == nullptr) return {};
  print_summary(f);
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

}  // namespace rivus
