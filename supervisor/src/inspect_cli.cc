// Inspection subcommands: read live segments from another process.
#include <cstdio>
#include <ctime>

#include "cli_commands.h"
#include "metrics.h"
#include "rivus/supervisor/supervisor.h"

namespace rivus::detail {

void add_inspect_commands(CLI::App& app, int& rc) {
  auto* ls = app.add_subcommand("ls", "list live pipelines and stale segments");
  ls->callback([&rc] {
    const auto segs = list_segments();
    std::printf("%-24s %8s %-10s %s\n", "PIPELINE", "PID", "STATE", "SEGMENT");
    for (const auto& s : segs) {
      const char* state = !s.valid ? "corrupt" : !s.live ? "stale" : run_state_name(s.run_state);
      std::printf("%-24s %8d %-10s %s\n", s.pipeline.c_str(), s.pid, state, s.name.c_str());
    }
    rc = kExitOk;
  });
}

}  // namespace rivus::detail
