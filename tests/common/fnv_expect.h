// What the fnv stage writes for a number: the expected output lines of end-to-end tests.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace rivus::testing {

// 16 lowercase hex digits, as the fnv stage formats work(i, rounds).
inline std::string hex16(std::uint64_t x) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(x));
  return b;
}

}  // namespace rivus::testing
