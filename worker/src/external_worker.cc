// External workers: the plan's JSON encoding and the main of an external worker program.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>

#include "rivus/base/log.h"
#include "rivus/base/text.h"
#include "rivus/runtime/spec_json.h"
#include "rivus/shm/segment.h"
#include "rivus/worker/external.h"

namespace rivus::worker {
namespace {

using nlohmann::json;

}  // namespace

std::string encode_plan(const WorkerPlan& plan) {
  const json j = {{"version", kPlanVersion},
                  {"pipeline", plan.pipeline},
                  {"slot", plan.slot},
                  {"stage_index", plan.stage_index},
                  {"index_in_stage", plan.index_in_stage},
                  {"inputs", plan.inputs},
                  {"outputs", plan.outputs},
                  {"route", json::parse(key_by_json(plan.route))},
                  {"route_batch", plan.route_batch},
                  {"merge_in_order", plan.merge_in_order},
                  {"publish_watermarks", plan.publish_watermarks},
                  {"dead_letter_path", plan.dead_letter_path},
                  {"stage", json::parse(stage_json(*plan.stage))}};
  return j.dump();
}

Result<std::unique_ptr<ExternalPlan>> decode_plan(std::string_view text, StageInfo info) {
  auto out = std::make_unique<ExternalPlan>();
  try {
    const json j = json::parse(text);
    const int version = j.at("version").get<int>();
    if (version != kPlanVersion) {
      return Status::VersionMismatch("the supervisor sent a worker plan of version " +
                                     std::to_string(version) + "; this program reads version " +
                                     std::to_string(kPlanVersion) +
                                     " (rebuild it against the same Rivus as the supervisor)");
    }
    Result<StageSpec> stage = stage_from_json(j.at("stage").dump(), &out->info);
    if (!stage.ok()) return stage.status().with_context("cannot read the worker plan");
    out->stage = std::move(stage).value();
    out->info = std::move(info);
    out->info.name = out->stage.use;
    out->info.role = StageRole::kTransform;

    WorkerPlan& p = out->plan;
    p.pipeline = j.at("pipeline").get<std::string>();
    p.slot = j.at("slot").get<std::uint32_t>();
    p.stage_index = j.at("stage_index").get<std::uint32_t>();
    p.index_in_stage = j.at("index_in_stage").get<std::uint32_t>();
    p.stage = &out->stage;
    p.inputs = j.at("inputs").get<std::vector<std::uint32_t>>();
    p.outputs = j.at("outputs").get<std::vector<std::uint32_t>>();
    Result<KeyBySpec> route = key_by_from_json(j.at("route").dump());
    if (!route.ok()) return route.status().with_context("cannot read the worker plan");
    p.route = route.value();
    p.route_batch = j.at("route_batch").get<std::uint32_t>();
    p.merge_in_order = j.at("merge_in_order").get<bool>();
    p.publish_watermarks = j.at("publish_watermarks").get<bool>();
    p.dead_letter_path = j.at("dead_letter_path").get<std::string>();
  } catch (const json::exception& e) {
    return Status::Corrupt(std::string("cannot read the worker plan: ") +
                           base::json_error_text(e.what()));
  }
  return out;
}

bool started_as_external_worker() {
  return std::getenv(kEnvSegment) != nullptr && std::getenv(kEnvSlot) != nullptr &&
         std::getenv(kEnvPlan) != nullptr;
}

int external_main(int argc, char** argv, std::function<std::unique_ptr<Stage>()> make_stage) {
  (void)argc;
  const char* program = argv != nullptr && argv[0] != nullptr ? argv[0] : "external worker";
  if (!started_as_external_worker()) {
    std::fprintf(stderr,
                 "%s: this program is a Rivus external worker; the supervisor starts it for a "
                 "spec stage with `use: external` and `with: {program: %s}` (docs/embedding.md)\n",
                 program, program);
    return 2;
  }
  const auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "%s: %s\n", program, why.c_str());
    return kExitFatal;
  };

  StageInfo info;
  info.make_stage = std::move(make_stage);
  auto decoded = decode_plan(std::getenv(kEnvPlan), std::move(info));
  if (!decoded.ok()) return fail(decoded.status().message());
  ExternalPlan& ext = *decoded.value();

  const std::string slot_text = std::getenv(kEnvSlot);
  std::uint32_t slot = 0;
  const auto [end, ec] =
      std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot);
  if (ec != std::errc() || end != slot_text.data() + slot_text.size() || slot != ext.plan.slot) {
    return fail(std::string(kEnvSlot) + " is '" + slot_text + "', which does not match the plan");
  }

  auto seg = shm::Segment::attach(std::getenv(kEnvSegment), shm::Access::kReadWrite);
  if (!seg.ok()) return fail("cannot attach to the pipeline's segment: " + seg.status().message());
  const shm::Segment& segment = seg.value();
  // The supervisor asked the kernel to kill this process when it dies (PR_SET_PDEATHSIG before
  // exec); if it died before that, nobody would reap us: stop now.
  if (getppid() != segment.header().creator_pid) return kExitAborted;
  if (slot >= segment.worker_count() || segment.worker(slot).stage != ext.plan.stage_index) {
    return fail("worker slot " + std::to_string(slot) + " does not belong to stage '" +
                ext.stage.name + "' in segment " + segment.name());
  }

  int code = kExitFatal;
  try {
    code = run_worker(segment, ext.plan);
  } catch (const std::bad_alloc&) {
    code = kExitOutOfMemory;
  } catch (...) {
    code = kExitFatal;
  }
  base::shutdown_logging();
  std::fflush(nullptr);
  return code;
}

}  // namespace rivus::worker
