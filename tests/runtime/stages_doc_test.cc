// docs/stages.md against `rivus stages`: every stage the binary offers (plugins aside) has a row
// in the table and a section, and its section names every parameter as `param`. Adding a stage
// or a parameter without documenting it fails here.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "process_util.h"

namespace rivus::testing {
namespace {

using namespace std::chrono_literals;

struct StageDoc {
  std::string name;
  std::vector<std::string> params;
};

std::string first_word(const std::string& line) {
  const std::size_t start = line.find_first_not_of(' ');
  if (start == std::string::npos) return {};
  const std::size_t end = line.find(' ', start);
  return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// `rivus stages` prints, per stage, "name (role)[, 1 worker]", then its summary indented by two
// spaces, then one line per parameter indented by four: "    name type doc [default ...]".
std::vector<StageDoc> parse_stages(const std::string& text) {
  std::vector<StageDoc> stages;
  std::size_t from = 0;
  while (from < text.size()) {
    std::size_t nl = text.find('\n', from);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(from, nl - from);
    from = nl + 1;
    if (line.empty()) continue;
    if (line[0] != ' ') {
      stages.push_back(StageDoc{first_word(line), {}});
    } else if (line.rfind("    ", 0) == 0 && !stages.empty()) {
      stages.back().params.push_back(first_word(line));
    }
  }
  return stages;
}

// The text of the section headed "### name", up to the next heading of level 2 or 3; empty
// when there is none.
std::string section(const std::string& doc, const std::string& name) {
  const std::string heading = "\n### " + name + "\n";
  const std::size_t at = doc.find(heading);
  if (at == std::string::npos) return {};
  const std::size_t body = at + heading.size();
  std::size_t end = doc.size();
  for (const char* next : {"\n## ", "\n### "}) {
    const std::size_t n = doc.find(next, body);
    if (n != std::string::npos && n < end) end = n;
  }
  return doc.substr(body, end - body);
}

class StagesDocTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* src = std::getenv("RIVUS_SOURCE_DIR");
    ASSERT_NE(src, nullptr) << "RIVUS_SOURCE_DIR is not set (ctest sets it)";
    doc_ = read_file(std::string(src) + "/docs/stages.md");
    ASSERT_FALSE(doc_.empty()) << "cannot read docs/stages.md";
    const auto r = run_process({rivus_bin(), "stages"}, 60s);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    stages_ = parse_stages(r.out);
    ASSERT_GE(stages_.size(), 10u) << r.out;
  }
  std::string doc_;
  std::vector<StageDoc> stages_;
};

TEST_F(StagesDocTest, EveryStageHasATableRowAndASection) {
  for (const StageDoc& s : stages_) {
    EXPECT_NE(doc_.find("| [`" + s.name + "`](#" + s.name + ") |"), std::string::npos)
        << "docs/stages.md: no table row for stage '" << s.name << "'";
    EXPECT_FALSE(section(doc_, s.name).empty())
        << "docs/stages.md: no section '### " << s.name << "'";
  }
}

TEST_F(StagesDocTest, EverySectionNamesEveryParameterOfItsStage) {
  for (const StageDoc& s : stages_) {
    const std::string text = section(doc_, s.name);
    if (text.empty()) continue;  // reported by the test above
    for (const std::string& p : s.params) {
      EXPECT_NE(text.find("`" + p + "`"), std::string::npos)
          << "docs/stages.md: section '" << s.name << "' does not mention parameter `" << p << "`";
    }
  }
}

TEST(StagesDocParseTest, ReadsStagesAndParameters) {
  const auto stages = parse_stages(
      "range (source), 1 worker\n  the integers\n    start      int       first [default 0]\n"
      "    count      int       how many (required)\npassthrough (transform)\n  every record\n");
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0].name, "range");
  EXPECT_EQ(stages[0].params, (std::vector<std::string>{"start", "count"}));
  EXPECT_EQ(stages[1].name, "passthrough");
  EXPECT_TRUE(stages[1].params.empty());
  EXPECT_EQ(section("x\n### a\nbody `p`\n### b\nother\n", "a"), "body `p`");
  EXPECT_EQ(section("x\n### a\nbody\n## Sinks\n", "a"), "body");
  EXPECT_EQ(section("x\n### ab\nbody\n", "a"), "");
}

}  // namespace
}  // namespace rivus::testing
