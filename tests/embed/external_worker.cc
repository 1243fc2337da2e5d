// `rivus-external-test`: an external worker program for the tests (use: external).
//   --suffix S   appends S to every record (default "")
//   --segv R     segfaults on record R
// Each record r becomes "EXT" + r + suffix.
#include <signal.h>

#include <string>

#include "rivus/worker/external.h"

namespace {

struct Options {
  std::string suffix;
  std::string segv;
};

class ExternalTestStage final : public rivus::Stage {
 public:
  explicit ExternalTestStage(Options o) : o_(std::move(o)) {}
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) {
      if (!o_.segv.empty() && r.data == o_.segv) raise(SIGSEGV);
      buf_ = "EXT";
      buf_.append(r.data);
      buf_ += o_.suffix;
      out.emit(r, buf_);
    }
  }

 private:
  Options o_;
  std::string buf_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--suffix") o.suffix = argv[i + 1];
    if (flag == "--segv") o.segv = argv[i + 1];
  }
  return rivus::worker::external_main(argc, argv,
                                      [o] { return std::make_unique<ExternalTestStage>(o); });
}
