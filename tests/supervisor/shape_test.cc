// The record-shaping stages end to end, with real worker processes: a word count (lines -> split
// -> count over two workers -> file) checked against `tr | sort | uniq -c`, the same with count
// workers SIGKILLed mid-stream, the same pipeline built in code, a count pool without key_by, and
// json -> filter -> map with bad records dead-lettered.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process_util.h"
#include "rivus/embed/pipeline.h"

namespace rivus::testing {
namespace {

using namespace std::chrono_literals;
using Counts = std::map<std::string, std::uint64_t>;

// A few hundred KB of English-like text, the same every run: mixed case, punctuation, digits,
// apostrophes, blank lines, and a first line that starts with a non-letter (so `tr` gives an
// empty first word). A vocabulary of common words plus rarer made-up ones gives a long tail of
// keys counted once or twice.
std::string english_like_text(std::size_t bytes) {
  static const char* const kWords[] = {
      "the",    "of",    "and",     "to",      "a",      "in",     "is",    "it",     "you",
      "that",   "he",    "was",     "for",     "on",     "are",    "with",  "as",     "I",
      "his",    "they",  "be",      "at",      "one",    "have",   "this",  "from",   "or",
      "had",    "by",    "word",    "but",     "what",   "some",   "we",    "can",    "out",
      "other",  "were",  "all",     "there",   "when",   "up",     "use",   "your",   "how",
      "said",   "an",    "each",    "she",     "which",  "do",     "their", "time",   "if",
      "will",   "way",   "about",   "many",    "then",   "them",   "write", "would",  "like",
      "so",     "these", "her",     "long",    "make",   "thing",  "see",   "him",    "two",
      "river",  "pipe",  "worker",  "process", "record", "stream", "batch", "window", "commit",
      "memory", "ring",  "segment", "crash",   "replay", "key",    "count", "split",  "filter"};
  static const char* const kPunct[] = {" ",   " ",   " ",  " ",  ", ",  ". ",   "; ",   "! ", "? ",
                                       " - ", "'s ", " (", ") ", "\" ", " 42 ", "... ", ": "};
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  const auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::string text = "1. ";
  std::size_t line = 0;
  while (text.size() < bytes) {
    std::string w;
    const std::uint64_t r = next();
    if (r % 10 == 0) {  // a rarer word: made up from syllables
      static const char* const kSyl[] = {"ka", "lo", "mir", "ve", "tan", "su", "rho", "qe"};
      for (std::uint64_t n = 2 + (r >> 8) % 3, s = r >> 16; n > 0; --n, s /= 8) w += kSyl[s % 8];
    } else {
      w = kWords[(r >> 8) % std::size(kWords)];
    }
    switch ((r >> 32) % 12) {
      case 0:  // Capitalised
        w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
        break;
      case 1:  // SHOUTED
        for (char& c : w) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        break;
      case 2:  // mIxEd
        for (std::size_t i = 1; i < w.size(); i += 2) {
          w[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[i])));
        }
        break;
      default:
        break;
    }
    text += w;
    text += kPunct[(r >> 40) % std::size(kPunct)];
    line += w.size() + 2;
    if (line > 70) {
      text += (r >> 48) % 9 == 0 ? "\n\n" : "\n";
      line = 0;
    }
  }
  return text;
}

// What `tr -cs A-Za-z '\n' < path | sort | uniq -c` says, as word -> count (the empty "word" a
// leading non-letter gives is dropped).
Counts counts_by_tr(const std::string& path) {
  const auto r = run_process(
      {"/bin/sh", "-c",
       "LC_ALL=C tr -cs A-Za-z '\\n' < '" + path + "' | LC_ALL=C sort | LC_ALL=C uniq -c"},
      120s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Counts c;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::uint64_t n = 0;
    std::string word;
    fields >> n >> word;
    if (!word.empty()) c[word] += n;
  }
  return c;
}

// The count stage's output: "word<TAB>count" lines. A word seen twice would be a key counted on
// two workers (or a duplicate); it fails the test.
Counts counts_from_output(const std::string& path) {
  Counts c;
  for (const std::string& line : read_lines(path)) {
    const std::size_t tab = line.find('\t');
    EXPECT_NE(tab, std::string::npos) << "not word<TAB>count: '" << line << "'";
    if (tab == std::string::npos) continue;
    const std::string word = line.substr(0, tab);
    EXPECT_EQ(c.count(word), 0u) << "'" << word << "' is in the output twice";
    c[word] = std::stoull(line.substr(tab + 1));
  }
  return c;
}

// The word count of docs/stages.md, with the paths filled in; `settings` go before `stages:`.
std::string word_count_spec(const std::string& name, const std::string& in, const std::string& out,
                            const std::string& settings = "") {
  return "name: " + name + "\n" + settings +
         "stages:\n"
         "  - {name: text, use: lines, with: {path: " +
         in +
         "}}\n"
         "  - {name: words, use: split, with: {regex: \"[^A-Za-z]+\"}}\n"
         "  - {name: tally, use: count, workers: 2, key_by: record}\n"
         "  - {name: out, use: file, with: {path: " +
         out + "}}\n";
}

void expect_same_counts(const Counts& got, const Counts& want) {
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(got.size(), want.size()) << "distinct words";
  std::size_t shown = 0;
  for (const auto& [word, n] : want) {
    const auto it = got.find(word);
    const std::uint64_t g = it == got.end() ? 0 : it->second;
    if (g != n && shown++ < 10) ADD_FAILURE() << "'" << word << "': got " << g << ", want " << n;
  }
  EXPECT_TRUE(got == want);
}

TEST(WordCountTest, MatchesTrSortUniqOnGeneratedText) {
  TempDir dir;
  const std::string in = dir.write("book.txt", english_like_text(std::size_t{400} << 10));
  const std::string spec =
      dir.write("wc.yaml", word_count_spec("wordcount", in, dir.file("counts.tsv")));
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 180s);
  ASSERT_FALSE(r.timed_out) << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_counts(counts_from_output(dir.file("counts.tsv")), counts_by_tr(in));
}

TEST(WordCountTest, MatchesTrSortUniqOnTheGplText) {
  const std::string gpl = "/usr/share/common-licenses/GPL-3";
  if (access(gpl.c_str(), R_OK) != 0) GTEST_SKIP() << gpl << " is not on this machine";
  TempDir dir;
  const std::string spec =
      dir.write("wc.yaml", word_count_spec("wordcountgpl", gpl, dir.file("counts.tsv")));
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 180s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_counts(counts_from_output(dir.file("counts.tsv")), counts_by_tr(gpl));
}

// Writes `input` into the FIFO in `chunks` pieces cut at line ends; after each piece but the
// last, SIGKILLs count worker tally#(i%2) and waits for the supervisor to replace it. Returns
// what went wrong, or "".
std::string feed_and_kill(const std::string& fifo, const std::string& input, int chunks, pid_t sup,
                          std::atomic<int>& kills) {
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  int fd = -1;
  while (fd < 0) {  // non-blocking open fails with ENXIO until the source opens its end
    fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && (errno != ENXIO || std::chrono::steady_clock::now() > deadline)) {
      return std::string("opening the FIFO: ") + std::strerror(errno);
    }
    if (fd < 0) std::this_thread::sleep_for(2ms);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::size_t from = 0;
  for (int i = 0; i < chunks; ++i) {
    const std::size_t to =
        i + 1 == chunks ? input.size() : input.find('\n', input.size() * (i + 1) / chunks) + 1;
    for (std::size_t at = from; at < to;) {
      const ssize_t w = write(fd, input.data() + at, to - at);
      if (w < 0) {
        close(fd);
        return std::string("writing the FIFO: ") + std::strerror(errno);
      }
      at += static_cast<std::size_t>(w);
    }
    from = to;
    if (i + 1 == chunks) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 3));
    const std::string name = "tally#" + std::to_string(i % 2);
    const pid_t victim = wait_for_child_named(sup, name);  // it names itself just after fork
    if (victim < 0 || kill(victim, SIGKILL) != 0) {
      close(fd);
      return "no live worker named " + name + " after chunk " + std::to_string(i);
    }
    kills.fetch_add(1);
    if (wait_for_child_named(sup, name, victim) < 0) {  // the replacement carries the same name
      close(fd);
      return "no replacement for " + name + " after chunk " + std::to_string(i);
    }
  }
  close(fd);
  return "";
}

// The source reads a FIFO that the test fills chunk by chunk, SIGKILLing a count worker after
// each chunk and waiting for its replacement, so every kill lands mid-stream however fast the
// machine runs the pipeline. Small batches make many commits, so kills land between them.
TEST(WordCountTest, KilledCountWorkersStillGiveExactCounts) {
  TempDir dir;
  const int chunks = 10;
  const std::string input = english_like_text(std::size_t{200} << 10);
  const std::string copy = dir.write("book.txt", input);  // for tr
  const std::string fifo = dir.file("book.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const std::string spec =
      dir.write("wc.yaml", word_count_spec("wordcountkill", fifo, dir.file("counts.tsv"),
                                           "ring: {capacity: 256KiB}\n"
                                           "batch: {records: 50, linger: 1ms}\n"
                                           "restart: {max_restarts: 100000, window: 1s}\n"));
  signal(SIGPIPE, SIG_IGN);  // a failed run closes the FIFO; the write then reports EPIPE
  std::atomic<int> kills{0};
  std::string feeder_error;
  std::thread feeder;
  const auto r = run_process({rivus_bin(), "run", spec, "--report", dir.file("r.json"), "--quiet"},
                             300s, {}, [&](pid_t sup) {
                               feeder = std::thread([&, sup] {
                                 feeder_error = feed_and_kill(fifo, input, chunks, sup, kills);
                               });
                             });
  feeder.join();
  ASSERT_EQ(feeder_error, "");
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(0, 3000);
  expect_same_counts(counts_from_output(dir.file("counts.tsv")), counts_by_tr(copy));
  const auto report = nlohmann::json::parse(read_file(dir.file("r.json")));
  EXPECT_EQ(kills.load(), chunks - 1);
  EXPECT_EQ(report["stages"][2]["restarts"].get<int>(), kills.load());
}

TEST(CountPoolTest, WithoutKeyByTheStageFailsToStartNamingKeyBy) {
  TempDir dir;
  const std::string in = dir.write("in.txt", "a\nb\na\n");
  const std::string spec = dir.write("p.yaml",
                                     "name: nokey\n"
                                     "stages:\n"
                                     "  - {name: text, use: lines, with: {path: " +
                                         in +
                                         "}}\n"
                                         "  - {name: tally, use: count, workers: 2}\n"
                                         "  - {name: out, use: file, with: {path: " +
                                         dir.file("out.txt") + "}}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("count with workers: 2 needs key_by (key_by: record)"), std::string::npos)
      << r.err;
}

// json -> filter -> map: the good records come out in order; invalid JSON and a non-numeric
// field are dead-lettered with the stages' own messages.
TEST(ShapePipelineTest, JsonFilterMapWithBadRecordsDeadLettered) {
  TempDir dir;
  const std::string in = dir.write("events.jsonl",
                                   "{\"e\": {\"csv\": \"login,ann,31\"}}\n"
                                   "{\"e\": {\"csv\": \"login,kid,9\"}}\n"
                                   "this is not json\n"
                                   "{\"other\": 1}\n"
                                   "{\"e\": {\"csv\": \"logout,bo,x\"}}\n"
                                   "{\"e\": {\"csv\": \"logout,cy,40\"}}\n");
  const std::string spec =
      dir.write("p.yaml",
                "name: shaping\n"
                "retry: {max_retries: 0}\n"
                "dead_letter: {path: " +
                    dir.file("dead.jsonl") +
                    "}\n"
                    "stages:\n"
                    "  - {name: events, use: lines, with: {path: " +
                    in +
                    "}}\n"
                    "  - {name: row, use: json, with: {path: e.csv}}\n"
                    "  - {name: adults, use: filter, with: {field: 2, op: '>=', value: 18}}\n"
                    "  - {name: pretty, use: map, with: {template: '{1} ({2}): {0}'}}\n"
                    "  - {name: out, use: file, with: {path: " +
                    dir.file("out.txt") + "}, ordered: true}\n");
  const auto r = run_process({rivus_bin(), "run", spec, "--quiet"}, 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_lines(dir.file("out.txt")),
            (std::vector<std::string>{"ann (31): login", "cy (40): logout"}));
  std::map<std::string, std::string> dead;  // record -> error
  for (const std::string& line : read_lines(dir.file("dead.jsonl"))) {
    const auto j = nlohmann::json::parse(line);
    dead[j["record"].get<std::string>()] = j["error"].get<std::string>();
  }
  EXPECT_EQ(dead, (std::map<std::string, std::string>{
                      {"this is not json", "json: record is not valid JSON at byte 2 of 16"},
                      {"logout,bo,x", "filter: field 2 is not a number: 'x'"}}));
}

// The same word count from C++: rivus::use() names the built-in stages. Last in the file: the
// supervisor runs inside this test process.
TEST(WordCountTest, BuiltInCodeGivesTheSameCounts) {
  TempDir dir;
  const std::string in = dir.write("book.txt", english_like_text(std::size_t{100} << 10));
  const auto report =
      (rivus::lines(in) >> rivus::use("split").with("regex", "[^A-Za-z]+") >>
       rivus::use("count").workers(2).key_by_record() >> rivus::to_file(dir.file("counts.tsv")))
          .name("wordcountcode")
          .run();
  ASSERT_TRUE(report.ok()) << report.failure();
  expect_same_counts(counts_from_output(dir.file("counts.tsv")), counts_by_tr(in));
}

}  // namespace
}  // namespace rivus::testing
