#include "rivus/cli/cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "commands.h"
#include "rivus/base/exit_codes.h"
#include "rivus/base/text.h"

namespace rivus {
namespace cli {

int exit_code_for(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return kExitNotFound;
    case StatusCode::kCorrupt:
    case StatusCode::kVersionMismatch:
      return kExitCorrupt;
    case StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitRuntimeFailure;
  }
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "rivus: %s\n", base::printable(message).c_str());
}

}  // namespace cli

int cli_main(int argc, char** argv) {
  CLI::App app{"rivus: multi-process shared-memory pipelines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rivus " RIVUS_VERSION);
  app.footer(
      "Exit codes: 0 ok, 1 runtime failure, 2 bad spec or usage, 3 stage failed,\n"
      "4 not found, 5 corrupt or incompatible segment, 6 dead-letter budget exceeded,\n"
      "130 interrupted. See docs/cli.md.");
  int rc = kExitOk;
  cli::add_run_commands(app, rc);
  cli::add_inspect_commands(app, rc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  } catch (const std::exception& e) {
    cli::print_error(std::string("internal error: ") + e.what());
    return kExitRuntimeFailure;
  }
  return rc;
}

}  // namespace rivus
