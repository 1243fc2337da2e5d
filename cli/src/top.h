// `rivus top NAME|PID`: a live terminal view of one pipeline, one row per stage, refreshed
// every interval, that marks the bottleneck (rivus/inspect/view.h's make_view decides which stage).
//
// Plain ANSI escape codes, no curses. On a terminal it redraws in place on the alternate
// screen, reads keys (q quits, w shows or hides the workers) and restores the terminal on every
// way out; elsewhere (a pipe, a test) it prints one frame after another. Runs in the calling
// thread; installs SIGINT/SIGTERM/SIGBUS handlers for its duration.
#pragma once

#include <string>

namespace rivus::cli {

struct TopOptions {
  std::string target;     // pipeline name or supervisor pid
  bool workers = false;   // start with worker rows shown
  double interval_s = 1;  // refresh period
  int iterations = 0;     // stop after this many frames; 0 = until the run ends or q/Ctrl-C
};

// Returns the exit code: 0 when the run ended, q was pressed or the iterations were done;
// 130 on SIGINT/SIGTERM; 4 or 5 when the pipeline cannot be found or read.
int run_top(const TopOptions& options);

}  // namespace rivus::cli
