#include "rivus/base/process.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace rivus::base {

namespace {

struct ProcStat {
  char state = 0;                 // field 3: R, S, D, Z (zombie), X (dead), ...
  std::uint64_t start_ticks = 0;  // field 22
};

// /proc/<pid>/stat's state and start time; start_ticks 0 if the process is gone.
ProcStat read_proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return {};
  std::istringstream rest(line.substr(close + 2));
  ProcStat st;
  std::string field;
  // Fields 3..22; starttime is field 22, i.e. the 20th after the name.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return {};
    if (i == 3) st.state = field[0];
  }
  st.start_ticks = std::strtoull(field.c_str(), nullptr, 10);
  return st;
}

}  // namespace

std::uint64_t process_start_ticks(pid_t pid) { return read_proc_stat(pid).start_ticks; }

char process_state(pid_t pid) { return pid > 0 ? read_proc_stat(pid).state : 0; }

bool process_matches(pid_t pid, std::uint64_t start_ticks) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  const ProcStat st = read_proc_stat(pid);
  // A zombie has died; only its parent has not reaped it yet.
  if (st.state == 'Z' || st.state == 'X') return false;
  return st.start_ticks != 0 && st.start_ticks == start_ticks;
}

std::string find_program(const std::string& name) {
  auto runnable = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  };
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return runnable(name) ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = dirs.find(':', begin);
    std::string candidate =
        dirs.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (candidate.empty()) candidate.push_back('.');  // an empty entry: the current directory
    candidate.push_back('/');
    candidate.append(name);
    if (runnable(candidate)) return candidate;
    if (end == std::string::npos) return "";
    begin = end + 1;
  }
}

std::uint64_t address_space_bytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t pages = 0;
  in >> pages;
  return pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

}  // namespace rivus::base
