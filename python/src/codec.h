// How Python values cross a ring. Between Python stages a record is a tagged value: 'B' + the raw
// bytes of a `bytes`, 'S' + the UTF-8 of a `str`, 'P' + a pickle (protocol 5) of anything else;
// bytes and str are never pickled. At an edge with a built-in C++ stage a record is plain text:
// bytes as they are, str as UTF-8, numbers as str() writes them, tuples and lists as their items
// joined by ','. Records from a C++ stage reach Python as `bytes`.
//
// Every function here needs the GIL; errors are Python exceptions (py::error_already_set).
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <string_view>

namespace rivus::python {

namespace py = pybind11;

enum class Wire : std::uint8_t {
  kTagged,  // a Python stage on the other side
  kText,    // a built-in stage on the other side
};

// Appends the encoding of `v` to `out`.
void encode(Wire wire, py::handle v, std::string& out);
py::object decode(Wire wire, std::string_view bytes);

}  // namespace rivus::python
