// Helpers of the metrics end-to-end tests: the rivus binary as a child process, a pipeline that
// keeps running while a test talks to it, and `rivus stat --json` parsed.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process_util.h"

namespace rivus::testing {

using nlohmann::json;
using namespace std::chrono_literals;
constexpr auto kPoll = 50ms;  // between polls that start a `rivus stat` or read a file

inline std::string unique(const std::string& tag) {
  return "mt-" + tag + "-" + std::to_string(getpid());
}

inline ProcessResult rivus(std::vector<std::string> args, std::chrono::seconds limit = 60s) {
  args.insert(args.begin(), rivus_bin());
  return run_process(args, limit);
}

// A process that keeps running while the test talks to it: stdin is a pipe the test writes,
// stdout and stderr go to files. The destructor kills and reaps it if it still runs.
class LiveProcess {
 public:
  LiveProcess(const std::vector<std::string>& argv, const std::string& out,
              const std::string& err) {
    int in[2];
    if (pipe2(in, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    stdin_ = in[1];
  }
  ~LiveProcess() {
    close_stdin();
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  LiveProcess(const LiveProcess&) = delete;
  LiveProcess& operator=(const LiveProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool write_stdin(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
      const ssize_t k = write(stdin_, data.data() + done, data.size() - done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return false;
      done += static_cast<std::size_t>(k);
    }
    return true;
  }
  void close_stdin() {
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
  }
  // The exit code, or -1 (killed by a signal, or still running at the deadline: then killed).
  int wait(std::chrono::seconds limit) {
    if (reaped_) return code_;
    const int status = wait_exit(pid_, limit);
    reaped_ = true;
    return code_ = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  bool reaped_ = false;
  int code_ = -1;
};

inline std::string lines(const std::string& prefix, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += prefix + std::to_string(i) + "\n";
  return s;
}

// `rivus stat TARGET --json`, parsed; a null json if it failed.
inline json stat_json(const std::string& target, std::string* err = nullptr) {
  const auto r = rivus({"stat", target, "--json"});
  if (err) *err = r.err;
  if (r.exit_code != 0) return nullptr;
  try {
    return json::parse(r.out);
  } catch (const json::exception& e) {
    ADD_FAILURE() << "stat --json printed something that is not JSON: " << e.what() << "\n"
                  << r.out;
    return nullptr;
  }
}

inline std::uint64_t stage_total(const json& stat, std::size_t stage, const char* key) {
  return stat["stages"][stage]["totals"][key].get<std::uint64_t>();
}

// Every counter of every stage and worker in `after` is >= the same one in `before`.
inline void expect_totals_not_less(const json& before, const json& after) {
  ASSERT_EQ(before["stages"].size(), after["stages"].size());
  for (std::size_t s = 0; s < after["stages"].size(); ++s) {
    const json& a = after["stages"][s];
    const json& b = before["stages"][s];
    for (const auto& [key, value] : a["totals"].items()) {
      EXPECT_GE(value.get<std::uint64_t>(), b["totals"][key].get<std::uint64_t>())
          << "stage " << a["name"] << " " << key << " went down";
    }
    ASSERT_EQ(a["workers_detail"].size(), b["workers_detail"].size());
    for (std::size_t w = 0; w < a["workers_detail"].size(); ++w) {
      for (const auto& [key, value] : a["workers_detail"][w]["totals"].items()) {
        EXPECT_GE(value.get<std::uint64_t>(),
                  b["workers_detail"][w]["totals"][key].get<std::uint64_t>())
            << "stage " << a["name"] << " worker " << w << " " << key << " went down";
      }
    }
  }
}

}  // namespace rivus::testing
