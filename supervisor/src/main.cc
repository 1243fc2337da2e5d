// The `rivus` binary: a thin main over the supervisor library.
#include "rivus/supervisor/cli.h"

int main(int argc, char** argv) { return rivus::cli_main(argc, argv); }
