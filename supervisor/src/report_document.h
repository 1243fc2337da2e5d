// The document inside a Report (rivus/supervisor/report.h): the supervisor builds it, the typed
// accessors read it. Private to the supervisor room.
#pragma once

#include <nlohmann/json.hpp>

#include "rivus/base/exit_codes.h"
#include "rivus/supervisor/report.h"

namespace rivus {

struct Report::Document {
  int exit_code = kExitOk;
  nlohmann::json json = nlohmann::json::object();
};

namespace supervisor {
// The report of a finished run, from the document report.cc built.
Report make_report(int exit_code, nlohmann::json document);
// The same report with another exit code (a report file that could not be written).
Report with_exit_code(const Report& r, int exit_code);
}  // namespace supervisor

}  // namespace rivus
