// `words`: a program with its own stages, runnable two ways.
//   words demo INPUT        builds a pipeline in code, runs it, checks its output
//   words <rivus command>   is the rivus CLI, knowing `tokenize` and `shout` too:
//                           words stages | words run words.yaml | words validate ...
#include <rivus/rivus.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// A class stage with a parameter: splits each line into words of at least min_length letters.
class Tokenize final : public rivus::Stage {
 public:
  rivus::Status open(rivus::StageContext& ctx) override {
    min_length_ = static_cast<std::size_t>(ctx.params->get_int("min_length"));
    return rivus::Status::Ok();
  }
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) {
      std::size_t start = 0;
      while (start <= r.data.size()) {
        std::size_t end = r.data.find(' ', start);
        if (end == std::string_view::npos) end = r.data.size();
        if (end - start >= min_length_) out.emit(r, r.data.substr(start, end - start));
        start = end + 1;
      }
    }
  }

 private:
  std::size_t min_length_ = 1;
};

std::string shout(std::string word) {
  for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return word + "!";
}

}  // namespace

// Registered by name: usable from YAML (`use: tokenize`) and listed by `words stages`.
RIVUS_REGISTER_STAGE(tokenize,
                     rivus::StageInfo{.name = "tokenize",
                                      .role = rivus::StageRole::kTransform,
                                      .summary = "splits lines into words",
                                      .params = {{"min_length", rivus::ParamType::kInt, "1",
                                                  "shortest word kept"}},
                                      .make_stage = [] { return std::make_unique<Tokenize>(); }});
RIVUS_REGISTER_STAGE(shout,
                     rivus::function_stage_info("shout", "upper-cases a word, adds !", shout));

namespace {

int demo(const std::string& input) {
  // Words of 5+ letters, shouted, in input order; then the squares of 0..99, typed.
  const auto words =
      (rivus::lines(input) >> rivus::use("tokenize").with("min_length", 5).workers(2) >>
       rivus::stage(shout).name("shout") >> rivus::to_file("demo-words.out").ordered())
          .name("words-demo")
          .run();
  const auto squares =
      (rivus::range(0, 100) >>
       rivus::stage([](std::int64_t i) { return i * i; }).name("square").workers(2) >>
       rivus::filter([](std::int64_t sq) { return sq % 2 == 0; }) >>
       rivus::to_file("demo-squares.out").ordered())
          .name("squares-demo")
          .run();
  if (!words.ok() || !squares.ok()) {
    std::fprintf(stderr, "demo failed: %s%s\n", words.failure().c_str(), squares.failure().c_str());
    return 1;
  }
  std::vector<std::string> expected_words;
  std::ifstream in(input);
  for (std::string w; in >> w;) {
    if (w.size() >= 5) expected_words.push_back(shout(w));
  }
  std::vector<std::string> got;
  std::ifstream out("demo-words.out");
  for (std::string line; std::getline(out, line);) got.push_back(line);
  std::int64_t sum = 0;
  std::ifstream sq("demo-squares.out");
  for (std::string line; std::getline(sq, line);) sum += std::stoll(line);
  std::int64_t expected_sum = 0;
  for (std::int64_t i = 0; i < 100; i += 2) expected_sum += i * i;
  if (got != expected_words || sum != expected_sum) {
    std::fprintf(stderr, "demo: wrong output (%zu words, sum %lld)\n", got.size(),
                 static_cast<long long>(sum));
    return 1;
  }
  std::printf("demo: %llu words shouted, squares sum %lld; report:\n%s",
              static_cast<unsigned long long>(words.records_out("shout")),
              static_cast<long long>(sum), words.summary().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "demo") return demo(argc >= 3 ? argv[2] : "input.txt");
  return rivus::cli_main(argc, argv);
}
