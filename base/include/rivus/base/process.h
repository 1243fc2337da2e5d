// Facts about processes, read from /proc and the C library: who is alive, how big a process is,
// what a signal is called. Any thread; none of these keeps state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace rivus::base {

// /proc/<pid>/stat's start time (clock ticks since boot); 0 if the process is gone.
std::uint64_t process_start_ticks(pid_t pid);
// True if `pid` is alive (not a zombie) and started at `start_ticks` (the same process, not a
// reused pid).
bool process_matches(pid_t pid, std::uint64_t start_ticks);
// The state letter of /proc/<pid>/stat: 'R' running, 'S' sleeping, 'T' stopped (SIGSTOP), 't'
// stopped by a debugger, 'Z' zombie, ...; 0 if the process is gone.
char process_state(pid_t pid);
// The calling process's address-space size in bytes (/proc/self/statm), the base that a memory
// limit (RLIMIT_AS) is added to.
std::uint64_t address_space_bytes();
// Where `name` runs from as execvp() would find it: itself if it contains a '/', else the first
// regular, executable file of that name in $PATH. Empty if there is none.
std::string find_program(const std::string& name);
// "SIGSEGV" for 11; "signal 99" for a number the C library has no name for.
std::string signal_name(int sig);

}  // namespace rivus::base
