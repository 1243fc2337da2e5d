#include "rivus/base/log.h"

#include <spdlog/cfg/env.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "rivus/base/text.h"

namespace rivus::base {
namespace {

// %* is the message made printable on one line (text.h): messages quote spec text, reasons,
// paths and exec stderr, which must not move the cursor nor forge a line of their own.
constexpr const char* kPattern = "[%H:%M:%S.%e] [%n] [pid %P] %^%l%$: %*";

class PrintableMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*time*/,
              spdlog::memory_buf_t& dest) override {
    const std::string text = printable(std::string_view(msg.payload.data(), msg.payload.size()),
                                       /*keep_newlines=*/false);
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PrintableMessage>();
  }
};

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  static const bool kLevelsLoaded = [] {
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL; applies to loggers made after this too
    return true;
  }();
  (void)kLevelsLoaded;
  if (auto existing = spdlog::get(name)) return existing;
  auto made = spdlog::stderr_color_mt(name);
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<PrintableMessage>('*').set_pattern(kPattern);
  made->set_formatter(std::move(formatter));
  return made;
}

void drop_loggers() { spdlog::drop_all(); }

void shutdown_logging() { spdlog::shutdown(); }

}  // namespace rivus::base
