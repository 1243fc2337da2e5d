// The document inside a Report (rivus/inspect/report.h): what the typed accessors and the HTML
// renderer read. Private to the inspect room.
#pragma once

#include <nlohmann/json.hpp>

#include "rivus/base/exit_codes.h"
#include "rivus/inspect/report.h"

namespace rivus {

struct Report::Document {
  int exit_code = kExitOk;
  nlohmann::json json = nlohmann::json::object();
};

}  // namespace rivus
