// The Report type (rivus/inspect/report.h): a run's report document and what can be read off it.
#include "rivus/inspect/report.h"

#include <cstdio>
#include <cstdlib>

#include "report_document.h"
#include "rivus/base/exit_codes.h"
#include "rivus/base/text.h"

namespace rivus {

using nlohmann::json;

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
  auto doc = std::make_shared<Document>();
  doc->exit_code = exit_code;
  doc->json = {{"schema", kReportSchema},
               {"pipeline", pipeline},
               {"status", status},
               {"exit_code", exit_code},
               {"failure", {{"stage", nullptr}, {"reason", reason}}}};
  return Report(std::move(doc));
}

Result<Report> Report::from_json(std::string_view text_in) {
  json j;
  try {
    j = json::parse(text_in);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("is not a JSON report: ") +
                                   base::json_error_text(e.what()));
  }
  if (!j.is_object()) {
    return Status::InvalidArgument("is not a Rivus report (expected a JSON object)");
  }
  // Reports name their schema; those written before 0.3 did not, but always had these two.
  const auto schema = j.find("schema");
  if (schema != j.end()) {
    if (!schema->is_string() || schema->get<std::string>() != kReportSchema) {
      return Status::InvalidArgument("is a document of schema " + schema->dump() +
                                     ", not a Rivus report (schema \"" + kReportSchema + "\")");
    }
  } else if (!j.contains("pipeline") || !j["pipeline"].is_string() || !j.contains("status") ||
             !j["status"].is_string()) {
    return Status::InvalidArgument(std::string("is not a Rivus report: it has no \"schema\": \"") +
                                   kReportSchema +
                                   "\" (nor the pipeline and status of older ones)");
  }
  const auto code = j.find("exit_code");
  const int exit_code =
      code != j.end() && code->is_number_integer() ? code->get<int>() : kExitRuntimeFailure;
  auto doc = std::make_shared<Document>();
  doc->exit_code = exit_code;
  doc->json = std::move(j);
  return Report(std::move(doc));
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

std::string Report::to_json(int indent) const {
  return doc_->json.dump(indent, ' ', false, json::error_handler_t::replace);
}

void Report::print_summary(std::FILE* out) const {
  const json& report = doc_->json;
  const auto code = report.find("exit_code");
  std::fprintf(out, "pipeline %s: %s in %.2fs (exit code %d)\n",
               text(report, "pipeline").empty() ? "?" : text(report, "pipeline").c_str(),
               text(report, "status").empty() ? "?" : text(report, "status").c_str(), elapsed_s(),
               code != report.end() && code->is_number_integer() ? code->get<int>() : 0);
  if (const std::string why = failure(); !why.empty())
    std::fprintf(out, "  failure: %s\n", base::printable(why).c_str());
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
