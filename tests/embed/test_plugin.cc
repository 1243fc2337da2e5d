// A test plugin (MODULE library linking only rivus::plugin_api): a class stage with a parameter
// and a lambda stage, both registered when `rivus --plugin` loads it.
#include <algorithm>
#include <cctype>
#include <string>

#include "rivus/runtime/function_stage.h"
#include "rivus/runtime/stage.h"

namespace {

// Upper-cases each record and appends `mark` (default "!").
class ShoutStage final : public rivus::Stage {
 public:
  rivus::Status open(rivus::StageContext& ctx) override {
    mark_ = ctx.params->get_string("mark");
    return rivus::Status::Ok();
  }
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) {
      buf_.assign(r.data);
      std::transform(buf_.begin(), buf_.end(), buf_.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      buf_ += mark_;
      out.emit(r, buf_);
    }
  }

 private:
  std::string mark_;
  std::string buf_;
};

}  // namespace

RIVUS_REGISTER_STAGE(shout, rivus::StageInfo{
                                .name = "shout",
                                .role = rivus::StageRole::kTransform,
                                .summary = "plugin test: upper-cases records and appends a mark",
                                .params = {{"mark", rivus::ParamType::kString, "!",
                                            "appended to every record"}},
                                .make_stage = [] { return std::make_unique<ShoutStage>(); }});

RIVUS_REGISTER_STAGE(halve, rivus::function_stage_info(
                                "halve", "plugin test: even integers halved, odd ones dropped",
                                [](std::int64_t i) -> std::optional<std::int64_t> {
                                  if (i % 2 != 0) return std::nullopt;
                                  return i / 2;
                                }));
