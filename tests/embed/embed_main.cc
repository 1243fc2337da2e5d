// `rivus-embed`: a program that registers its own stages and hands main to rivus::cli_main, so
// it is a `rivus` that also knows them (`rivus-embed stages`, `rivus-embed run spec.yaml`).
#include <string>

#include "rivus/rivus.h"

namespace {

// Wraps each record in `open` and `close`.
class WrapStage final : public rivus::Stage {
 public:
  rivus::Status open(rivus::StageContext& ctx) override {
    open_ = ctx.params->get_string("open");
    close_ = ctx.params->get_string("close");
    return rivus::Status::Ok();
  }
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) out.emit(r, open_ + std::string(r.data) + close_);
  }

 private:
  std::string open_, close_;
};

}  // namespace

RIVUS_REGISTER_STAGE(wrap, rivus::StageInfo{
                               .name = "wrap",
                               .role = rivus::StageRole::kTransform,
                               .summary = "embed test: wraps records in open/close",
                               .params = {{"open", rivus::ParamType::kString, "[", "text before"},
                                          {"close", rivus::ParamType::kString, "]", "text after"}},
                               .make_stage = [] { return std::make_unique<WrapStage>(); }});

RIVUS_REGISTER_STAGE(cube, rivus::function_stage_info("cube", "embed test: n -> n^3",
                                                      [](std::int64_t n) { return n * n * n; }));

int main(int argc, char** argv) { return rivus::cli_main(argc, argv); }
