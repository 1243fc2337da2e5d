// Rendering views and snapshots: the text table of `rivus stat`, its JSON document (schema
// "rivus.stat/1") and the Prometheus text exposition format of `--prometheus` and /metrics.
// docs/metrics.md documents every column and every metric name. Pure functions; any thread.
#pragma once

#include <string>

#include "rivus/inspect/snapshot.h"
#include "rivus/inspect/view.h"

namespace rivus::inspect {

std::string render_text(const PipelineView& v);
// The "rivus.stat/1" JSON document (docs/metrics.md), indented by `indent` spaces (-1: one line).
std::string render_json(const PipelineView& v, int indent = 2);
// Counters and gauges only (Prometheus computes rates itself): labels pipeline, stage, worker.
std::string render_prometheus(const PipelineSnapshot& s, bool live);
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// "12.3k", "4.56M": for columns.
std::string human_count(double v);
// "850ns", "12.3ms", "1.20s".
std::string human_seconds(double s);

}  // namespace rivus::inspect
