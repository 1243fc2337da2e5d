// Finding and cleaning segments under /dev/shm.
#include <dirent.h>
#include <signal.h>

#include <cerrno>
#include <string>
#include <vector>

#include "rivus/shm/segment.h"
#include "rivus/supervisor/supervisor.h"

namespace rivus {

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
    info.pid = std::atoi(name.c_str() + dot + 1);
    auto seg = shm::Segment::attach(name, shm::Access::kReadOnly);
    if (seg.ok()) {
      const auto& h = seg->header();
      info.valid = true;
      info.pid = h.creator_pid;
      info.pipeline = h.pipeline_name;
      info.created_unix_ns = h.created_unix_ns;
      info.run_state = shm::load_acquire(h.run_state);
      info.live = shm::process_matches(h.creator_pid, h.creator_start_ticks);
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

}  // namespace rivus
