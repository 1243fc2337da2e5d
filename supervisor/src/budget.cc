// The dead-letter budget (spec: dead_letter.max, dead_letter.max_ratio): a stage that gives up on
// more records than it may fails the run with exit code 6, naming the stage and the first reasons,
// instead of "finishing" a run that lost its data (docs/fault-tolerance.md, "Failure budgets").
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "rivus/base/text.h"
#include "rivus/shm/atomic.h"
#include "supervisor_core.h"

namespace rivus::supervisor {

using shm::load_relaxed;

// Entries of earlier runs stay in the file: only what this run appends is this run's.
void Supervisor::note_dead_letter_start() {
  struct stat st {};
  dead_letter_start_ =
      ::stat(spec_.dead_letter_path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// Live (every tick) a stage is judged once it has taken in DeadLetterBudget::kMinRecords, so that
// the first bad record of a run is not "100 %"; at the end (final) on whatever it took in.
void Supervisor::check_dead_letter_budget(bool final) {
  if (failed_stage_ >= 0) return;
  const DeadLetterBudget& budget = spec_.dead_letter_budget;
  for (std::uint32_t s = 0; s < spec_.stages.size(); ++s) {
    std::uint64_t dead = 0;
    std::uint64_t handled = 0;
    const bool source = spec_.stages[s].info->role == StageRole::kSource;
    for (std::uint32_t w = 0; w < spec_.stages[s].workers; ++w) {
      const shm::WorkerCounters& c = seg_->worker(plan_.first_worker[s] + w).counters;
      dead += load_relaxed(c.dead_letters);
      handled += load_relaxed(source ? c.records_out : c.records_in);
    }
    if (dead == 0) continue;
    // A record that killed its worker is counted in by the dead worker and again by the one
    // that replays it: `handled` may overcount a little, never undercount.
    handled = std::max(handled, dead);
    std::string why;
    char share[64];
    std::snprintf(share, sizeof share, "%.1f%%",
                  100.0 * static_cast<double>(dead) / static_cast<double>(handled));
    if (budget.max != DeadLetterBudget::kNoLimit && dead > budget.max) {
      why = std::to_string(dead) + " records dead-lettered, more than dead_letter.max (" +
            std::to_string(budget.max) + ")";
    } else if (budget.max_ratio < 1.0 && (final || handled >= DeadLetterBudget::kMinRecords) &&
               static_cast<double>(dead) > budget.max_ratio * static_cast<double>(handled)) {
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "%g", budget.max_ratio);
      why = std::to_string(dead) + " of " + std::to_string(handled) + " records dead-lettered (" +
            share + "), more than dead_letter.max_ratio (" + ratio + ")";
    }
    if (why.empty()) continue;
    const std::string& name = spec_.stages[s].name;
    std::string reasons;
    for (const std::string& r : first_reasons(name, 3))
      reasons += (reasons.empty() ? "" : "; ") + r;
    budget_exceeded_ = true;
    fail_stage(s, "stage '" + name + "' exceeded its dead-letter budget: " + why +
                      (reasons.empty() ? "" : "; first reasons: " + reasons) + " (see " +
                      spec_.dead_letter_path + ")");
    return;
  }
}

// The first `most` distinct error texts this run wrote for `stage` to the dead-letter file.
std::vector<std::string> Supervisor::first_reasons(const std::string& stage,
                                                   std::size_t most) const {
  constexpr std::size_t kMaxScan = 4 << 20;  // bytes of the file to look through at most
  std::vector<std::string> out;
  std::ifstream in(spec_.dead_letter_path, std::ios::binary);
  if (!in) return out;
  in.seekg(static_cast<std::streamoff>(dead_letter_start_));
  std::set<std::string> seen;
  std::string line;
  std::size_t scanned = 0;
  while (out.size() < most && scanned < kMaxScan && std::getline(in, line)) {
    scanned += line.size() + 1;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("stage", "") != stage) continue;
    std::string error = j.contains("error") && j["error"].is_string()
                            ? j["error"].get<std::string>()
                            : std::string("unknown");
    if (error.size() > 200) error = error.substr(0, 200) + "...";
    if (seen.insert(error).second) out.push_back(base::printable(error));
  }
  return out;
}

}  // namespace rivus::supervisor
