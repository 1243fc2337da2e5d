#include "rivus/cli/cli.h"

#include <limits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}

void hand_to_python(const Status& spec_error) {
  // The loader's message for an unregistered `python` stage (runtime/src/spec.cc).
  if (spec_error.message().find("uses unknown stage 'python'") == std::string::npos) return;
  if (std::getenv("RIVUS_IN_PYTHON") != nullptr) return;  // already there: report it as it is
  const char* python = std::getenv("RIVUS_PYTHON");
  const std::string interpreter = python != nullptr && *python != '\0' ? python : RIVUS_PYTHON_EXE;
  // The package beside this binary's build tree (build/bin/rivus -> build/python/rivus), else
  // wherever the interpreter finds it (cmake --install).
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir.resize(dir.rfind('/'));
    const std::string package = dir + "/../python";
    if (::access((package + "/rivus/__init__.py").c_str(), R_OK) == 0) {
      const char* old = std::getenv("PYTHONPATH");
      const std::string path = old != nullptr && *old != '\0' ? package + ":" + old : package;
      ::setenv("PYTHONPATH", path.c_str(), 1);
    }
  }
  ::setenv("RIVUS_IN_PYTHON", "1", 1);
  std::vector<std::string> args = {interpreter, "-m", "rivus"};
  const auto& line = command_line();
  if (line.size() > 1) args.insert(args.end(), line.begin() + 1, line.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  ::execv(interpreter.c_str(), argv.data());
  print_error("the spec uses 'python' stages, which run under " + interpreter +
              " -m rivus, but it cannot be started: " + std::strerror(errno));
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "rivus: %s\n", base::printable(message).c_str());
}

}  // namespace cli

int cli_main(int argc, char** argv) {
  cli::command_line().assign(argv, argv + argc);
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
