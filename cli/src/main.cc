// The `rivus` binary: a thin main over the cli library.
#include "rivus/cli/cli.h"

int main(int argc, char** argv) { return rivus::cli_main(argc, argv); }
