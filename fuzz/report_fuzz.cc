// libFuzzer target: the run-report reader, as `rivus report FILE [--html OUT]` uses it.
//
// Report::from_json() must turn any bytes into a Report or a Status; for a Report, every typed
// accessor, the summary, to_json() and render_html_report() must work (or return a Status)
// without a crash, a sanitizer report or an exception, and what to_json() writes must read back.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rivus/inspect/html_report.h"
#include "rivus/inspect/report.h"

extern "C" int LLVMFuzzerTestOneInput(  // NOLINT(readability-identifier-naming)
    const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const rivus::Result<rivus::Report> report = rivus::Report::from_json(text);
  if (!report.ok()) return 0;
  const rivus::Report& r = report.value();
  std::size_t out = r.pipeline().size() + r.status().size() + r.failure().size();
  out += static_cast<std::size_t>(r.exit_code() + r.ok()) + r.dead_letters() + r.restarts();
  (void)r.elapsed_s();
  for (const rivus::StageReport& s : r.stages()) {
    out += r.records_in(s.name) + r.records_out(s.name) + (r.stage(s.name) ? 1 : 0);
  }
  out += r.summary().size();
  const std::string json = r.to_json();
  out += r.to_json(-1).size();
  const rivus::Result<rivus::Report> again = rivus::Report::from_json(json);
  if (!again.ok()) {
    std::fprintf(stderr, "to_json() does not read back: %s\n%s\n",
                 again.status().to_string().c_str(), json.c_str());
    std::abort();
  }
  const rivus::Result<std::string> page = rivus::inspect::render_html_report(r);
  out += page.ok() ? page->size() : page.status().message().size();
  (void)out;  // the calls are what is tested; their results only keep them
  return 0;
}
