// Launching external workers with Boost.Process, and the `external` stage's registration.
#include "external.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "rivus/base/process.h"
#include "rivus/runtime/stage.h"

namespace rivus::supervisor {
namespace {

namespace bp = boost::process;

// What `external` would be in-process: nothing. The supervisor never forks it (it starts the
// program instead); this only stops a misuse of run_worker() with a clear message.
class NotInProcess final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    return Status::Failed("stage '" + ctx.stage + "' (external) runs in its own program (with: " +
                          "{program: ...}); it cannot run inside a worker");
  }
  void process(const Batch&, Emitter&) override {}
};

}  // namespace

Result<pid_t> spawn_external(const shm::Segment& seg, const worker::WorkerPlan& plan) {
  const StageSpec& st = *plan.stage;
  const std::string program = st.with.get_string("program");
  std::vector<std::string> args = st.with.get_list("args");

  // set(), not operator[]: Boost 1.74's environment::find() reads past the end of variables
  // shorter than the name it looks for (AddressSanitizer reports it).
  bp::environment env = boost::this_process::environment();
  env.set(worker::kEnvSegment, seg.name());
  env.set(worker::kEnvSlot, std::to_string(plan.slot));
  env.set(worker::kEnvPlan, worker::encode_plan(plan));

  // Everything the child needs is computed here: between fork and exec only system calls.
  const pid_t supervisor = getpid();
  const rlim_t memory_cap =
      st.limits.memory > 0 ? base::address_space_bytes() + st.limits.memory : 0;
  const auto setup = [supervisor, memory_cap](auto& /*executor*/) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != supervisor) _exit(worker::kExitAborted);  // the supervisor died first
    // Group signals are the supervisor's (it drains); an ignored signal stays ignored over exec.
    for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(sig, SIG_IGN);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the supervisor blocks SIGCHLD/INT/TERM/HUP/QUIT
    rlimit core{0, 0};
    setrlimit(RLIMIT_CORE, &core);
    if (memory_cap > 0) {
      rlimit as{memory_cap, memory_cap};
      setrlimit(RLIMIT_AS, &as);
    }
  };

  std::error_code ec;
  bp::child child(bp::exe = program, bp::args = args, bp::env = env, ec,
                  bp::extend::on_exec_setup = setup);
  if (ec || !child.valid()) {
    return Status(StatusCode::kIoError, "cannot start external worker " + st.name + "#" +
                                            std::to_string(plan.index_in_stage) + " (" + program +
                                            "): " + ec.message());
  }
  const pid_t pid = child.id();
  child.detach();  // the supervisor reaps it with waitpid(), like every worker
  return Result<pid_t>(pid);
}

}  // namespace rivus::supervisor

// Registered with the supervisor library, which is what knows how to start it.
RIVUS_REGISTER_STAGE(
    external,
    rivus::StageInfo{
        .name = rivus::supervisor::kExternalStage,
        .role = rivus::StageRole::kTransform,
        .summary = "runs the stage in a separately built program linking rivus::worker "
                   "(docs/embedding.md)",
        .params = {{"program", rivus::ParamType::kString, "",
                    "executable started for each worker (its main calls external_main)", true},
                   {"args", rivus::ParamType::kStringList, "[]",
                    "arguments passed to the program"}},
        .make_stage =
            [] {
              return std::unique_ptr<rivus::Stage>(
                  std::make_unique<rivus::supervisor::NotInProcess>());
            },
        .check =
            [](const rivus::Params& p) {
              const std::string program = p.get_string("program");
              if (::access(program.c_str(), X_OK) != 0) {
                return rivus::Status::InvalidArgument(
                    "program '" + program + "' cannot be executed: " + std::strerror(errno));
              }
              return rivus::Status::Ok();
            }});
