// `rivus-test`: the rivus CLI plus stages that exist only for tests (not shipped):
//   tag    — appends "|w<worker index>" to every record (which worker handled what);
//   fanout — emits "<record>.0" .. "<record>.<parts-1>" for every record (several outputs of one
//            input, which share its seq);
//   chaos  — passes records through, but misbehaves on the records its parameters name:
//            segfaults, aborts, throws, hangs or allocates without bound.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "rivus/cli/cli.h"
#include "rivus/runtime/stage.h"

namespace {

using namespace rivus;

class TagStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    suffix_ = "|w" + std::to_string(ctx.worker_index);
    return Status::Ok();
  }
  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      buf_.assign(r.data);
      buf_ += suffix_;
      out.emit(r, buf_);
    }
  }

 private:
  std::string suffix_;
  std::string buf_;
};

class SplitStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    parts_ = ctx.params->get_int("parts");
    return Status::Ok();
  }
  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      for (std::int64_t i = 0; i < parts_; ++i) {
        buf_.assign(r.data);
        buf_ += '.';
        buf_ += std::to_string(i);
        out.emit(r, buf_);
      }
    }
  }

 private:
  std::int64_t parts_ = 2;
  std::string buf_;
};

class ChaosStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    segv_ = ctx.params->get_list("segv");
    abort_ = ctx.params->get_list("abort");
    throw_ = ctx.params->get_list("throw");
    hang_ = ctx.params->get_list("hang");
    alloc_ = ctx.params->get_list("alloc");
    return Status::Ok();
  }
  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      const std::string rec(r.data);
      if (has(segv_, rec)) {
        volatile int* p = nullptr;
        *p = 1;  // SIGSEGV
      }
      if (has(abort_, rec)) std::abort();
      if (has(throw_, rec)) throw RecordError("chaos: refusing record " + rec);
      if (has(hang_, rec)) {
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      if (has(alloc_, rec)) {
        std::vector<std::vector<char>> hog;
        for (;;) {
          hog.emplace_back(16 << 20);
          std::memset(hog.back().data(), 1, hog.back().size());
        }
      }
      out.emit(r);
    }
  }

 private:
  static bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  std::vector<std::string> segv_, abort_, throw_, hang_, alloc_;
};

RIVUS_REGISTER_STAGE(tag,
                     StageInfo{.name = "tag",
                               .role = StageRole::kTransform,
                               .summary = "test stage: appends |w<worker index> to every record",
                               .make_stage = [] { return std::make_unique<TagStage>(); }});

RIVUS_REGISTER_STAGE(
    fanout,
    StageInfo{.name = "fanout",
              .role = StageRole::kTransform,
              .summary = "test stage: emits <record>.0 .. <record>.<parts-1> for every record",
              .params = {{"parts", ParamType::kInt, "2", "outputs per record"}},
              .make_stage = [] { return std::make_unique<SplitStage>(); }});

RIVUS_REGISTER_STAGE(
    chaos,
    StageInfo{
        .name = "chaos",
        .role = StageRole::kTransform,
        .summary =
            "test stage: passthrough that crashes, throws, hangs or allocates on chosen records",
        .params = {{"segv", ParamType::kStringList, "[]", "records that segfault"},
                   {"abort", ParamType::kStringList, "[]", "records that abort"},
                   {"throw", ParamType::kStringList, "[]", "records that throw"},
                   {"hang", ParamType::kStringList, "[]", "records that never return"},
                   {"alloc", ParamType::kStringList, "[]", "records that allocate without bound"}},
        .make_stage = [] { return std::make_unique<ChaosStage>(); }});

}  // namespace

int main(int argc, char** argv) { return rivus::cli_main(argc, argv); }
