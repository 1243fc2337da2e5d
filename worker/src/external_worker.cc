// External workers: the plan's JSON encoding and the main of an external worker program.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>

#include "rivus/shm/segment.h"
#include "rivus/worker/external.h"

namespace rivus::worker {
namespace {

using json = nlohmann::json;

json params_json(const Params& p) {
  json out = json::object();
  for (const auto& [name, value] : p.values()) {
    std::visit([&, &n = name](const auto& v) { out[n] = v; }, value);
  }
  return out;
}

Params params_from(const json& j) {
  Params p;
  for (const auto& [name, v] : j.items()) {
    if (v.is_boolean()) {
      p.set(name, v.get<bool>());
    } else if (v.is_number_integer()) {
      p.set(name, v.get<std::int64_t>());
    } else if (v.is_number()) {
      p.set(name, v.get<double>());
    } else if (v.is_string()) {
      p.set(name, v.get<std::string>());
    } else if (v.is_array()) {
      p.set(name, v.get<std::vector<std::string>>());
    }
  }
  return p;
}

json key_by_json(const KeyBySpec& k) {
  return {{"kind", static_cast<int>(k.kind)},
          {"field", k.field},
          {"separator", static_cast<int>(static_cast<unsigned char>(k.separator))}};
}

KeyBySpec key_by_from(const json& j) {
  KeyBySpec k;
  k.kind = static_cast<KeyByKind>(j.at("kind").get<int>());
  k.field = j.at("field").get<std::uint32_t>();
  k.separator = static_cast<char>(j.at("separator").get<int>());
  return k;
}

}  // namespace

std::string encode_plan(const WorkerPlan& plan) {
  const StageSpec& s = *plan.stage;
  json stage = {
      {"name", s.name},
      {"use", s.use},
      {"with", params_json(s.with)},
      {"workers", s.workers},
      {"batch",
       {{"records", s.batch.records},
        {"bytes", s.batch.bytes},
        {"linger_ns", s.batch.linger.count()}}},
      {"key_by", key_by_json(s.key_by)},
      {"ordered", s.ordered},
      {"timeout_ns", s.timeout.count()},
      {"limits", {{"memory", s.limits.memory}, {"cpu_ns", s.limits.cpu.count()}}},
      {"retry",
       {{"max_retries", s.retry.max_retries},
        {"delay_ns", s.retry.delay.count()},
        {"backoff", s.retry.backoff}}},
      {"restart",
       {{"max_restarts", s.restart.max_restarts},
        {"window_ns", s.restart.window.count()},
        {"backoff_ns", s.restart.backoff.count()}}},
  };
  json j = {{"version", kPlanVersion},
            {"pipeline", plan.pipeline},
            {"slot", plan.slot},
            {"stage_index", plan.stage_index},
            {"index_in_stage", plan.index_in_stage},
            {"inputs", plan.inputs},
            {"outputs", plan.outputs},
            {"route", key_by_json(plan.route)},
            {"route_batch", plan.route_batch},
            {"merge_in_order", plan.merge_in_order},
            {"publish_watermarks", plan.publish_watermarks},
            {"dead_letter_path", plan.dead_letter_path},
            {"stage", std::move(stage)}};
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
    const json& s = j.at("stage");
    StageSpec& st = out->stage;
    st.name = s.at("name").get<std::string>();
    st.use = s.at("use").get<std::string>();
    st.with = params_from(s.at("with"));
    st.workers = s.at("workers").get<std::uint32_t>();
    st.batch.records = s.at("batch").at("records").get<std::uint32_t>();
    st.batch.bytes = s.at("batch").at("bytes").get<std::uint64_t>();
    st.batch.linger = nanoseconds(s.at("batch").at("linger_ns").get<std::int64_t>());
    st.key_by = key_by_from(s.at("key_by"));
    st.ordered = s.at("ordered").get<bool>();
    st.timeout = nanoseconds(s.at("timeout_ns").get<std::int64_t>());
    st.limits.memory = s.at("limits").at("memory").get<std::uint64_t>();
    st.limits.cpu = nanoseconds(s.at("limits").at("cpu_ns").get<std::int64_t>());
    st.retry.max_retries = s.at("retry").at("max_retries").get<std::uint32_t>();
    st.retry.delay = nanoseconds(s.at("retry").at("delay_ns").get<std::int64_t>());
    st.retry.backoff = s.at("retry").at("backoff").get<double>();
    st.restart.max_restarts = s.at("restart").at("max_restarts").get<std::uint32_t>();
    st.restart.window = nanoseconds(s.at("restart").at("window_ns").get<std::int64_t>());
    st.restart.backoff = nanoseconds(s.at("restart").at("backoff_ns").get<std::int64_t>());

    out->info = std::move(info);
    out->info.name = st.use;
    out->info.role = StageRole::kTransform;
    st.info = &out->info;

    WorkerPlan& p = out->plan;
    p.pipeline = j.at("pipeline").get<std::string>();
    p.slot = j.at("slot").get<std::uint32_t>();
    p.stage_index = j.at("stage_index").get<std::uint32_t>();
    p.index_in_stage = j.at("index_in_stage").get<std::uint32_t>();
    p.stage = &out->stage;
    p.inputs = j.at("inputs").get<std::vector<std::uint32_t>>();
    p.outputs = j.at("outputs").get<std::vector<std::uint32_t>>();
    p.route = key_by_from(j.at("route"));
    p.route_batch = j.value("route_batch", 1024u);
    p.merge_in_order = j.at("merge_in_order").get<bool>();
    p.publish_watermarks = j.at("publish_watermarks").get<bool>();
    p.dead_letter_path = j.at("dead_letter_path").get<std::string>();
  } catch (const json::exception& e) {
    return Status::Corrupt(std::string("cannot read the worker plan: ") + e.what());
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
  spdlog::shutdown();
  std::fflush(nullptr);
  return code;
}

}  // namespace rivus::worker
