// `rivus report FILE --html OUT`: a run's JSON report as one self-contained HTML page.
//
// The page holds an inline SVG chart of each stage's throughput over time (records per second
// between consecutive samples of the report's "series"), the crashes (restarts), dead letters and
// interrupts of its "events" drawn as markers on the same time axis, the per-stage summary table
// and the event list. Nothing is fetched: no scripts, fonts or images from anywhere. Pure
// function; any thread.
#pragma once

#include <cstddef>
#include <string>

#include "rivus/inspect/report.h"

namespace rivus::inspect {

// Renders the page. Tolerates reports with missing parts (no series, no events, a failed run with
// no stages): what is missing is said on the page instead of drawn. A part of an unexpected type
// is an InvalidArgument error ("unexpected report content: ...").
Result<std::string> render_html_report(const Report& report);

// The colour of the i-th stage's line (#rrggbb); the crash marker is kCrashColour.
const char* stage_colour(std::size_t i);
inline constexpr const char* kCrashColour = "#d62728";
inline constexpr const char* kDeadLetterColour = "#ff7f0e";

}  // namespace rivus::inspect
