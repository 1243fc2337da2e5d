// The `rivus` command line as a library call, so that a program with its own stages can be a
// `rivus` binary that also knows them (register the stages, then return cli_main(argc, argv)).
#pragma once

namespace rivus {

// Parses argv and runs the subcommand; returns the process exit code (docs/cli.md).
int cli_main(int argc, char** argv);

}  // namespace rivus
