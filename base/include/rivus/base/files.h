// Facts about files that several rooms check before they rely on them.
#pragma once

#include <string>

#include "rivus/base/status.h"

namespace rivus::base {

// Whether a file could be written at `path` now: the file, if it exists, is a regular file this
// process may write; otherwise its directory exists and this process may create files in it.
// Messages start with `what` ("dead-letter file out/dl.jsonl: directory out does not exist").
Status check_writable_file(const std::string& path, const std::string& what);

}  // namespace rivus::base
