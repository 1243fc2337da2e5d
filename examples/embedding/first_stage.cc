// The first stage of docs/embedding.md: upper-case every line of a file with two workers.
#include <rivus/embed/pipeline.h>

#include <cctype>
#include <cstdio>

class Upper : public rivus::Stage {
 public:
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) {
      buf_.assign(r.data);
      for (char& c : buf_) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.emit(r, buf_);  // the output inherits the input's sequence number
    }
  }

 private:
  std::string buf_;
};

int main(int argc, char** argv) {
  const auto report =
      (rivus::lines(argc > 1 ? argv[1] : "input.txt") >>
       rivus::stage<Upper>().name("upper").workers(2) >> rivus::to_file("upper.txt").ordered())
          .name("first-stage")
          .run();
  std::printf("%s: %llu lines upper-cased\n", report.status().c_str(),
              static_cast<unsigned long long>(report.records_out("upper")));
  return report.exit_code();
}
