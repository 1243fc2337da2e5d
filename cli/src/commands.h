// Subcommands of the `rivus` CLI, grouped by file. Each add_* function registers its
// subcommands on `app`; a subcommand's callback stores the process exit code in `rc`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "rivus/base/status.h"

namespace rivus::cli {

void add_run_commands(CLI::App& app, int& rc);  // run, validate, stages, clean (run_commands.cc)
void add_inspect_commands(CLI::App& app, int& rc);  // ls, stat, top, report (inspect_commands.cc)

// The `rivus` exit code for a resolve or attach error: 4 not found, 5 corrupt or another
// version, 2 ambiguous, 1 otherwise (docs/cli.md).
int exit_code_for(const Status& s);

// Prints "rivus: <message>" on stderr, with the message made printable (base/text.h): messages
// quote spec text, paths and reasons, which may hold control bytes or invalid UTF-8.
void print_error(const std::string& message);

// The command line cli_main() was called with (for handing a spec to `python3 -m rivus`).
std::vector<std::string>& command_line();

// A spec that uses `use: python` needs the Python package: runs the same command line as
// `python3 -m rivus ...` in place of this process (exec). Returns only if that cannot be done,
// after printing why; then the caller reports the spec error as it is.
void hand_to_python(const Status& spec_error);

}  // namespace rivus::cli
