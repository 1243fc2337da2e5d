// rivus._rivus: the C++ side of the Python package (python/rivus/__init__.py is the API).
//
// Python builds a spec document (the same JSON a YAML file would give) in which Python code
// appears as generated stage names registered here; run() loads it with the spec loader and
// runs it with the supervisor in this process, the GIL released, and forks workers with the
// sequence CPython's os.fork uses (PyOS_BeforeFork / AfterFork_Parent / AfterFork_Child), so each
// worker is a complete copy of this interpreter holding its own GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <string_view>

#include "codec.h"
#include "py_stages.h"
#include "rivus/base/exit_codes.h"
#include "rivus/cli/cli.h"
#include "rivus/runtime/spec.h"
#include "rivus/supervisor/supervisor.h"

namespace rivus::python {
namespace {

PyGILState_STATE fork_gil;

ForkHooks python_fork_hooks() {
  ForkHooks h;
  h.before = [] {
    fork_gil = PyGILState_Ensure();
    PyOS_BeforeFork();
  };
  h.parent = [] {
    PyOS_AfterFork_Parent();
    PyGILState_Release(fork_gil);
  };
  // The child keeps the GIL: it is the only thread of its process, and runs Python stages.
  h.child = [] { PyOS_AfterFork_Child(); };
  return h;
}

Wire wire_of(const std::string& s) {
  if (s == "tagged") return Wire::kTagged;
  if (s == "text") return Wire::kText;
  throw py::value_error("wire must be 'tagged' or 'text', not '" + s + "'");
}

// Loads and runs a spec document; returns (exit code, report JSON). Spec errors: ValueError.
py::tuple run(const std::string& document, const std::string& report_path, bool quiet) {
  constexpr std::string_view kFile = "<python pipeline>";
  Result<PipelineSpec> spec = parse_spec(document, std::string(kFile));
  if (!spec.ok()) {
    // "<python pipeline>:1:157: unknown parameter ...": a place in generated JSON helps no one.
    std::string m = spec.status().message();
    if (m.starts_with(kFile)) {
      std::size_t at = kFile.size();
      for (int colons = 0; colons < 3 && at != std::string::npos; ++colons) {
        at = m.find(':', at);
        if (at != std::string::npos) ++at;
      }
      if (at != std::string::npos) m = m.substr(m[at] == ' ' ? at + 1 : at);
    }
    throw py::value_error(m);
  }
  RunOptions options;
  options.report_path = report_path;
  options.quiet = quiet;
  options.progress = !quiet;
  options.fork_hooks = python_fork_hooks();
  Report report;
  {
    py::gil_scoped_release release;
    report = run_pipeline(spec.value(), options);
  }
  return py::make_tuple(report.exit_code(), report.to_json(-1));
}

// `python3 -m rivus ARGS...`: the rivus command line in this interpreter, with `use: python`.
int cli(const std::vector<std::string>& args) {
  register_yaml_python_stage();
  set_default_fork_hooks(python_fork_hooks());
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  py::gil_scoped_release release;
  return cli_main(static_cast<int>(copy.size()), argv.data());
}

}  // namespace
}  // namespace rivus::python

PYBIND11_MODULE(_rivus, m) {
  namespace py = pybind11;
  using namespace rivus::python;
  m.doc() = "Rivus runtime bindings (use the `rivus` package)";
  m.def("run", &run, py::arg("document"), py::arg("report_path") = "", py::arg("quiet") = true);
  m.def(
      "register_stage",
      [](py::object target, bool is_class, bool map_mode, const std::string& in,
         const std::string& out, py::object out_key) {
        return register_python_stage(PyStageConfig{std::move(target), is_class, map_mode,
                                                   wire_of(in), wire_of(out), std::move(out_key)});
      },
      py::arg("target"), py::arg("is_class"), py::arg("map_mode"), py::arg("wire_in"),
      py::arg("wire_out"), py::arg("out_key"));
  m.def(
      "register_source",
      [](py::object factory, const std::string& out, py::object out_key) {
        return register_python_source(std::move(factory), wire_of(out), std::move(out_key));
      },
      py::arg("factory"), py::arg("wire_out"), py::arg("out_key"));
  m.def("register_collect_sink", &register_collect_sink);
  m.def("cli_main", &cli, py::arg("argv"));
  m.def(
      "decode",
      [](py::bytes data, const std::string& wire) {
        const std::string s = data;
        return decode(wire_of(wire), s);
      },
      py::arg("data"), py::arg("wire"));
  m.def(
      "encode",
      [](py::handle v, const std::string& wire) {
        std::string out;
        encode(wire_of(wire), v, out);
        return py::bytes(out);
      },
      py::arg("value"), py::arg("wire"));
}
