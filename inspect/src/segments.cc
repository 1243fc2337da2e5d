#include "rivus/inspect/segments.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "rivus/base/exit_codes.h"
#include "rivus/base/process.h"
#include "rivus/shm/atomic.h"

namespace rivus::inspect {
namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos;
}

// The pid at the end of a segment's name ("1234", or "1234-2" for a retried name); 0 if it is
// not a pid (too long to be one, or not digits).
int pid_in_name(const std::string& tail) {
  const std::string digits = tail.substr(0, tail.find('-'));
  if (!all_digits(digits)) return 0;
  return std::stoi(digits);  // all_digits allows at most 9 digits: no overflow
}

// Whether `name` is what segment_name() (or a retry of it) gives for this pipeline and pid.
bool name_matches(const std::string& name, const std::string& pipeline, int pid) {
  const std::string base = segment_name(pipeline, pid);
  if (name == base) return true;
  return name.size() > base.size() + 1 && name.compare(0, base.size(), base) == 0 &&
         name[base.size()] == '-' && all_digits(name.substr(base.size() + 1));
}

Result<ResolvedSegment> open_segment(const SegmentInfo& info) {
  auto seg = shm::Segment::attach(info.name, shm::Access::kReadOnly);
  if (!seg.ok()) {
    if (seg.status().code() == StatusCode::kNotFound) {
      return Status::NotFound("pipeline '" + info.pipeline + "' (supervisor pid " +
                              std::to_string(info.pid) + ") has ended: its segment is gone");
    }
    return seg.status();
  }
  ResolvedSegment r{std::move(seg).value(), false};
  const auto& h = r.segment.header();
  r.live = base::process_matches(h.creator_pid, h.creator_start_ticks);
  return r;
}

void on_sigbus(int) {
  static const char kMsg[] =
      "rivus: the segment was truncated while being read (corrupt segment)\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
  _exit(kExitCorrupt);
}

}  // namespace

std::string segment_name(const std::string& pipeline, int pid) {
  return "rivus." + pipeline + "." + std::to_string(pid);
}

std::vector<SegmentInfo> list_segments() {
  std::vector<SegmentInfo> out;
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("rivus.", 0) != 0) continue;
    SegmentInfo info;
    info.name = name;
    const auto dot = name.rfind('.');
    if (dot == std::string::npos || dot <= 6) continue;
    info.pipeline = name.substr(6, dot - 6);
    info.pid = pid_in_name(name.substr(dot + 1));
    auto seg = shm::Segment::attach(name, shm::Access::kReadOnly);
    if (seg.ok()) {
      const auto& h = seg->header();
      info.valid = true;
      info.pid = h.creator_pid;
      info.pipeline.assign(h.pipeline_name, strnlen(h.pipeline_name, sizeof h.pipeline_name));
      info.created_unix_ns = h.created_unix_ns;
      info.run_state = shm::load_acquire(h.run_state);
      info.live = base::process_matches(h.creator_pid, h.creator_start_ticks);
      // The header and the file name must tell the same run: a copied or renamed segment would
      // otherwise pass for another (live) run.
      if (!name_matches(name, info.pipeline, h.creator_pid)) {
        info.valid = false;
        info.live = false;
        info.problem = "its header names pipeline '" + info.pipeline + "', supervisor pid " +
                       std::to_string(h.creator_pid) + ": not the run its name says (a copy?)";
      }
    } else {
      info.problem = seg.status().message();
      // Without a readable header, trust the pid in the name: alive means "not ours to remove".
      info.live = info.pid > 0 && (kill(info.pid, 0) == 0 || errno == EPERM);
    }
    out.push_back(std::move(info));
  }
  closedir(dir);
  return out;
}

std::vector<std::string> clean_stale_segments(const std::string& pipeline) {
  std::vector<std::string> removed;
  for (const SegmentInfo& s : list_segments()) {
    if (s.live) continue;
    if (!pipeline.empty() && s.pipeline != pipeline) continue;
    if (shm::Segment::remove(s.name).ok()) removed.push_back(s.name);
  }
  return removed;
}

Result<ResolvedSegment> resolve_segment(const std::string& target) {
  const std::vector<SegmentInfo> all = list_segments();
  std::vector<const SegmentInfo*> matches;
  if (all_digits(target)) {
    const int pid = std::stoi(target);
    for (const auto& s : all) {
      if (s.pid == pid) matches.push_back(&s);
    }
  }
  if (matches.empty()) {
    for (const auto& s : all) {
      if (s.pipeline == target) matches.push_back(&s);
    }
  }
  if (matches.empty()) {
    return Status::NotFound("no pipeline named '" + target + "'" +
                            (all_digits(target) ? " and none with supervisor pid " + target : "") +
                            " (`rivus ls` lists them)");
  }
  std::vector<const SegmentInfo*> live;
  const SegmentInfo* newest_stale = nullptr;
  for (const SegmentInfo* s : matches) {
    if (!s->valid) continue;
    if (s->live) {
      live.push_back(s);
    } else if (newest_stale == nullptr || s->created_unix_ns > newest_stale->created_unix_ns) {
      newest_stale = s;
    }
  }
  if (live.size() > 1) {
    std::string pids;
    for (const SegmentInfo* s : live) pids += (pids.empty() ? "" : ", ") + std::to_string(s->pid);
    return Status::InvalidArgument("several live pipelines are named '" + target +
                                   "' (supervisor pids " + pids + "): name one by its pid");
  }
  if (live.size() == 1) return open_segment(*live.front());
  if (newest_stale != nullptr) return open_segment(*newest_stale);
  // Only unreadable segments match: attach again for the exact error (the segment may also have
  // become valid since, if its creator was writing it).
  return open_segment(*matches.front());
}

void guard_segment_reads() {
  struct sigaction sa {};
  sa.sa_handler = on_sigbus;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
}

}  // namespace rivus::inspect
