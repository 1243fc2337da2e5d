// An external worker program (`use: external`): reverses every record. It links rivus::worker;
// the supervisor starts one process per worker and restarts it if it crashes.
#include <rivus/worker/external.h>

#include <string>

class Reverse final : public rivus::Stage {
 public:
  void process(const rivus::Batch& batch, rivus::Emitter& out) override {
    for (const rivus::Record& r : batch) out.emit(r, std::string(r.data.rbegin(), r.data.rend()));
  }
};

int main(int argc, char** argv) {
  return rivus::worker::external_main(argc, argv, [] { return std::make_unique<Reverse>(); });
}
