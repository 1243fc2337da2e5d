// Python code as Rivus stages. Each kind is registered in the global StageRegistry under a
// generated name ("py.fn.3") holding a strong reference to the Python object; the worker
// processes, forked from the Python process after registration, find it there and call it with
// the GIL they hold (a forked worker has one thread and its own interpreter copy).
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "codec.h"

namespace rivus::python {

struct PyStageConfig {
  py::object target;  // a function, or a class (instantiated once per worker)
  bool is_class = false;
  bool map_mode = false;  // rivus.map: exactly one output per input; None is a value
  Wire in = Wire::kTagged;
  Wire out = Wire::kTagged;
  py::object out_key;  // None, or fn(value) -> key of the next stage (key_by=callable)
};

// Registers a transform; returns its registered name.
std::string register_python_stage(PyStageConfig config);
// Registers a source: factory(start) returns an iterator over the items from index `start` on.
std::string register_python_source(py::object factory, Wire out, py::object out_key);
// `use: python` for YAML specs run by `python3 -m rivus run` (with: {function: "pkg.mod:name"},
// a function or a class with process()); records in and out are text. validate imports it.
void register_yaml_python_stage();
// The collecting sink ("py.collect", with: {path}): framed records, exactly once like `file`.
void register_collect_sink();

// "ValueError: bad input (line 3 in parse, job.py)": an exception as a dead letter's reason.
std::string describe_python_error(py::error_already_set& e);

}  // namespace rivus::python
