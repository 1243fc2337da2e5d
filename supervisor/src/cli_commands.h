// Subcommands of the `rivus` CLI, grouped by file. Each add_* function registers its
// subcommands on `app`; a subcommand's callback stores the process exit code in `rc`.
#pragma once

#include <CLI/CLI.hpp>

namespace rivus::detail {

void add_run_commands(CLI::App& app, int& rc);      // run, validate, stages, clean (cli.cc)
void add_inspect_commands(CLI::App& app, int& rc);  // ls, stat, top, report (inspect_cli.cc)

}  // namespace rivus::detail
