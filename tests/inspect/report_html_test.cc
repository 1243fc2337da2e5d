// The HTML report (`rivus report --html`) opened in a real headless Chromium: the page's DOM and
// the pixels of a screenshot, for a run with crashes, restarts and a dead letter. Every wait has a
// deadline; nothing asserts on timing.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics_util.h"
#include "process_util.h"

namespace rivus::testing {
namespace {

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

struct Rgb {
  int r, g, b;
};
Rgb parse_colour(const std::string& hex) {
  return {std::stoi(hex.substr(1, 2), nullptr, 16), std::stoi(hex.substr(3, 2), nullptr, 16),
          std::stoi(hex.substr(5, 2), nullptr, 16)};
}

// Pixels of a PNG within `tolerance` (per channel) of `c`.
std::size_t count_pixels(const std::vector<std::uint8_t>& rgb, Rgb c, int tolerance = 16) {
  std::size_t n = 0;
  for (std::size_t i = 0; i + 2 < rgb.size(); i += 3) {
    n += std::abs(rgb[i] - c.r) <= tolerance && std::abs(rgb[i + 1] - c.g) <= tolerance &&
         std::abs(rgb[i + 2] - c.b) <= tolerance;
  }
  return n;
}

TEST(ReportHtmlTest, ChartRendersInHeadlessChromiumWithRestartsMarked) {
  const std::string chromium = find_chromium();
  ASSERT_FALSE(chromium.empty())
      << "headless Chromium is needed (Debian package chromium; scripts/setup installs it)";
  TempDir dir;
  const std::string name = unique("html");
  // A record that kills its worker: crashes, restarts, and in the end a dead letter.
  const std::string spec =
      dir.write("p.yaml", "name: " + name +
                              "\n"
                              "batch: {records: 50, linger: 1ms}\n"
                              "retry: {max_retries: 2}\n"
                              "dead_letter: {path: " +
                              dir.file("dead.jsonl") +
                              "}\n"
                              "stages:\n"
                              "  - {name: src, use: lines, with: {path: '-'}}\n"
                              "  - {name: chaos, use: chaos, with: {segv: [poison]}, workers: 2}\n"
                              "  - {name: out, use: discard}\n");
  LiveProcess run({rivus_test_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                  dir.file("run.out"), dir.file("run.err"));
  ASSERT_TRUE(run.write_stdin(lines("a", 3000) + "poison\n" + lines("b", 3000)));
  // Feed more as time passes so the series (one sample a second) has several points.
  int fed = 0;
  ASSERT_TRUE(wait_for(
      [&] {
        const json s = stat_json(name);
        if (s.is_null()) return false;
        if (fed < 40) {
          std::string prefix =
              "c";  // built step by step: GCC 12 warns (-Wrestrict) on a + chain here
          prefix += std::to_string(fed++);
          prefix += '-';
          run.write_stdin(lines(prefix, 200));
        }
        return s["uptime_s"].get<double>() > 3.5;
      },
      120s, kPoll))
      << read_file(dir.file("run.err"));
  run.close_stdin();
  ASSERT_EQ(run.wait(120s), 0) << read_file(dir.file("run.err"));
  const json report = json::parse(read_file(dir.file("r.json")));
  ASSERT_GE(report["series"].size(), 3u) << report.dump();
  bool crashed = false;
  for (const json& e : report["events"]) crashed |= e["type"] == "crash";
  ASSERT_TRUE(crashed) << report["events"].dump();

  const auto render = rivus({"report", dir.file("r.json"), "--html", dir.file("report.html")});
  ASSERT_EQ(render.exit_code, 0) << render.err;
  const std::string page = read_file(dir.file("report.html"));
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org/2000/svg"))
      << "the page must fetch nothing";
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(page.find("<script src"), std::string::npos);

  const std::vector<std::string> browser = {chromium,
                                            "--headless",
                                            "--no-sandbox",
                                            "--disable-gpu",
                                            "--disable-background-networking",
                                            "--no-first-run",
                                            "--hide-scrollbars",
                                            "--user-data-dir=" + dir.file("profile"),
                                            "--window-size=1200,900"};
  // The DOM as the browser built it: one line per stage, the crashes marked.
  auto dom_args = browser;
  dom_args.push_back("--dump-dom");
  dom_args.push_back("file://" + dir.file("report.html"));
  const auto dom = run_process(dom_args, 120s);
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  // <path class="series" data-stage="NAME" stroke="#rrggbb" d="M... L..." ...>
  std::map<std::string, std::string> colours;
  auto attr = [](const std::string& tag, const std::string& name) {
    const auto at = tag.find(" " + name + "=\"");
    if (at == std::string::npos) return std::string();
    const auto start = at + name.size() + 3;
    return tag.substr(start, tag.find('"', start) - start);
  };
  for (std::size_t at = dom.out.find("<path class=\"series\""); at != std::string::npos;
       at = dom.out.find("<path class=\"series\"", at + 1)) {
    const std::string tag = dom.out.substr(at, dom.out.find('>', at) - at);
    const std::string colour = attr(tag, "stroke"), d = attr(tag, "d");
    EXPECT_EQ(colour.size(), 7u) << tag;
    EXPECT_TRUE(d.rfind("M", 0) == 0 && d.find(" L") != std::string::npos)
        << "a line of at least two points: " << tag;
    colours[attr(tag, "data-stage")] = colour;
  }
  EXPECT_EQ(colours.size(), 3u) << dom.out.substr(0, 4000);
  EXPECT_NE(dom.out.find("<g class=\"event crash\">"), std::string::npos);
  EXPECT_NE(dom.out.find("<table class=\"stages\">"), std::string::npos);

  // What it painted: the stage lines and the restart markers are on the screenshot.
  auto shot_args = browser;
  shot_args.push_back("--screenshot=" + dir.file("shot.png"));
  shot_args.push_back("file://" + dir.file("report.html"));
  const auto shot = run_process(shot_args, 120s);
  ASSERT_EQ(shot.exit_code, 0) << shot.err;
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&img, dir.file("shot.png").c_str())) << img.message;
  img.format = PNG_FORMAT_RGB;
  std::vector<std::uint8_t> rgb(PNG_IMAGE_SIZE(img));
  ASSERT_TRUE(png_image_finish_read(&img, nullptr, rgb.data(), 0, nullptr)) << img.message;
  EXPECT_EQ(img.width, 1200u);
  std::size_t line_pixels = 0, widest = 0;
  for (const auto& [stage, colour] : colours) {
    const std::size_t n = count_pixels(rgb, parse_colour(colour));
    line_pixels += n;
    widest = std::max(widest, n);
  }
  // A line across the 860-pixel-wide plot is well over 400 pixels; legend and table swatches
  // are about 150 per stage. Lines may hide each other where stages run at the same rate.
  EXPECT_GT(widest, 400u) << "no stage line painted";
  EXPECT_GT(line_pixels, 800u);
  // The dashed restart markers run the plot's full height (red: kCrashColour in html_report.h).
  EXPECT_GT(count_pixels(rgb, parse_colour("#d62728"), 8), 150u) << "no restart marker painted";
}

TEST(ReportHtmlTest, BadReportFilesAreClearErrors) {
  TempDir dir;
  const auto missing = rivus({"report", dir.file("nope.json"), "--html", dir.file("o.html")});
  EXPECT_EQ(missing.exit_code, 4) << missing.err;
  const auto bad =
      rivus({"report", dir.write("bad.json", "{not json"), "--html", dir.file("o.html")});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("is not a JSON report"), std::string::npos) << bad.err;
  // JSON that is not a report: exit 2, and no page written.
  const auto other =
      rivus({"report", dir.write("other.json", "{\"a\":1}"), "--html", dir.file("other.html")});
  EXPECT_EQ(other.exit_code, 2) << other.err;
  EXPECT_NE(other.err.find("is not a Rivus report"), std::string::npos) << other.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("other.html")));
  const auto other_text = rivus({"report", dir.file("other.json")});
  EXPECT_EQ(other_text.exit_code, 2) << other_text.err;
  // A report with nothing but its schema and a name still renders, saying what is missing.
  const auto thin = rivus(
      {"report", dir.write("thin.json", "{\"schema\": \"rivus.report/1\", \"pipeline\": \"p<&>\"}"),
       "--html", dir.file("t.html")});
  ASSERT_EQ(thin.exit_code, 0) << thin.err;
  const std::string page = read_file(dir.file("t.html"));
  EXPECT_NE(page.find("p&lt;&amp;&gt;"), std::string::npos);
  EXPECT_NE(page.find("not enough samples"), std::string::npos);
}

}  // namespace
}  // namespace rivus::testing
