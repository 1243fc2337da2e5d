#include "rivus/inspect/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report_document.h"
#include "rivus/base/text.h"

namespace rivus::inspect {
namespace {

using nlohmann::json;

// Stage lines. Red and orange are kept for the event markers.
constexpr const char* kPalette[] = {"#1f77b4", "#2ca02c", "#9467bd", "#17becf",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"};
constexpr const char* kOtherEventColour = "#555555";

// Chart geometry, in SVG user units (= CSS pixels).
constexpr double kWidth = 960, kHeight = 420;
constexpr double kLeft = 80, kRight = 20, kTop = 40, kBottom = 50;
constexpr double kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;
// Draw a dot (with a tooltip) per sample only while there are few enough to tell apart.
constexpr std::size_t kMaxDots = 240;
// Event markers closer than this share one label.
constexpr double kClusterPx = 60;

// Dash patterns of the event markers, on one 9-unit period: a dead letter's dashes fill a
// restart's gaps, so that the dead letter a crash loop ends in (drawn at the same instant) does
// not hide the restart markers under it.
std::string dashes(const std::string& type) {
  return type == "dead_letter" ? "stroke-dasharray=\"3 6\" stroke-dashoffset=\"-6\""
                               : "stroke-dasharray=\"6 3\"";
}

std::string esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// printf-style formatting of one number into a string of any length.
std::string fmt(const char* f, double v) {
  const int n = std::snprintf(nullptr, 0, f, v);
  if (n <= 0) return {};
  std::string out(static_cast<std::size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), f, v);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string human(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt("%.2fG", v / 1e9);
  if (a >= 1e6) return fmt("%.2fM", v / 1e6);
  if (a >= 1e4) return fmt("%.1fk", v / 1e3);
  if (a >= 100 || v == std::floor(v)) return fmt("%.0f", v);
  return fmt("%.3g", v);
}

std::string grouped(std::uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), 1, ',');
  return s;
}

double num(const json& j, const char* key, double dflt = 0) {
  if (!j.is_object()) return dflt;
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : dflt;
}
std::uint64_t count(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::uint64_t>() : 0;
}
std::string str(const json& j, const char* key, const std::string& dflt = "") {
  if (!j.is_object()) return dflt;
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// A step of 1, 2 or 5 times a power of ten giving about `ticks` intervals over `range`.
double nice_step(double range, int ticks) {
  const double raw = range / ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}

struct Point {
  double t, rate;
};

struct Series {
  std::string stage;
  std::vector<Point> points;
};

// Records per second between consecutive samples: what a source produced, what any other stage
// took in.
std::vector<Series> throughput(const std::vector<std::string>& stages, const json& series) {
  std::vector<Series> out;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    Series s{stages[i], {}};
    const char* key = i == 0 ? "records_out" : "records_in";
    bool have_prev = false;
    double prev_t = 0, prev_c = 0;
    for (const json& sample : series) {
      if (!sample.is_object() || !sample.contains("stages")) continue;
      const json& st = sample["stages"];
      if (!st.is_object() || !st.contains(stages[i])) continue;
      const double t = num(sample, "t");
      const double c = num(st[stages[i]], key);
      if (have_prev && t > prev_t)
        s.points.push_back({t, std::max(0.0, (c - prev_c) / (t - prev_t))});
      if (!have_prev || t > prev_t) {
        prev_t = t;
        prev_c = c;
        have_prev = true;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string event_label(const json& e) {
  std::string s = str(e, "type");
  if (e.contains("stage")) s += " in " + str(e, "stage");
  if (e.contains("worker")) s += "#" + str(e, "worker");
  if (e.contains("reason")) s += ": " + str(e, "reason");
  s += fmt(" at %.2fs", num(e, "t"));
  return s;
}

std::string chart(const std::vector<Series>& series, const json& events, double t_end) {
  double t_max = std::max(t_end, 1e-3);
  double r_max = 0;
  std::size_t points = 0;
  for (const Series& s : series) {
    for (const Point& p : s.points) {
      t_max = std::max(t_max, p.t);
      r_max = std::max(r_max, p.rate);
    }
    points += s.points.size();
  }
  if (events.is_array()) {
    for (const json& e : events) t_max = std::max(t_max, num(e, "t"));
  }
  const double y_step = nice_step(r_max > 0 ? r_max * 1.05 : 1, 5);
  const double y_max = std::ceil((r_max > 0 ? r_max * 1.05 : 1) / y_step) * y_step;
  const double x_step = nice_step(t_max, 8);
  auto x = [&](double t) { return kLeft + kPlotW * t / t_max; };
  auto y = [&](double r) { return kTop + kPlotH * (1 - r / y_max); };

  std::string o;
  o += fmt("<svg id=\"throughput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\"", kWidth);
  o += fmt(" height=\"%.0f\"", kHeight);
  o +=
      fmt(" viewBox=\"0 0 %.0f", kWidth) +
      fmt(" %.0f\" role=\"img\" aria-label=\"records per second per stage over time\">\n", kHeight);
  o += "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  // Grid and axes.
  o += "<g class=\"grid\" stroke=\"#e4e4e4\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n";
  for (double r = 0; r <= y_max + y_step / 2; r += y_step) {
    o += fmt("<line x1=\"%.1f\"", kLeft) + fmt(" x2=\"%.1f\"", kLeft + kPlotW) +
         fmt(" y1=\"%.1f\"", y(r)) + fmt(" y2=\"%.1f\"/>\n", y(r));
  }
  for (double t = 0; t <= t_max + 1e-9; t += x_step) {
    o += fmt("<line x1=\"%.1f\"", x(t)) + fmt(" x2=\"%.1f\"", x(t)) + fmt(" y1=\"%.1f\"", kTop) +
         fmt(" y2=\"%.1f\"/>\n", kTop + kPlotH);
  }
  o += "</g>\n<g class=\"axes\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#333\">\n";
  for (double r = 0; r <= y_max + y_step / 2; r += y_step) {
    o += fmt("<text x=\"%.1f\"", kLeft - 8) +
         fmt(" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">", y(r)) +
         esc(human(r)) + "</text>\n";
  }
  for (double t = 0; t <= t_max + 1e-9; t += x_step) {
    o += fmt("<text x=\"%.1f\"", x(t)) +
         fmt(" y=\"%.1f\" text-anchor=\"middle\">", kTop + kPlotH + 18) + esc(human(t)) +
         "s</text>\n";
  }
  o += fmt("<text x=\"%.1f\"", kLeft + kPlotW / 2) +
       fmt(" y=\"%.1f\" text-anchor=\"middle\">time since start (s)</text>\n", kHeight - 8);
  o +=
      fmt("<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">records / "
          "s</text>\n",
          kTop + kPlotH / 2);
  o += "</g>\n";
  o += fmt("<rect x=\"%.1f\"", kLeft) + fmt(" y=\"%.1f\"", kTop) + fmt(" width=\"%.1f\"", kPlotW) +
       fmt(" height=\"%.1f\" fill=\"none\" stroke=\"#999\" shape-rendering=\"crispEdges\"/>\n",
           kPlotH);

  // Event markers, under the lines. One label per cluster of markers of a kind (a crash loop
  // draws many lines a few pixels apart), saying how many it stands for.
  o += "<g class=\"events\">\n";
  if (events.is_array()) {
    std::map<std::string, std::pair<double, std::size_t>> cluster;  // type -> (x, index in o)
    std::map<std::string, int> cluster_size;
    for (const json& e : events) {
      const std::string type = str(e, "type");
      const char* colour = type == "crash"         ? kCrashColour
                           : type == "dead_letter" ? kDeadLetterColour
                                                   : kOtherEventColour;
      // Whole pixels, crisp edges: a marker is exactly its colour on screen.
      const double ex = std::round(x(num(e, "t"))) + 0.5;
      o += "<g class=\"event " + esc(type) + "\"><title>" + esc(event_label(e)) + "</title>";
      o += fmt("<line x1=\"%.1f\"", ex) + fmt(" x2=\"%.1f\"", ex) + fmt(" y1=\"%.1f\"", kTop) +
           fmt(" y2=\"%.1f\" stroke=\"", kTop + kPlotH) + colour + "\" stroke-width=\"2\" " +
           dashes(type) + " shape-rendering=\"crispEdges\"/>";
      const std::string text = type == "crash" ? "restart" : type == "dead_letter" ? "" : type;
      auto it = cluster.find(type);
      if (!text.empty() && (it == cluster.end() || ex - it->second.first > kClusterPx)) {
        o += fmt("<text x=\"%.1f\"", ex) +
             fmt(" y=\"%.1f\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"12\" "
                 "fill=\"",
                 kTop - 6) +
             colour + "\">" + esc(text) + "</text>";
        cluster[type] = {ex, o.size() - std::string("</text>").size()};
        cluster_size[type] = 1;
      } else if (!text.empty()) {
        // Same cluster: "restart" becomes "3 restarts" in place.
        const int n = ++cluster_size[type];
        const std::size_t end = it->second.second;
        const std::size_t start = o.rfind('>', end - 1) + 1;
        const std::string label = std::to_string(n) + " " + text + "s";
        o.replace(start, end - start, esc(label));
        it->second.second = start + esc(label).size();
      }
      o += "</g>\n";
    }
  }
  o += "</g>\n";

  // Throughput lines.
  // Stages often run at the same rate: earlier stages get wider lines, so lines that coincide
  // show as nested bands instead of hiding each other.
  o += "<g class=\"lines\" fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    if (s.points.empty()) continue;
    std::string d;
    for (std::size_t k = 0; k < s.points.size(); ++k) {
      d +=
          (k == 0 ? "M" : " L") + fmt("%.1f", x(s.points[k].t)) + fmt(" %.1f", y(s.points[k].rate));
    }
    const double width = std::min(3.0 + 4.0 * static_cast<double>(series.size() - 1 - i), 15.0);
    o += "<path class=\"series\" data-stage=\"" + esc(s.stage) + "\" stroke=\"" + stage_colour(i) +
         "\" d=\"" + d + "\"" + fmt(" stroke-width=\"%.0f\"/>\n", width);
  }
  o += "</g>\n";
  if (points <= kMaxDots) {
    o += "<g class=\"dots\">\n";
    for (std::size_t i = 0; i < series.size(); ++i) {
      for (const Point& p : series[i].points) {
        o += fmt("<circle cx=\"%.1f\"", x(p.t)) + fmt(" cy=\"%.1f\" r=\"3\" fill=\"", y(p.rate)) +
             stage_colour(i) + "\"><title>" + esc(series[i].stage) + ": " + esc(human(p.rate)) +
             " records/s at " + fmt("%.1fs", p.t) + "</title></circle>\n";
      }
    }
    o += "</g>\n";
  }
  if (points == 0) {
    o += fmt("<text x=\"%.1f\"", kLeft + kPlotW / 2) + fmt(" y=\"%.1f\"", kTop + kPlotH / 2) +
         " text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"14\" fill=\"#666\">"
         "not enough samples for a rate (the report's series has fewer than two)</text>\n";
  }

  // Legend along the top: a short line per stage, then the markers.
  o += "<g class=\"legend\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#333\">\n";
  double lx = kLeft;
  auto legend = [&](const std::string& colour, const std::string& text, const std::string& dash) {
    o += fmt("<line x1=\"%.1f\"", lx) + fmt(" x2=\"%.1f\" y1=\"14\" y2=\"14\" stroke=\"", lx + 18) +
         colour + "\" stroke-width=\"3\" " + dash + "/>";
    o += fmt("<text x=\"%.1f\" y=\"18\">", lx + 24) + esc(text) + "</text>\n";
    lx += 24 + 7.0 * static_cast<double>(text.size()) + 18;
  };
  for (std::size_t i = 0; i < series.size(); ++i) legend(stage_colour(i), series[i].stage, "");
  legend(kCrashColour, "restart (crash)", dashes("crash"));
  legend(kDeadLetterColour, "dead letter", dashes("dead_letter"));
  o += "</g>\n</svg>\n";
  return o;
}

std::string stage_table(const json& stages) {
  std::string o =
      "<table class=\"stages\">\n<thead><tr><th>stage</th><th>use</th><th>workers</th>"
      "<th>records in</th><th>records out</th><th>errors</th><th>retries</th><th>dead letters</th>"
      "<th>restarts</th><th>rate / s</th><th>busy s</th><th>idle s</th><th>blocked s</th>"
      "<th>latency p50 / p95 / p99 (ms)</th><th>state</th></tr></thead>\n<tbody>\n";
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const json& s = stages[i];
    std::string lat = "&ndash;";
    if (s.contains("latency_ms") && s["latency_ms"].is_object()) {
      const json& l = s["latency_ms"];
      lat = esc(human(num(l, "p50")) + " / " + human(num(l, "p95")) + " / " + human(num(l, "p99")));
    }
    o += "<tr><td><span class=\"swatch\" style=\"background:" + std::string(stage_colour(i)) +
         "\"></span>" + esc(str(s, "name")) + "</td><td>" + esc(str(s, "use")) + "</td>";
    for (const char* k : {"workers", "records_in", "records_out", "errors", "retries",
                          "dead_letters", "restarts"}) {
      o += "<td class=\"n\">" + grouped(count(s, k)) + "</td>";
    }
    o += "<td class=\"n\">" + esc(human(num(s, "rate_per_s"))) + "</td>";
    for (const char* k : {"busy_s", "idle_s", "blocked_s"})
      o += "<td class=\"n\">" + fmt("%.2f", num(s, k)) + "</td>";
    o += "<td class=\"n\">" + lat + "</td><td>" + esc(str(s, "state")) + "</td></tr>\n";
  }
  o += "</tbody>\n</table>\n";
  return o;
}

std::string event_table(const json& events) {
  if (!events.is_array() || events.empty())
    return "<p>No events: no crash, dead letter or interrupt.</p>\n";
  std::string o =
      "<table class=\"events\">\n<thead><tr><th>t (s)</th><th>event</th><th>stage</th>"
      "<th>worker</th><th>detail</th></tr></thead>\n<tbody>\n";
  for (const json& e : events) {
    std::string detail;
    for (const char* k : {"reason", "signal", "exit_code", "seq", "error", "attempts"}) {
      if (e.is_object() && e.contains(k) && !e[k].is_null()) {
        detail += (detail.empty() ? "" : "; ") + std::string(k) + " " + str(e, k);
      }
    }
    o += "<tr><td class=\"n\">" + fmt("%.2f", num(e, "t")) + "</td><td>" + esc(str(e, "type")) +
         "</td><td>" + esc(str(e, "stage")) + "</td><td>" + esc(str(e, "worker")) + "</td><td>" +
         esc(detail) + "</td></tr>\n";
  }
  o += "</tbody>\n</table>\n";
  return o;
}

constexpr const char* kStyle = R"(
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0 0 12px; }
.status { font-size: 14px; padding: 2px 8px; border-radius: 4px; background: #e8f1e8; }
.status.failed, .status.aborted { background: #f6dede; }
.status.interrupted { background: #f6efd8; }
.failure { color: #a00; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
)";

}  // namespace

const char* stage_colour(std::size_t i) { return kPalette[i % std::size(kPalette)]; }

namespace {

std::string render_page(const json& report) {
  const std::string name = str(report, "pipeline", "?");
  const std::string status = str(report, "status", "?");
  const json empty = json::array();
  const json& stages =
      report.contains("stages") && report["stages"].is_array() ? report["stages"] : empty;
  const json& series =
      report.contains("series") && report["series"].is_array() ? report["series"] : empty;
  const json& events =
      report.contains("events") && report["events"].is_array() ? report["events"] : empty;

  std::vector<std::string> names;
  for (const json& s : stages) names.push_back(str(s, "name"));
  if (names.empty()) {  // no summary (a run that failed to start): take the names from the series
    for (const json& sample : series) {
      if (!sample.is_object() || !sample.contains("stages") || !sample["stages"].is_object())
        continue;
      for (const auto& [k, v] : sample["stages"].items()) {
        if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
      }
    }
  }
  const auto lines = throughput(names, series);
  const double elapsed = num(report, "elapsed_s");

  std::string o = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  o += "<title>Rivus report: " + esc(name) + "</title>\n<style>" + kStyle +
       "</style>\n</head>\n<body>\n";
  o += "<h1>Pipeline " + esc(name) + " <span class=\"status " + esc(status) + "\">" + esc(status) +
       "</span></h1>\n";
  o += "<p class=\"meta\">" + fmt("%.2f s", elapsed) + " &middot; exit code " +
       esc(str(report, "exit_code", "?")) + " &middot; " + grouped(count(report, "restarts")) +
       " restarts";
  if (report.contains("dead_letters") && report["dead_letters"].is_object()) {
    o += " &middot; " + grouped(count(report["dead_letters"], "count")) + " dead letters";
  }
  if (report.contains("spec")) o += " &middot; spec " + esc(str(report, "spec"));
  if (report.contains("supervisor_pid"))
    o += " &middot; supervisor pid " + esc(str(report, "supervisor_pid"));
  o += "</p>\n";
  if (report.contains("failure") && report["failure"].is_object()) {
    o += "<p class=\"failure\">Failure";
    if (!report["failure"].value("stage", json()).is_null())
      o += " in stage " + esc(str(report["failure"], "stage"));
    o += ": " + esc(str(report["failure"], "reason")) + "</p>\n";
  }
  o += "<h2>Throughput per stage (records / s between samples)</h2>\n";
  o += chart(lines, events, elapsed);
  o += "<h2>Stages</h2>\n";
  o += stages.empty() ? "<p>The report has no per-stage summary.</p>\n" : stage_table(stages);
  o += "<h2>Events</h2>\n" + event_table(events);
  o += "<p class=\"meta\">Generated by <code>rivus report --html</code> from the run's JSON "
       "report.</p>\n";
  o += "</body>\n</html>\n";
  return o;
}

}  // namespace

Result<std::string> render_html_report(const Report& report) {
  try {
    return render_page(report.document().json);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("unexpected report content: ") +
                                   base::json_error_text(e.what()));
  }
}

}  // namespace rivus::inspect
